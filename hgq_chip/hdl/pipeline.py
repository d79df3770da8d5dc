"""Pipelined Verilog of traced logic: a chosen number of register stages, through da4ml 0.6.

da4ml has no "number of stages" argument: ``VerilogModel(comb, name, dir, latency_cutoff=C)``
splits the logic with ``da4ml.trace.pipeline.to_pipeline(comb, C)`` wherever an operation's
latency crosses a multiple of ``C`` (then retimes to balance the stages). Latency here is
da4ml's abstract unit: with the default ``HWConfig(adder_size=1, carry_size=-1)`` hgq_chip
traces with, an adder or subtracter of any width costs 1, a table lookup ``max(bits_in - 6,
1)``, a bit operation 1, wiring (shifts, negation of a constant, relu) 0
(``da4ml.trace.fixed_variable.FixedVariable.get_cost_and_latency`` and ``cost_add``; measured:
``cost_add`` returns latency 1.0 for 4- to 24-bit operands). So a unit is one adder level.

``pipelined_verilog`` turns a stage count (or a clock period) into the cutoff and writes the
project; ``PipelineInfo`` is what it wrote.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import UnsupportedConfigurationError
from ..estimation import constants as C
from .compat import load

DEFAULT_CLOCK_PERIOD_NS = 5.0  # da4ml's default constraint (VerilogModel clock_period=5)
# Delay of one da4ml latency unit (one adder level) on a Xilinx -2 fabric, from the estimate's
# timing constants (hgq_chip.estimation.constants: a LUT level with routing plus a 16-bit carry
# chain, DS923-based); a model, not a measurement of this design: `hgq_chip synth --pnr` measures.
TYPICAL_ADDER_BITS = 16
NS_PER_LATENCY_UNIT = C.LUT_DELAY_NS + TYPICAL_ADDER_BITS * C.CARRY_DELAY_PER_BIT_NS


@dataclass(frozen=True)
class PipelineInfo:
    """What ``pipelined_verilog`` wrote.

    ``stages``: register stages (da4ml's ``Pipeline.solutions``), >= 1; ``cutoff``: da4ml latency
    units (adder levels) per stage after retiming; ``latency_cycles``: clock cycles from an input
    sample to its output (= ``stages``: each stage ends in a register bank, the last one being the
    output register); ``register_bits``: bits of pipeline registers as da4ml counts them
    (``Pipeline.reg_bits``: input bits plus every stage's outputs); ``depth``: the combinational
    logic's depth in latency units; ``max_stages``: the most stages ``stages=`` accepts for this
    logic; ``clock_period_ns``: the period written into the constraints; ``sources``: the written
    files, relative to the project directory, Verilog first; ``top``: the top module's name.
    """

    stages: int
    cutoff: float
    latency_cycles: int
    register_bits: int
    depth: float
    max_stages: int
    clock_period_ns: float
    top: str
    sources: tuple[str, ...]

    def to_dict(self) -> dict:
        return {**asdict(self), "sources": list(self.sources), "latency_unit": "da4ml adder levels"}


def logic_depth(comb) -> float:
    """The deepest output's latency in da4ml units (adder levels), 0 for pure wiring."""
    return float(max(comb.latency)) if len(comb.out_idxs) else 0.0


def _atomic_latency(comb) -> float:
    """The longest single operation (its latency minus its latest operand's), in da4ml units."""
    longest = 0.0
    for op in comb.ops:
        if op.opcode == -1:
            continue
        parents = [i for i in (op.id0, op.id1) if i >= 0]
        if op.opcode in (6, -6):  # mux: the condition's index is in the low 32 bits of data
            parents.append(op.data & 0xFFFFFFFF)
        if not parents:  # a constant: it takes the latency of where it is used, costs no time
            continue
        start = max(comb.ops[i].latency for i in parents)
        longest = max(longest, float(op.latency) - float(start))
    return longest


def _count(pipe) -> int:
    return len(pipe.solutions)


def max_stages(comb) -> int:
    """The most pipeline stages for this logic: one stage per longest single operation.

    Shorter cutoffs would only add stages of pure registers (da4ml copies values through them).
    """
    depth, unit = logic_depth(comb), _atomic_latency(comb)
    if depth <= 0 or unit <= 0:
        return 1
    return _count(load().to_pipeline(comb, unit, verbose=False))


def pipeline_for_stages(comb, stages: int):
    """``(pipeline, cutoff)``: da4ml's ``Pipeline`` of ``comb`` with exactly ``stages`` stages.

    Before retiming, ``to_pipeline(comb, C)`` puts an operation of latency ``t`` in stage
    ``floor(t / C)`` and copies values forward, so it makes ``floor(depth / C) + 1`` stages;
    ``C = depth / (stages - 0.5)`` gives ``stages``. Retiming (a bisection on ``C`` that never adds
    stages) balances them; if it ever drops a stage the unretimed split is used.
    Raises UnsupportedConfigurationError when ``stages`` is outside ``1..max_stages(comb)``.
    """
    lib = load()
    top = max_stages(comb)
    if not isinstance(stages, int) or isinstance(stages, bool) or not 1 <= stages <= top:
        raise UnsupportedConfigurationError(
            f"this model's logic can be pipelined into 1 to {top} stages (its depth is {logic_depth(comb):g} "
            f"adder levels); {stages!r} stages were asked: pass --stages between 1 and {top}")
    depth = logic_depth(comb)
    cutoff = 2.0 * depth + 1.0 if stages == 1 or depth <= 0 else depth / (stages - 0.5)
    pipe = lib.to_pipeline(comb, cutoff, verbose=False)
    if _count(pipe) != stages:
        pipe = lib.to_pipeline(comb, cutoff, retiming=False, verbose=False)
    if _count(pipe) != stages:  # da4ml's split rule changed: refuse rather than mislabel the latency
        raise UnsupportedConfigurationError(
            f"da4ml {lib.version} made {_count(pipe)} stages for a cutoff of {cutoff:g} where {stages} were "
            "expected; pin da4ml>=0.6,<0.7 (pip install 'hgq_chip[rtl]')")
    actual = max(max(sol.latency) / (i + 1) for i, sol in enumerate(pipe.solutions))  # as VerilogModel reports it
    return pipe, float(actual)


def _check_period(clock_period_ns) -> None:
    if isinstance(clock_period_ns, bool) or not (isinstance(clock_period_ns, (int, float))
                                                  and math.isfinite(clock_period_ns) and clock_period_ns > 0):
        raise UnsupportedConfigurationError(f"--clock-period must be a positive number of ns, not {clock_period_ns!r}")


def stages_for_clock(comb, clock_period_ns: float) -> int:
    """Stages so that each stage's logic fits in the usable part of ``clock_period_ns`` (ns).

    Stage delay model: ``cutoff * NS_PER_LATENCY_UNIT`` ns (0.74 ns per adder level, the
    estimate's Xilinx -2 timing constants) must fit ``clock_period_ns * USABLE_CLOCK_FRACTION``
    (0.875: hls4ml's default 12.5 % clock uncertainty). Raises UnsupportedConfigurationError when
    the period is not positive or shorter than the longest single operation needs.
    """
    _check_period(clock_period_ns)
    usable = clock_period_ns * C.USABLE_CLOCK_FRACTION
    levels_per_stage = math.floor(usable / NS_PER_LATENCY_UNIT + 1e-9)
    unit = max(_atomic_latency(comb), 1.0)
    if levels_per_stage < unit:
        shortest = unit * NS_PER_LATENCY_UNIT / C.USABLE_CLOCK_FRACTION
        raise UnsupportedConfigurationError(
            f"a {clock_period_ns:g} ns clock is shorter than this model's longest single operation needs "
            f"(~{shortest:.2f} ns in hgq_chip's timing model); pass --clock-period {math.ceil(shortest * 100) / 100:g} "
            "or more, or --stages N")
    depth = logic_depth(comb)
    return min(max(1, math.ceil(depth / levels_per_stage)), max_stages(comb))


def pipelined_verilog(comb, directory, name: str, *, stages: int | None = None,
                      clock_period_ns: float | None = None) -> PipelineInfo:
    """Write da4ml's pipelined Verilog of ``comb`` (a da4ml ``CombLogic``) into ``directory``.

    ``stages`` fixes the number of register stages (1 to ``max_stages(comb)``); otherwise it is
    chosen from ``clock_period_ns`` by ``stages_for_clock`` (default period 5 ns). The period
    (ns) goes into the written constraints ``src/<name>.xdc`` and ``.sdc`` either way. Writes
    ``src/<name>.v`` (top: ``clk``, ``<name>_inp``, ``<name>_out``), ``src/<name>_stage*.v``,
    ``src/<name>_wrapper.v`` (uniform-width ports for simulation), ``src/static/*.v``,
    ``src/memfiles/`` (table contents), ``sim/`` (da4ml's Verilator binder), ``model/pipeline.json``,
    ``metadata.json`` and Vivado/Quartus build scripts. Raises UnsupportedConfigurationError
    (``stages`` out of range, a clock period too short or not positive) before writing, and
    ToolMissingError without da4ml.
    """
    lib = load()
    period = DEFAULT_CLOCK_PERIOD_NS if clock_period_ns is None else clock_period_ns
    if stages is None:
        stages = stages_for_clock(comb, period)
    else:
        _check_period(period)
    pipe, cutoff = pipeline_for_stages(comb, stages)
    directory = Path(directory)
    model = lib.VerilogModel(pipe, name, directory, clock_period=float(period))
    model.write()
    src = directory / "src"
    if name != "model":  # da4ml's constraint templates name the ports model_inp/model_out whatever the top
        for path in (src / f"{name}.xdc", src / f"{name}.sdc"):
            text = path.read_text().replace("model_inp[", f"{name}_inp[").replace("model_out[", f"{name}_out[")
            path.write_text(text)
    verilog = sorted(str(p.relative_to(directory)) for p in src.rglob("*.v"))
    others = sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                    if p.is_file() and p.suffix != ".v" and p.parent.name != "__pycache__")
    return PipelineInfo(stages=stages, cutoff=cutoff, latency_cycles=stages, register_bits=int(pipe.reg_bits),
                        depth=logic_depth(comb), max_stages=max_stages(comb), clock_period_ns=float(period),
                        top=name, sources=tuple(verilog + others))
