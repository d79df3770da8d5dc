"""Capturing file descriptor 2 around a call whose C/C++ code logs there (Python's ``sys.stderr``
redirection cannot catch it): TensorFlow's start-up lines, Ray's client retries."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


class CapturedText:
    """What was written to file descriptor 2 inside :func:`captured_stderr`; ``text`` is set on exit."""

    text = ""


@contextlib.contextmanager
def captured_stderr():
    """File descriptor 2 (Python's and C/C++'s stderr) sent to a temporary file for the block;
    restored on exit, even by an exception, and what was written is in the yielded object's
    ``text`` (UTF-8, undecodable bytes replaced). Nothing is shown: the caller decides."""
    captured = CapturedText()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", "replace")
