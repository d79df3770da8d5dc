"""MkDocs hook (mkdocs.yml `hooks:`): the docstrings' Sphinx roles, read as Markdown by mkdocstrings,
come out as ``:class:<code>~pkg.Name</code>``; show them as code with the name alone (``~``: the last
dotted part, as Sphinx does), without the role."""

from __future__ import annotations

import re

ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):<code>(~?)([^<]+)</code>")


def strip_roles(html: str) -> str:
    return ROLE.sub(lambda m: f"<code>{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}</code>", html)


def on_page_content(html, page, config, files):  # MkDocs calls hooks with these keywords
    return strip_roles(html)
