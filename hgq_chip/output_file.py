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


def staging_name(prefix: str) -> str:
    """``PREFIX<pid>-``: the start of a staging path of this process (see remove_stale_staging)."""
    return f"{prefix}{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_staging(folder: Path, prefix: str) -> list[Path]:
    """Delete ``folder/PREFIX<pid>-*`` left by killed runs (their process is gone); returns what was removed.

    Staging paths of live processes (a run in progress) are kept.
    """
    import shutil

    removed = []
    for path in Path(folder).glob(f"{prefix}*"):
        pid = path.name[len(prefix):].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed
