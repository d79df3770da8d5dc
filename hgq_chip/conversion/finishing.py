"""Finishing a step that must not stop half-way: Ctrl-C and SIGTERM are noted, not raised.

Used by :mod:`hgq_chip.conversion.output_dir` around the swap of a new folder into place and
the deletion of the old one: once the swap begins, stopping helps no one, and raising would
report a failure (exit 130/143) although the new folder is complete (issue 33). Python runs
signal handlers on the main thread only, so replacing them there covers every thread.
Standard library only.
"""

from __future__ import annotations

import contextlib
import signal
import threading


@contextlib.contextmanager
def signals_noted(what: str, log):
    """Record Ctrl-C (SIGINT) and SIGTERM instead of raising while the block runs (main thread
    only; elsewhere nothing changes). If the block completes and a signal arrived, ``log`` gets
    one line, ``[hgq_chip] note: Ctrl-C arrived while WHAT; the replacement was finished and is
    complete``; a SIGTERM whose handler was the default (the process would have died) is then
    raised again, so the process still ends. If the block raises, its exception propagates."""
    seen: list[int] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda number, frame: seen.append(number))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if seen:
        names = " and ".join(sorted({"Ctrl-C" if s == signal.SIGINT else "SIGTERM" for s in seen}))
        log(f"[hgq_chip] note: {names} arrived while {what}; the replacement was finished and is complete")
        if signal.SIGTERM in seen and previous.get(signal.SIGTERM) == signal.SIG_DFL:
            signal.raise_signal(signal.SIGTERM)
