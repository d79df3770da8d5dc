"""What compiling a project's C simulation will cost, predicted from its files before g++ runs.

g++ spends its time on the code hls4ml generates per element, not on the weights (hls4ml
1.3 writes them to ``firmware/weights/*.txt``, which the C simulation loads at its first
call; the headers hold them only for HLS synthesis). Two things grow with the model:

- generated statements in ``firmware/nnet_utils/nnet_code_gen.h``: one cast per element of a
  per-element activation quantizer, and for io_parallel convolutions one copy per output pixel,
  kernel tap and input channel (hls4ml unrolls the im2col buffer fill per pixel);
- the weights, through the loops of the latency Dense/Conv templates (their trip counts).

Measured with ``benchmarks/convert_scaling.py`` on the reference machine (2 cores shared with
other jobs, g++ 12 at hls4ml's ``-O3``), from 10^3 to 10^6 weights, compile time and peak
compiler memory are close to linear in both:

    seconds   ~ COMPILE_BASE_SECONDS + SECONDS_PER_STATEMENT * statements + SECONDS_PER_WEIGHT * weights
    megabytes ~ COMPILE_BASE_MB + MB_PER_STATEMENT * statements + MB_PER_WEIGHT * weights

(e.g. 10^6-weight MLP 784-1024-192-10: 2.8k statements, 49 s, 0.48 GB; CNN with 10^5 weights
and per-element activations: 29k statements, 136 s, 0.9 GB). ``-O0`` compiles about 3x faster
but runs 20-40x slower, ``-O1`` saves nothing, so the flags stay hls4ml's.

A project predicted to take more than MAX_COMPILE_SECONDS, or more memory than the system has
available, is refused before compiling (:class:`~hgq_chip.errors.SimulationTooLargeError`)
unless the caller allows it (``allow_large=True``, ``hgq_chip verify --allow-large``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

COMPILE_BASE_SECONDS = 10.0
SECONDS_PER_STATEMENT = 4.5e-3
SECONDS_PER_WEIGHT = 3.0e-5
COMPILE_BASE_MB = 340.0
MB_PER_STATEMENT = 0.0205
MB_PER_WEIGHT = 1.0e-4
# Refused above this predicted compile time (an hour on the reference machine) ...
MAX_COMPILE_SECONDS = 3600.0
# ... or above this fraction of the memory the system reports available.
MAX_MEMORY_FRACTION = 0.8

CODE_GEN = Path("firmware") / "nnet_utils" / "nnet_code_gen.h"
_SHAPE = re.compile(r"^//Numpy array shape \[([\d,\s]*)\]", re.M)


@dataclass(frozen=True)
class CSimCost:
    """Predicted g++ cost of a project's C simulation (``seconds``, ``megabytes`` of peak memory),
    from its generated ``statements`` and ``weights``; ``available_mb``: memory the system has
    (None where unknown)."""

    statements: int
    weights: int
    seconds: float
    megabytes: float
    available_mb: float | None

    @property
    def fits(self) -> bool:
        """Whether compiling is practical here: under MAX_COMPILE_SECONDS and the memory limit."""
        memory_ok = self.available_mb is None or self.megabytes <= MAX_MEMORY_FRACTION * self.available_mb
        return self.seconds <= MAX_COMPILE_SECONDS and memory_ok

    def describe(self) -> str:
        memory = f" of {self.available_mb / 1024:.1f} GB available" if self.available_mb is not None else ""
        return (f"{self.statements} generated statements and {self.weights} weights: about "
                f"{_duration(self.seconds)} of g++ and {self.megabytes / 1024:.1f} GB of memory{memory}")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def count_statements(project_dir: Path) -> int:
    """Statements (``;``) in the project's generated code file; 0 if it has none."""
    path = Path(project_dir) / CODE_GEN
    return path.read_text(errors="replace").count(";") if path.is_file() else 0


def count_weights(project_dir: Path) -> int:
    """Weights of the firmware, from the array shapes hls4ml notes atop each weight header."""
    total = 0
    for header in sorted((Path(project_dir) / "firmware" / "weights").glob("*.h")):
        with open(header, errors="replace") as handle:
            head = handle.read(400)
        found = _SHAPE.search(head)
        if found:
            total += math.prod(int(d) for d in found.group(1).replace(",", " ").split())
    return total


def available_memory_mb() -> float | None:
    """MemAvailable of /proc/meminfo in MB (None where there is no such file)."""
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    found = re.search(r"^MemAvailable:\s+(\d+) kB", text, re.M)
    return int(found.group(1)) / 1024 if found else None


def csim_cost(project_dir) -> CSimCost:
    """The predicted compile cost of ``project_dir`` (see the module docstring for the model)."""
    statements, weights = count_statements(project_dir), count_weights(project_dir)
    seconds = COMPILE_BASE_SECONDS + SECONDS_PER_STATEMENT * statements + SECONDS_PER_WEIGHT * weights
    megabytes = COMPILE_BASE_MB + MB_PER_STATEMENT * statements + MB_PER_WEIGHT * weights
    return CSimCost(statements, weights, seconds, megabytes, available_memory_mb())
