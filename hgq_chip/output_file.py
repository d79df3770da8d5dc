"""Checks for a command's single output file (a report page, an imported model), run before writing.

No Keras here; the rules are those of issue "Nothing lost": never overwrite an input, a
folder, or a file the command does not own, and fail before writing when the folder
cannot be written.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UnsafeOutputError


def _existing_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path(path.anchor or ".")


def check_output_file(output: Path, inputs, option: str) -> None:
    """UnsafeOutputError when ``output`` is one of ``inputs`` (symlinks resolved), a folder, or not writable.

    ``option`` names the argument in messages (``--output``, ``OUTPUT``). Whether an
    existing file may be replaced is the caller's rule (``--force``, a report page).
    """
    resolved = output.resolve()
    for source in inputs:
        source = Path(source)
        if source.exists() and resolved == source.resolve():
            raise UnsafeOutputError(f"{option} {output} would overwrite the input {source}; choose another path")
    if output.is_dir():
        raise UnsafeOutputError(f"{option} {output} is a folder; pass a file path inside it")
    ancestor = _existing_ancestor(output)
    if not ancestor.is_dir():
        raise UnsafeOutputError(f"cannot create {output.parent}: {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UnsafeOutputError(f"cannot write {output}: the folder {ancestor} is not writable")
