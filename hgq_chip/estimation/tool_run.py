"""Run a long external tool (yosys, nextpnr) with progress on stderr and a time limit.

``run_tool`` starts the tool in its own process group, prints one line when it starts (what
runs and the expected time order), then ``still running, N s`` every ``progress_every``
seconds, and stops the whole group when ``time_limit`` seconds pass, raising
``ToolTimeoutError`` (exit code 20) whose message says what to do (the caller's ``advice``:
fewer stages, another family, a smaller model, a larger ``--time-limit``). Ctrl-C and
SIGTERM stop the group too. The tool's output goes to a log file, not the terminal.
The tool runs under ``conversion/group_guard.py`` (``csim.guarded_command``), which leads the
group and stops it when this process dies without cleaning up (SIGKILL, out of memory), so no
yosys or nextpnr is left running.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..conversion.csim import guarded_command
from ..errors import ToolTimeoutError

# Seconds between "still running" lines.
PROGRESS_EVERY_S = 30.0
# Default limit of one tool run (``--time-limit``): one hour.
DEFAULT_TIME_LIMIT_S = 3600.0


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class ToolResult:
    returncode: int
    seconds: float
    log: Path

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def check_time_limit(time_limit) -> float:
    """The limit as a float; UnsupportedConfigurationError unless it is a positive, finite number of seconds."""
    import math

    from ..errors import UnsupportedConfigurationError

    try:
        value = float(time_limit)
    except (TypeError, ValueError):
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise UnsupportedConfigurationError(f"--time-limit must be a positive number of seconds, got {time_limit!r}")
    return value


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the tool's process group, SIGKILL it after 5 s."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_tool(argv, cwd, log_file, what: str, expected: str, time_limit: float = DEFAULT_TIME_LIMIT_S,
             advice: str = "", progress=_stderr, progress_every: float = PROGRESS_EVERY_S, env=None) -> ToolResult:
    """Run ``argv`` in ``cwd`` with stdout and stderr to ``log_file``; returns its exit status and duration (s).

    ``what`` names the run in the progress lines ("yosys synth_xilinx of the 4-stage netlist"),
    ``expected`` its time order ("about a minute per 5k LUTs"). ``progress`` receives each line
    (default: stderr; ``None``: silent). Raises ToolTimeoutError after ``time_limit`` seconds
    (the tool is stopped first) naming ``advice``; ToolMissingError when ``argv[0]`` cannot be run.
    """
    from ..errors import ToolMissingError

    say = progress or (lambda message: None)
    time_limit = check_time_limit(time_limit)
    say(f"[hgq_chip] running {what} (expected: {expected}; limit {time_limit:g} s, --time-limit)")
    start = time.monotonic()
    argv = list(argv)
    # The guard starts the tool, so a missing executable would only be a line in the log: check first.
    program = argv[0] if os.sep not in argv[0] else os.path.join(cwd, argv[0])
    if shutil.which(program, path=(os.environ if env is None else env).get("PATH")) is None:
        raise ToolMissingError(f"cannot run {what}: {argv[0]} is not an executable file or command on PATH")
    with open(log_file, "w") as log:
        try:
            process = subprocess.Popen(guarded_command(argv), cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        except OSError as error:
            raise ToolMissingError(f"cannot run {what}: {error}") from error
        try:
            next_line = start + progress_every
            while True:
                now = time.monotonic()
                try:
                    process.wait(timeout=max(0.05, min(next_line, start + time_limit) - now))
                    break
                except subprocess.TimeoutExpired:
                    pass
                now = time.monotonic()
                if now - start >= time_limit:
                    _stop(process)
                    hint = f"; {advice}" if advice else ""
                    raise ToolTimeoutError(f"{what} did not finish within the time limit of {time_limit:g} s "
                                           f"(stopped){hint}, or give a larger --time-limit")
                if now >= next_line:
                    say(f"[hgq_chip] {what}: still running, {now - start:.0f} s")
                    next_line += progress_every
        except BaseException:
            if process.poll() is None:
                _stop(process)
            raise
    return ToolResult(process.returncode, time.monotonic() - start, Path(log_file))
