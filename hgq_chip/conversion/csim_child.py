"""The child process of the C simulation: load the compiled project library and run every sample.

Run as a script (``python -I -S csim_child.py WORKDIR``) by :mod:`hgq_chip.conversion.csim`,
never imported by hgq_chip. It uses only the standard library (so it starts in a few tens
of milliseconds), and whatever the firmware does (abort, assert, segfault) only this
process dies.

``WORKDIR/job.json`` holds ``{"library": path, "function": name, "samples": n,
"inputs": [[file, size], ...], "outputs": [[file, size], ...]}``. Every file is raw
native float64, ``n x size`` values in C order; the parent created the output files
zero-filled and they are written here through a shared memory map, so rows finished
before a crash are on disk. ``progress`` (one native int64) counts the samples done, so
after a crash the parent names the sample that crashed.
"""

import ctypes
import json
import mmap
import sys
from pathlib import Path

DOUBLE = 8


def _mapped(path: Path):
    """A writable shared map of the file and its base address (the map must stay referenced)."""
    with open(path, "r+b") as file:
        mapped = mmap.mmap(file.fileno(), 0)
    return mapped, ctypes.addressof(ctypes.c_char.from_buffer(mapped))


def main(workdir: str) -> int:
    work = Path(workdir)
    job = json.loads((work / "job.json").read_text())
    function = getattr(ctypes.CDLL(job["library"]), job["function"])
    arguments = job["inputs"] + job["outputs"]
    function.argtypes = [ctypes.c_void_p] * len(arguments)
    function.restype = None
    maps = [_mapped(work / name) for name, _ in arguments]
    bases = [base for _, base in maps]
    strides = [size * DOUBLE for _, size in arguments]
    progress_map, progress_base = _mapped(work / "progress")
    progress = ctypes.c_int64.from_address(progress_base)
    for s in range(job["samples"]):
        function(*[base + s * stride for base, stride in zip(bases, strides)])
        progress.value = s + 1
    del progress
    for mapped, _ in maps + [(progress_map, None)]:
        mapped.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
