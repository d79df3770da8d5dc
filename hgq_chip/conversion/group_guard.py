"""Run a command as a process group that dies with the process that started it.

Run as a script (``python -I -S group_guard.py PARENT_PID COMMAND...``) by
:func:`hgq_chip.conversion.csim.run_stopping_group`, never imported by hgq_chip; standard
library only. The guard leads a process group of its own (its starter passes
``start_new_session=True``) and runs COMMAND in it (``bash build_lib.sh``, whose g++ runs are
grandchildren). Linux's parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGTERM)``) tells the
guard when the starter dies, also by SIGKILL or the out-of-memory killer, which no ``finally``
of the starter survives; the guard then stops the whole group: SIGTERM (g++ removes its
temporary files), SIGKILL to what is left after GRACE_SECONDS. Without the guard, g++ went on
compiling into the project after a ``kill -9`` of ``verify`` (issue 33). A SIGTERM to the group
from the starter itself (its own cleanup) ends the same way. Elsewhere (no prctl) the guard
only runs COMMAND; the starter's own cleanup stops the group.

Exit status: COMMAND's; 128 + N if COMMAND was killed by signal N; EXIT_ORPHANED if the
starter was gone before COMMAND started; EXIT_CANNOT_RUN (a line on stderr) if COMMAND cannot be
started. Also used by ``hgq_chip.hdl.verilator`` (the Verilator build: perl, make, cc1plus) and
``hgq_chip.estimation.tool_run`` (yosys, nextpnr), through ``csim.guarded_command``.
"""

import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
EXIT_ORPHANED = 3
EXIT_CANNOT_RUN = 127  # as a shell's "command not found"
GRACE_SECONDS = 5.0


def _stop_group(signum, frame) -> None:
    """SIGTERM to every member of the group but the guard, SIGKILL after GRACE_SECONDS, then exit."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        os.killpg(0, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < deadline:
            try:
                if os.waitpid(-1, os.WNOHANG) == (0, 0):
                    time.sleep(0.05)
            except ChildProcessError:
                time.sleep(0.2)  # COMMAND is gone; its g++ (not our child) gets a moment to clean up
                break
    finally:
        os.killpg(0, signal.SIGKILL)  # the guard too: nothing of the group outlives this line


def _die_with_parent(parent: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        sys.exit(EXIT_ORPHANED)


def main(argv: list[str]) -> int:
    parent, command = int(argv[1]), argv[2:]
    signal.signal(signal.SIGTERM, _stop_group)
    _die_with_parent(parent)
    try:
        child = subprocess.Popen(command)
    except OSError as error:
        print(f"group_guard: cannot run {command[0]}: {error}", file=sys.stderr, flush=True)
        return EXIT_CANNOT_RUN
    code = child.wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
