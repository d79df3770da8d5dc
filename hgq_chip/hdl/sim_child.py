"""The child process of the RTL simulation: load the Verilated harness library and clock the samples through.

Run as a script (``python -I -S sim_child.py WORKDIR``) by :mod:`hgq_chip.hdl.verilator`, never
imported by hgq_chip; standard library only. Whatever the simulated design or the harness does
(abort, segfault), only this process dies. The working directory is the project's
``src/memfiles`` (da4ml's table ROMs are read there with ``$readmemh`` when the model starts).

``WORKDIR/job.json``: ``{"library", "symbol", "samples", "cycles", "parent", "memfiles"}``;
``WORKDIR/input`` holds ``samples`` rows of input port words (uint32), ``WORKDIR/output`` (created
zero-filled by the parent, written here through a shared map) ``cycles`` rows of output port
words, ``WORKDIR/progress`` one int64: the cycles done.
"""

import ctypes
import json
import mmap
import os
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
EXIT_ORPHANED = 3


def _mapped(path: Path):
    with open(path, "r+b") as file:
        mapped = mmap.mmap(file.fileno(), 0)
    return mapped, ctypes.addressof(ctypes.c_char.from_buffer(mapped))


def _die_with_parent(parent):
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:
        sys.exit(EXIT_ORPHANED)


def main(workdir: str) -> int:
    work = Path(workdir)
    job = json.loads((work / "job.json").read_text())
    _die_with_parent(job.get("parent"))
    if job.get("memfiles"):
        os.chdir(job["memfiles"])
    run = getattr(ctypes.CDLL(job["library"]), job["symbol"])
    run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_void_p]
    run.restype = ctypes.c_int
    maps = [_mapped(work / name) for name in ("input", "output", "progress")]
    (_, inp), (_, out), (_, progress) = maps
    code = run(inp, out, job["samples"], job["cycles"], progress)
    for mapped, _ in maps:
        mapped.flush()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
