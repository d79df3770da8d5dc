"""C simulation of a written project: build its shared library with g++ and call it via ctypes.

This reads only the project directory, so ``verify`` checks exactly the firmware on disk.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from ..errors import HGQChipError, ToolMissingError


class CSimulation:
    def __init__(self, project_dir, project_name: str = "myproject"):
        self.project_dir = Path(project_dir)
        self.project_name = project_name
        self._lib = None

    def _library_path(self) -> Path:
        script = (self.project_dir / "build_lib.sh").read_text()
        stamp = re.search(r"^LIB_STAMP=(\S+)", script, re.M)
        if not stamp:
            raise HGQChipError(f"{self.project_dir}/build_lib.sh has no LIB_STAMP; is this an hls4ml project?")
        return self.project_dir / "firmware" / f"{self.project_name}-{stamp.group(1)}.so"

    def build(self) -> Path:
        if shutil.which("g++") is None:
            raise ToolMissingError("g++ is not installed; C simulation needs it (e.g. apt-get install g++)")
        if not (self.project_dir / "build_lib.sh").exists():
            raise HGQChipError(f"{self.project_dir} is not an hls4ml project (no build_lib.sh); run `hgq_chip convert` first")
        path = self._library_path()
        if self.needs_build():
            done = subprocess.run(["bash", "build_lib.sh"], cwd=self.project_dir, capture_output=True, text=True)
            if done.returncode != 0:
                raise HGQChipError(f"compiling the C simulation failed:\n{done.stderr[-4000:]}")
        self._lib = ctypes.cdll.LoadLibrary(str(path))
        return path

    def needs_build(self) -> bool:
        """False when the library is newer than every source of the project."""
        if not (self.project_dir / "build_lib.sh").exists():
            return True  # build() then explains that this is no project
        return not self._is_up_to_date(self._library_path())

    def _is_up_to_date(self, library: Path) -> bool:
        if not library.exists():
            return False
        sources = [p for p in self.project_dir.rglob("*") if p.is_file() and p.suffix != ".so"]
        return library.stat().st_mtime >= max(p.stat().st_mtime for p in sources)

    def run(self, inputs: list[np.ndarray], output_sizes: list[int]) -> list[np.ndarray]:
        """Run every sample through the firmware in double precision (exact for < 53-bit types)."""
        if self._lib is None:
            self.build()
        function = getattr(self._lib, f"{self.project_name}_double")
        ptr = np.ctypeslib.ndpointer(ctypes.c_double, flags="C_CONTIGUOUS")
        function.argtypes = [ptr] * (len(inputs) + len(output_sizes))
        function.restype = None
        n = len(inputs[0])
        flat_inputs = [np.ascontiguousarray(np.asarray(x, np.float64).reshape(n, -1)) for x in inputs]
        outputs = [np.zeros((n, size), np.float64) for size in output_sizes]
        for s in range(n):
            rows = [x[s] for x in flat_inputs]
            out_rows = [np.zeros(size, np.float64) for size in output_sizes]
            function(*rows, *out_rows)
            for out, row in zip(outputs, out_rows):
                out[s] = row
        return outputs
