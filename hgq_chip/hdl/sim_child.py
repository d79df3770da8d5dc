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
import os
import sys
from pathlib import Path


def _load_csim_child():
    """The C simulation's child script (``conversion/csim_child.py``, standard library only), loaded
    from its file: its ``_mapped`` (a shared file map) and ``_die_with_parent`` (PR_SET_PDEATHSIG)
    serve this child too. This script runs isolated (``-I -S``), outside the package."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "conversion" / "csim_child.py"
    spec = importlib.util.spec_from_file_location("hgq_chip_csim_child", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_shared = _load_csim_child()
_mapped, _die_with_parent = _shared._mapped, _shared._die_with_parent
EXIT_ORPHANED = _shared.EXIT_ORPHANED  # the parent died before this child started its work


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
