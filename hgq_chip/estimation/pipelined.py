"""The pipelined Verilog ``hgq_chip synth`` synthesizes: ``hgq_chip.rtl.pipeline`` when present, else da4ml.

``write_pipelined(comb, directory, name, stages)`` writes da4ml's pipelined netlist of the
traced logic (``src/{name}.v`` with one register bank per stage, ``src/{name}_stage*.v``,
``src/static/``, ``metadata.json``) and returns the stage count written (= latency in
clock cycles). ``hgq_chip rtl``'s own writer (``hgq_chip.rtl.pipeline.pipelined_verilog``)
is used when installed, so ``synth`` and ``rtl`` write the same netlist; the fallback chooses
da4ml 0.6's ``latency_cutoff`` (abstract adder-level units; da4ml has no stage-count
argument) by bisection until ``to_pipeline`` gives ``stages`` stages.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import UnsupportedConfigurationError


def check_stages(stages) -> int:
    """``stages`` as an int >= 1; UnsupportedConfigurationError otherwise."""
    if isinstance(stages, bool) or not isinstance(stages, int) or stages < 1:
        raise UnsupportedConfigurationError(f"--stages must be a whole number of pipeline stages >= 1, got {stages!r}")
    return stages


def _count(comb, cutoff: float) -> int:
    from da4ml.trace.pipeline import to_pipeline

    return len(to_pipeline(comb, cutoff, retiming=False, verbose=False).solutions)


def cutoff_for_stages(comb, stages: int) -> float:
    """A da4ml ``latency_cutoff`` giving ``stages`` stages (before retiming); the nearest if none gives exactly that.

    Stage count falls as the cutoff grows; bisection over (0, total latency].
    """
    total = float(max(max(comb.out_latency, default=0.0), 1.0))
    if stages == 1:
        return total + 1.0
    low, high = 0.0, total  # count(high) == 1 (or small); count(low+) large
    best = (abs(_count(comb, total / stages) - stages), total / stages)
    for _ in range(24):
        middle = (low + high) / 2
        n = _count(comb, middle)
        best = min(best, (abs(n - stages), middle))
        if n == stages:
            return middle
        low, high = (middle, high) if n > stages else (low, middle)
        if high - low < 1e-3:
            break
    return best[1]


def pipeline_for_stages(comb, stages: int):
    """da4ml's Pipeline of ``comb`` with ``stages`` stages (retimed), as the fallback writer builds it."""
    from da4ml.trace.pipeline import to_pipeline

    return to_pipeline(comb, cutoff_for_stages(comb, stages), retiming=stages > 1, verbose=False)


def write_pipelined(comb, directory, name: str, stages: int, clock_period_ns: float = 5.0) -> int:
    """Write the pipelined netlist of ``comb`` into ``directory``; the number of stages written.

    ``clock_period_ns`` goes into the written XDC/SDC constraints only.
    """
    directory = Path(directory)
    stages = check_stages(stages)
    try:
        from ..rtl.pipeline import pipelined_verilog
    except ImportError:
        pipelined_verilog = None
    if pipelined_verilog is not None:
        pipelined_verilog(comb, directory, name, stages=stages, clock_period_ns=clock_period_ns)
    else:
        from da4ml.codegen import VerilogModel

        VerilogModel(pipeline_for_stages(comb, stages), name, directory, clock_period=clock_period_ns).write()
    meta = json.loads((directory / "metadata.json").read_text())
    written = meta.get("latency")
    return int(written) if isinstance(written, (int, float)) and math.isfinite(written) else stages
