"""Writing a file or staging path so that a killed process never leaves a half-written file.

:func:`write_atomically` writes ``.NAME.hgq_chip-partial-PID-XXXX[SUFFIX]`` beside the target and
renames it over ``NAME`` (``os.replace``), so ``NAME`` is always the complete old file or the
complete new one; partial files of processes that no longer run are removed by the next write.
:func:`staging_name` / :func:`remove_stale_staging` do the same for staging folders.

This module sits at the bottom of the package (with ``errors``): training's Pareto checkpoints,
conversion, reports and the QKeras import all use it. It checks no path: whether a path may be
written at all is :mod:`hgq_chip.conversion.output_file`'s and ``output_dir``'s business.
Standard library only (no Keras).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

PARTIAL_TAG = "hgq_chip-partial"


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

    ``suffix`` ends the partial file's name (Keras needs ``.keras``). If ``write`` raises (or
    Ctrl-C arrives), the partial file is removed, ``path`` is untouched and the exception
    propagates (OSError from the rename too). Returns ``path``. Checks no path: callers check it
    first (``conversion.output_file.check_output_file``).
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
