"""The child process of the C simulation: load the compiled project library and run every sample.

Run as a script (``python csim_child.py WORKDIR``) by :mod:`hgq_chip.conversion.csim`, never
imported by hgq_chip, and it imports nothing but the standard library and NumPy: whatever
the firmware does (abort, assert, segfault), only this process dies.

``WORKDIR/job.json`` holds ``{"library": path, "function": name, "inputs": [...], "outputs": [...]}``
(``.npy`` file names inside ``WORKDIR``). Inputs are float64 arrays ``(n, size)``; the outputs
are float64 ``.npy`` files the parent created with the right shapes, written here through a
memory map, so the rows finished before a crash are on disk. ``progress.npy`` (one int64)
counts the samples done: after a crash the parent names the sample that crashed.
"""

import ctypes
import json
import sys
from pathlib import Path

import numpy as np


def main(workdir: str) -> int:
    work = Path(workdir)
    job = json.loads((work / "job.json").read_text())
    function = getattr(ctypes.CDLL(job["library"]), job["function"])
    n_args = len(job["inputs"]) + len(job["outputs"])
    function.argtypes = [ctypes.c_void_p] * n_args
    function.restype = None
    inputs = [np.ascontiguousarray(np.load(work / name), np.float64) for name in job["inputs"]]
    outputs = [np.load(work / name, mmap_mode="r+") for name in job["outputs"]]
    progress = np.load(work / "progress.npy", mmap_mode="r+")
    arrays = inputs + outputs
    # Raw addresses: one pointer addition per argument and sample, no per-call array conversion.
    bases = [a.ctypes.data for a in arrays]
    strides = [a.strides[0] for a in arrays]
    n = len(inputs[0]) if inputs else len(outputs[0])
    for s in range(n):
        function(*[base + s * stride for base, stride in zip(bases, strides)])
        progress[0] = s + 1
    for out in outputs:
        out.flush()
    progress.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
