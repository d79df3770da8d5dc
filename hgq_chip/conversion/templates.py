"""Where the HLS templates (the repository's top-level ``firmware_templates/``) are found.

The repository keeps one copy, ``firmware_templates/`` beside the ``hgq_chip`` package.
Building a wheel copies the whole folder into the package as ``hgq_chip/firmware_templates/``
(``setup.py``'s ``build_py``; ``MANIFEST.in`` puts it into the sdist), so an installed wheel
finds them through ``importlib.resources``. A source checkout, an editable install or
``PYTHONPATH`` pointing at the checkout has no copy inside the package and uses the
top-level folder itself.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from ..errors import HGQChipError

FOLDER = "firmware_templates"


def template_folders() -> list[Path]:
    """Where templates are looked for, first match wins: the installed package's copy, then the checkout's."""
    packaged = importlib.resources.files("hgq_chip") / FOLDER
    checkout = Path(__file__).resolve().parents[2] / FOLDER
    return [Path(str(packaged)), checkout]


def template_path(name: str, folders: list[Path] | None = None) -> Path:
    """The path of template ``name`` (e.g. ``"nnet_asq_post.h"``).

    Raises HGQChipError naming the places looked in and the fix (reinstall) when no folder
    holds it: an installation without its package data, or a source tree missing the file.
    """
    folders = template_folders() if folders is None else folders
    for folder in folders:
        path = folder / name
        if path.is_file():
            return path
    raise HGQChipError(f"hgq_chip's HLS template {name} is missing: looked in "
                       f"{' and '.join(str(f) for f in folders)}; reinstall hgq_chip "
                       "(pip install --force-reinstall hgq_chip, or pip install -e . in a source checkout)")
