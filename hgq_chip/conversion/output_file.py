"""Safe single output files (``report --output``, ``import-qkeras ... OUT.keras``): checked before
anything is written, then written beside the target and renamed over it in one step.

Refused with :class:`UnsafeOutputError` (exit 14), nothing touched: every path
:func:`hgq_chip.conversion.output_dir.check_location` refuses (filesystem root, the current
directory, home, a path equal to or holding a file the command reads, a path below a file, an
unwritable parent), a path that is a folder, and an existing file the caller does not recognise
as its own output. An existing file of its own is replaced only when the caller allows it
(else :class:`OutputExistsError`, exit 8).

Writing goes through :func:`hgq_chip.atomic_write.write_atomically` (re-exported here): a partial
file beside ``NAME`` renamed over it, so ``NAME`` is always the complete old file or the complete
new one. No Keras here.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..atomic_write import (  # noqa: F401  (re-exported: the writing half lives below conversion)
    PARTIAL_TAG,
    remove_dead_partials,
    remove_stale_staging,
    staging_name,
    write_atomically,
)
from ..errors import OutputExistsError, UnsafeOutputError
from .output_dir import check_location


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
