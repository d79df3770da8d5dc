"""Safe single output files (``report --output``, ``import-qkeras ... OUT.keras``): checked before
anything is written, then written beside the target and renamed over it in one step.

Refused with :class:`UnsafeOutputError` (exit 14), nothing touched: every path
:func:`hgq_chip.conversion.output_dir.check_location` refuses (filesystem root, the current
directory, home, a path equal to or holding a file the command reads, a path below a file, an
unwritable parent), a path that is a folder, and an existing file the caller does not recognise
as its own output. An existing file of its own is replaced only when the caller allows it
(else :class:`OutputExistsError`, exit 8).

The partial file ``.NAME.hgq_chip-partial-PID-XXXX[SUFFIX]`` is renamed over ``NAME``
(``os.replace``), so ``NAME`` is always the complete old file or the complete new one;
partial files of processes that no longer run are removed by the next write. No Keras here.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ..errors import OutputExistsError, UnsafeOutputError
from .output_dir import check_location

PARTIAL_TAG = "hgq_chip-partial"


def check_output_file(path, *, reads=(), replace: bool = False, is_ours=None, what: str = "output file",
                      not_ours_hint: str = "choose another name or delete it yourself") -> Path:
    """The real path of an output file that may be written; else a typed error (see module docstring).

    ``is_ours(path) -> bool`` says whether an existing file is one this command wrote (None:
    any file). ``replace`` allows replacing such a file (``--force``).
    """
    real = check_location(path, reads, what)
    if not os.path.lexists(real):
        return real
    if real.is_dir():
        raise UnsafeOutputError(f"{what} {path} is a folder, not a file; name a file")
    if is_ours is not None and not is_ours(real):
        raise UnsafeOutputError(f"{what} {path} exists and was not written by hgq_chip; refusing to overwrite it: "
                                f"{not_ours_hint}")
    if not replace:
        raise OutputExistsError(f"{path} exists; pass --force to replace it")
    return real


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def staging_name(prefix: str) -> str:
    """``PREFIX<pid>-``: the start of a staging path of this process (see remove_stale_staging)."""
    return f"{prefix}{os.getpid()}-"


def remove_stale_staging(folder: Path, prefix: str) -> list[Path]:
    """Delete ``folder/PREFIX<pid>-*`` (files or folders) left by killed runs; returns what was removed.

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


def remove_dead_partials(real: Path) -> None:
    """Delete ``.NAME.hgq_chip-partial-PID-*`` files whose process no longer runs."""
    prefix = f".{real.name}.{PARTIAL_TAG}-"
    for candidate in real.parent.iterdir():
        if not candidate.name.startswith(prefix) or not candidate.is_file():
            continue
        pid = candidate.name[len(prefix):].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            candidate.unlink()


def write_atomically(path, write, suffix: str = "") -> Path:
    """Call ``write(partial_path)`` for a partial file beside ``path``, then rename it over ``path``.

    ``suffix`` ends the partial file's name (Keras needs ``.keras``). If ``write`` raises, the
    partial file is removed and ``path`` is untouched. Returns ``path``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_partials(Path(os.path.realpath(target)))
    partial = target.parent / f".{target.name}.{PARTIAL_TAG}-{os.getpid()}-{secrets.token_hex(4)}{suffix}"
    try:
        write(partial)
        os.replace(partial, target)
    except BaseException:
        if os.path.lexists(partial):
            os.unlink(partial)
        raise
    return target
