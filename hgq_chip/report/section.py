"""One section of a report page: a title and blocks of text, tables and images (rendered by ``page.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)  # ("text", str) | ("table", headers, rows) | ("image", path, caption)
