"""The child process of the C simulation: load the compiled project library and run every sample.

Run as a script (``python -I -S csim_child.py WORKDIR``) by :mod:`hgq_chip.conversion.csim`,
never imported by hgq_chip. It uses only the standard library (so it starts in a few tens
of milliseconds), and whatever the firmware does (abort, assert, segfault) only this
process dies.

``WORKDIR/job.json`` holds ``{"library": path, "function": name, "samples": n,
"inputs": [[file, size], ...], "outputs": [[file, size], ...], "parent": pid}``. Every file is raw
native float64, ``n x size`` values in C order; the parent created the output files
zero-filled and they are written here through a shared memory map, so rows finished
before a crash are on disk. ``progress`` (one native int64) counts the samples done, so
after a crash the parent names the sample that crashed.

The samples run in a thread with a stack of STACK_BYTES: hls4ml's latency templates keep
whole layers in local arrays (``nnet_dense_latency.h`` declares ``accum_t mult[n_in * n_out]``,
8-16 MB for a 10^6-weight Dense), more than the 8 MB main-thread stack of a usual ``ulimit -s``.
The stack is reserved address space; only the pages the firmware touches take memory. Where
the system refuses such a thread, the samples run on the main thread.
"""

import ctypes
import json
import mmap
import os
import signal
import sys
import threading
from pathlib import Path

DOUBLE = 8
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
EXIT_ORPHANED = 3  # the parent died before this child started its work
STACK_BYTES = 1 << 30


def _mapped(path: Path):
    """A writable shared map of the file and its base address (the map must stay referenced)."""
    with open(path, "r+b") as file:
        mapped = mmap.mmap(file.fileno(), 0)
    return mapped, ctypes.addressof(ctypes.c_char.from_buffer(mapped))


def _die_with_parent(parent: int | None) -> None:
    """Ask Linux to SIGKILL this process when its parent dies (``prctl(PR_SET_PDEATHSIG)``), so
    a parent killed outright (SIGKILL, out of memory) leaves no simulation running; exit at once
    if the parent is already gone. Elsewhere (no prctl) the parent's own cleanup stops us."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:
        sys.exit(EXIT_ORPHANED)


def main(workdir: str) -> int:
    work = Path(workdir)
    job = json.loads((work / "job.json").read_text())
    _die_with_parent(job.get("parent"))
    function = getattr(ctypes.CDLL(job["library"]), job["function"])
    arguments = job["inputs"] + job["outputs"]
    function.argtypes = [ctypes.c_void_p] * len(arguments)
    function.restype = None
    maps = [_mapped(work / name) for name, _ in arguments]
    bases = [base for _, base in maps]
    strides = [size * DOUBLE for _, size in arguments]
    progress_map, progress_base = _mapped(work / "progress")
    progress = ctypes.c_int64.from_address(progress_base)

    def run_samples(counter):
        for s in range(job["samples"]):
            function(*[base + s * stride for base, stride in zip(bases, strides)])
            counter.value = s + 1

    _on_large_stack(run_samples, progress)
    del progress
    for mapped, _ in maps + [(progress_map, None)]:
        mapped.flush()
    return 0


def _on_large_stack(work, *arguments) -> None:
    """Run ``work(*arguments)`` in a thread with a STACK_BYTES stack (on this thread if none can be made).
    An exception in ``work`` propagates; a firmware crash ends the process either way."""
    failures = []

    def guarded():
        try:
            work(*arguments)
        except BaseException as error:  # re-raised on the calling thread
            failures.append(error)

    try:
        threading.stack_size(STACK_BYTES)
        thread = threading.Thread(target=guarded)
        thread.start()
    except (ValueError, RuntimeError, MemoryError):
        work(*arguments)
        return
    thread.join()
    if failures:
        raise failures[0]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
