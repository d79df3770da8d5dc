"""How every ``hgq_chip`` command runs: quiet TensorFlow start-up, one-line errors, Ctrl-C, closed pipes.

- Typed errors (``hgq_chip.errors``) print ``hgq_chip: error: ...`` and exit with their code.
- Ctrl-C exits 130 (128 + SIGINT) with one line; commands write through staging files, so
  nothing partial is left. SIGTERM (``kill``, a batch scheduler's stop) is handled the same way
  and exits 143 (128 + SIGTERM): unwinding runs every cleanup, so the C simulation's g++ and
  child process are stopped and their temporary folders removed, not left running.
- Standard output closed from the start (``hgq_chip estimate DIR >&-``) is one error line and
  exit 141 before any work, as the results would be lost.
- A closed stdout pipe (``hgq_chip estimate DIR | head -1``) exits quietly with 141
  (128 + SIGPIPE, as a Unix tool killed by SIGPIPE), following the recipe in Python's
  ``signal`` documentation (stdout redirected to devnull so the final flush cannot fail).
- Any other exception is a bug: one line ``hgq_chip: internal error: ... (please report)``
  and exit 1; ``HGQ_CHIP_DEBUG=1`` shows the traceback instead.
- TensorFlow's start-up lines (oneDNN, CUDA, CPU features) are written by absl before
  ``TF_CPP_MIN_LOG_LEVEL`` applies, so TensorFlow is imported once with file descriptor 2
  sent to a temporary file; they are shown again if that import fails.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import signal
import sys
import threading

from . import errors
from .errors import HGQChipError
from .stderr_capture import captured_stderr

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_BROKEN_PIPE = 141
EXIT_INTERNAL = 1
DEBUG_ENV = "HGQ_CHIP_DEBUG"


def error_classes() -> list[type]:
    """Every class of hgq_chip.errors in exit-code order (the base class, code 1, first)."""
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, HGQChipError)]
    return sorted(classes, key=lambda c: c.exit_code)


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def one_line(text: str) -> str:
    """``text`` with its lines joined by ``; `` (error messages must stay one line on stderr)."""
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def import_tensorflow_quietly(quiet: bool = False, any_backend: bool = False) -> None:
    """Import TensorFlow with its start-up log lines suppressed (no-op if imported, absent, or not the
    backend, unless ``any_backend``: ``convert`` under JAX or PyTorch imports it anyway, inside hls4ml).

    TensorFlow's later C++ log lines follow ``TF_CPP_MIN_LOG_LEVEL``: 3 (fatal
    only) unless the user set it; ``quiet`` (``--quiet``) sets 3 whatever the user set.
    """
    if quiet:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    other_backend = os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow"
    if debugging() or "tensorflow" in sys.modules or (other_backend and not any_backend):
        return
    if importlib.util.find_spec("tensorflow") is None:
        return
    try:
        with captured_stderr() as captured:
            import tensorflow  # noqa: F401
    except Exception:  # show what TensorFlow said about its failure (not on Ctrl-C)
        sys.stderr.write(captured.text)
        raise


def _quiet_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (captured in tests)
        pass


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that every ``finally`` and context
    manager on the way out runs (staging folders removed, child processes killed)."""


class _CtrlC:
    """Records a SIGINT or SIGTERM before raising KeyboardInterrupt (Terminated for SIGTERM): a
    KeyboardInterrupt raised inside a finalizer (``__del__``, a weakref callback, e.g. of
    TensorFlow objects) is printed and swallowed by Python, and the command would then finish
    with exit 0 after Ctrl-C. Installed only on the main thread and only over the default handlers."""

    def __init__(self):
        self.seen = None
        self.previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
                if signal.getsignal(signum) is default:
                    self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        self.seen = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        raise self.seen

    def __exit__(self, *exc):
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)


def run_command(handler, args) -> int:
    """``handler(args)``'s exit code, with every failure mapped to one stderr line and an exit code."""
    with _CtrlC() as ctrl_c:
        return _run_command(handler, args, ctrl_c)


def _stdout_closed() -> bool:
    """True when the command was started with standard output closed (``cmd >&-``): Python then
    sets ``sys.stdout`` to None and every result line would be lost silently."""
    if sys.stdout is None:
        return True
    try:
        os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return not hasattr(sys.stdout, "getvalue")  # a test's in-memory stdout has no descriptor
    return False


STDOUT_CLOSED = ("hgq_chip: error: standard output is closed, so the results would be lost; run the command with "
                 "its output going to a terminal, a file (> out.txt) or /dev/null (> /dev/null)")


def _run_command(handler, args, ctrl_c: _CtrlC) -> int:
    if _stdout_closed():
        print(STDOUT_CLOSED, file=sys.stderr)
        return EXIT_BROKEN_PIPE
    try:
        code = int(handler(args) or 0)
        sys.stdout.flush()  # a closed pipe surfaces here, not at interpreter exit
        if ctrl_c.seen:  # the KeyboardInterrupt was swallowed on the way
            raise ctrl_c.seen
        return code
    except HGQChipError as error:
        print(f"hgq_chip: error: {one_line(error)}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt as error:
        # A library may turn our Terminated into a plain KeyboardInterrupt (Ray's ray.wait/ray.get
        # re-raise any interruption as one): the signal recorded by the handler decides.
        if isinstance(error, Terminated) or ctrl_c.seen is Terminated:
            print("hgq_chip: error: terminated (SIGTERM)", file=sys.stderr)
            return EXIT_TERMINATED
        print("hgq_chip: error: interrupted (Ctrl-C)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as error:
        if error.errno != errno.EBADF or not _stdout_closed():
            if debugging():
                raise
            return _internal(error)
        print(STDOUT_CLOSED, file=sys.stderr)
        return EXIT_BROKEN_PIPE
    except Exception as error:
        if debugging():
            raise
        return _internal(error)


def _internal(error: Exception) -> int:
    where = f"{type(error).__module__}.{type(error).__name__}".removeprefix("builtins.")
    print(f"hgq_chip: internal error: {where}: {one_line(error)[:500]} (please report it with the command "
          f"line; set {DEBUG_ENV}=1 to see the traceback)", file=sys.stderr)
    return EXIT_INTERNAL
