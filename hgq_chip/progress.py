"""Where the Python API's progress lines go: standard error, never standard output.

``hgq_chip.convert``/``verify``/``from_qkeras`` take ``log=`` (a callable of one string); their
default is :func:`to_stderr`, the same stream the CLI prints progress to, so a program's own
standard output (a pipe, a JSON result) is never mixed with ``[hgq_chip] ...`` lines. Pass
``log=lambda message: None`` for silence, or ``logging.getLogger("hgq_chip").info`` to route
them through :mod:`logging`. Standard library only.
"""

from __future__ import annotations

import sys


def to_stderr(message: str) -> None:
    """Print one progress line to ``sys.stderr`` (looked up at call time, so redirections apply) and flush."""
    print(message, file=sys.stderr, flush=True)
