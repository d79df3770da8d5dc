"""The pipelined Verilog ``hgq_chip synth`` synthesizes: the one ``hgq_chip rtl`` writes.

``write_pipelined(comb, directory, name, stages)`` writes da4ml's pipelined netlist of the
traced logic through ``hgq_chip.hdl.pipeline.pipelined_verilog`` (``src/{name}.v`` with one
register bank per stage, ``src/{name}_stage*.v``, ``src/static/``, ``metadata.json``), so
``synth`` measures exactly what ``rtl`` delivers, and returns the stage count written
(= latency in clock cycles; ``stages=None`` lets ``hdl.pipeline.stages_for_clock`` choose it
from the clock period).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UnsupportedConfigurationError


def check_stages(stages) -> int:
    """``stages`` as an int >= 1; UnsupportedConfigurationError otherwise."""
    if isinstance(stages, bool) or not isinstance(stages, int) or stages < 1:
        raise UnsupportedConfigurationError(f"--stages must be a whole number of pipeline stages >= 1, got {stages!r}")
    return stages


def pipeline_for_stages(comb, stages: int):
    """da4ml's Pipeline of ``comb`` with ``stages`` stages, as ``write_pipelined`` writes it.

    Raises UnsupportedConfigurationError when ``stages`` is more than the logic can be cut into.
    """
    from ..hdl.pipeline import pipeline_for_stages as split

    return split(comb, stages)[0]


def write_pipelined(comb, directory, name: str, stages: int | None, clock_period_ns: float = 5.0) -> int:
    """Write the pipelined netlist of ``comb`` into ``directory``; the number of stages written.

    ``clock_period_ns`` goes into the written XDC/SDC constraints, and picks the stage count
    when ``stages`` is None. Raises UnsupportedConfigurationError (stages out of range).
    """
    from ..hdl.pipeline import pipelined_verilog

    if stages is not None:
        check_stages(stages)
    info = pipelined_verilog(comb, Path(directory), name, stages=stages, clock_period_ns=clock_period_ns)
    return int(info.stages)
