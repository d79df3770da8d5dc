"""Cost of each operation of the facts: LUTs, DSPs, BRAMs, output bits and logic delay.

Each function takes one typed operation (``conversion/ops.py``) and returns an ``OpCost``;
:data:`COSTS` maps every operation class to its cost, and the constants all live in constants.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..conversion.ops import CMVM, Add, AvgPool, Cast, MaxPool, MinMax, Op, Product, Relu, Table
from ..fixed.format import ArrayFormat
from ..fixed.interval import Interval
from . import constants as C
from .arithmetic import column_adder_bits, column_depth, csd_digits, integer_mantissas, uses_dsp


@dataclass
class OpCost:
    lut: float = 0.0
    dsp: int = 0
    bram: float = 0.0
    out_bits: int = 0  # bits of the operation's output tensor (what a pipeline register holds)
    delay_ns: float = 0.0  # combinational delay of the operation


def _widths(kif: dict) -> np.ndarray:
    return np.maximum(np.asarray(kif["k"]) + np.asarray(kif["i"]) + np.asarray(kif["f"]), 0)


def _adder_delay(width) -> float:
    return C.LUT_DELAY_NS + float(np.max(width, initial=0)) * C.CARRY_DELAY_PER_BIT_NS


def _live(mask, shape) -> np.ndarray:
    """The live mask (see liveness.py) in the op's output shape; None means all live."""
    return np.ones(shape, bool) if mask is None else np.asarray(mask, bool).reshape(shape)


def cast_cost(op: Op, live_out=None) -> OpCost:
    """A quantizer: free wiring unless it rounds away bits (RND) or clips the range (SAT)."""
    out = op.out
    width = _widths(out)
    live = (width > 0) & _live(live_out, width.shape)
    fmt = ArrayFormat(np.where(live, out["k"], 0), np.where(live, out["i"], 0), np.where(live, out["f"], 0),
                      overflow=op.overflow)
    rounds = live & (op.rounding == "RND") & (np.asarray(op.in_f) > np.asarray(out["f"]))
    clips = live & (op.overflow != "WRAP") & ((np.asarray(op.in_lo) < fmt.min) | (np.asarray(op.in_hi) > fmt.max))
    lut = C.LUT_PER_ROUNDING * np.count_nonzero(rounds) + C.LUT_PER_SATURATION_BIT * width[clips].sum()
    busy = rounds | clips
    return OpCost(lut=float(lut), out_bits=int(width.sum()),
                  delay_ns=_adder_delay(width[busy]) if busy.any() else 0.0)


def _row_intervals(rows: dict) -> Interval:
    return Interval.of_format(ArrayFormat(rows["k"], rows["i"], rows["f"]))


def accumulator_format(op: Op) -> ArrayFormat:
    """Per output column, the exact format of the sum (kernel products plus bias)."""
    kernel = np.asarray(op.kernel, np.float64)
    x = _row_intervals(op.rows)
    live = _widths(op.rows) > 0
    w = np.where(live[:, None], kernel, 0.0)
    products = Interval(x.lo[:, None], x.hi[:, None], x.f[:, None]) * Interval.of_constants(w)
    return (products.sum(axis=0) + Interval.of_constants(np.asarray(op.bias, np.float64))).to_format()


def accumulator_widths(op: Op) -> np.ndarray:
    return np.maximum(accumulator_format(op).width, 1)


def _weight_widths(kernel) -> np.ndarray:
    m = integer_mantissas(kernel)
    return np.where(m > 0, np.floor(np.log2(np.maximum(m, 1))).astype(np.int64) + 2, 0)  # magnitude + sign


def _live_positions(op: Op, live_out) -> np.ndarray:
    """Per output column, at how many positions its result is used."""
    columns = np.shape(op.kernel)[1]
    return _live(live_out, (int(op.positions), columns)).sum(axis=0)


def cmvm_latency_cost(op: Op, dsp_min_product_bits: int, live_out=None) -> OpCost:
    """hls4ml's latency strategy: every product on its own, then one adder tree per output.

    Every nonzero signed digit of a weight is one term (a shifted copy of the activation);
    a product the DSP rule sends to a DSP is one term as wide as the product.
    """
    kernel = np.asarray(op.kernel, np.float64)
    act = _widths(op.rows)[:, None] * np.ones(kernel.shape, np.int64)
    live = (kernel != 0) & (act > 0)
    dsp = live & uses_dsp(_weight_widths(kernel), act, kernel, dsp_min_product_bits)
    digits = np.where(live & ~dsp, csd_digits(kernel), 0)
    product_width = act + _weight_widths(kernel)
    n_terms = digits.sum(axis=0) + dsp.sum(axis=0) + (np.asarray(op.bias) != 0)
    term_bits = (digits * act).sum(axis=0) + (dsp * product_width).sum(axis=0)
    accum = accumulator_widths(op)
    # A bias is one more term; it counts with the mean width of the others.
    term_width = np.where(n_terms > 0, term_bits / np.maximum(n_terms - (np.asarray(op.bias) != 0), 1), 0)
    uses = _live_positions(op, live_out)
    lut = (column_adder_bits(term_width, n_terms, accum) * uses).sum()
    depth = int(column_depth(n_terms).max(initial=0))
    dsp_delay = C.LUT_DELAY_NS * 2 if dsp.any() else 0.0
    return OpCost(lut=float(lut), dsp=int((dsp.sum(axis=0) * uses).sum()),
                  out_bits=int((accum * uses).sum()), delay_ns=dsp_delay + depth * _adder_delay(accum))


def da4ml_solution(op: Op):
    """da4ml's own CMVM solution for one position of the layer, on the exact input intervals."""
    from da4ml.cmvm import solve

    kernel = np.asarray(op.kernel, np.float64)
    x = _row_intervals(op.rows)
    live = _widths(op.rows) > 0
    qintervals = [(float(lo), float(hi), float(2.0 ** -f)) if ok else (0.0, 0.0, 1.0)
                  for lo, hi, f, ok in zip(x.lo, x.hi, x.f, live)]
    kernel = np.where(live[:, None], kernel, 0.0)
    return solve(np.ascontiguousarray(kernel, np.float32), qintervals=qintervals, adder_size=1, carry_size=-1)


def cmvm_da_cost(op: Op, live_out=None) -> OpCost:
    """hls4ml's distributed_arithmetic strategy (da4ml): da4ml's cost for the kernel's used
    columns, times the positions (scaled by the share of used results per position)."""
    uses = _live_positions(op, live_out)
    used = uses > 0
    if not used.any():
        return OpCost()
    op = replace(op, kernel=np.asarray(op.kernel)[:, used], bias=np.asarray(op.bias)[used])
    uses = uses[used]
    try:
        solution = da4ml_solution(op)
    except ImportError as error:
        from ..errors import ToolMissingError

        raise ToolMissingError(
            "the distributed_arithmetic estimate needs da4ml: pip install 'hgq_chip[rtl]'"
        ) from error
    accum = accumulator_widths(op)
    bias_adders = (np.asarray(op.bias) != 0) * accum
    # One solution per position; a position where only some columns are used keeps that share.
    lut = C.LUT_PER_DA4ML_COST_BIT * solution.cost * uses.sum() / uses.size + C.LUT_PER_ADDER_BIT * (bias_adders * uses).sum()
    levels = math.ceil(max(solution.latency[1], 0.0))
    return OpCost(lut=float(lut), out_bits=int((accum * uses).sum()),
                  delay_ns=levels * _adder_delay(accum))


def product_cost(op: Op, dsp_min_product_bits: int, live_out=None) -> OpCost:
    """Products of two variable operands (ASQ's x·1/β and acc·β, HMultiply's a·b): a DSP when
    wide enough (the DSP rule), else a soft multiplier of about LUT_PER_VARIABLE_PRODUCT_BIT
    per operand-bit pair. ``a_width``/``b_width``: one width for every element, or one per
    element (shaped like ``out``); a product with a zero-width operand is the constant 0."""
    shape = np.shape(op.out["k"])
    a = np.broadcast_to(np.asarray(op.a_width, np.int64), shape).ravel()
    b = np.broadcast_to(np.asarray(op.b_width, np.int64), shape).ravel()
    live = _live(live_out, a.size) & (a > 0) & (b > 0)
    dsp = live & (a * b >= dsp_min_product_bits)
    soft = live & ~dsp
    out_bits = int((a + b)[live].sum())
    delay = 2 * C.LUT_DELAY_NS if dsp.any() else 0.0
    if soft.any():
        levels = int(column_depth(np.minimum(a, b)[soft]).max())
        delay = max(delay, C.LUT_DELAY_NS + levels * _adder_delay((a + b)[soft]))
    lut = float((a * b)[soft].sum() * C.LUT_PER_VARIABLE_PRODUCT_BIT)
    return OpCost(lut=lut, dsp=int(dsp.sum()), out_bits=out_bits, delay_ns=delay)


def minmax_cost(op: Op) -> OpCost:
    """Elementwise maximum/minimum of n inputs: n - 1 comparisons per element, each a
    subtractor plus a 2:1 mux per output bit (as a max pool's, LUT_PER_MAX_BIT)."""
    width = _widths(op.out)
    steps = max(int(op.n_inputs) - 1, 0)
    return OpCost(lut=float(C.LUT_PER_MAX_BIT * steps * width.sum()), out_bits=int(width.sum()),
                  delay_ns=steps * _adder_delay(width))


def relu_cost(op: Op, live_out=None) -> OpCost:
    width = _widths(op.out)
    width = np.where(_live(live_out, width.shape), width, 0)
    return OpCost(lut=float(C.LUT_PER_RELU_BIT * width.sum()), out_bits=int(width.sum()), delay_ns=C.LUT_DELAY_NS)


def table_cost(op: Op, live_out=None) -> OpCost:
    """One ROM per used element (io_parallel reads every element at once)."""
    entries = 2 ** int(op.index_width)
    out_width = int(op.out_width)
    elements = int(_live(live_out, int(op.elements)).sum())
    if entries >= C.BRAM_MIN_ENTRIES:
        # A dual-port BRAM serves two elements.
        per_copy = math.ceil(entries * out_width / C.BRAM36_BITS * 2) / 2
        return OpCost(bram=per_copy * math.ceil(elements / 2), out_bits=out_width * elements, delay_ns=2 * C.LUT_DELAY_NS)
    luts = math.ceil(entries / C.LUT6_ROM_ENTRIES)
    mux_levels = math.ceil(math.log(luts, 4)) if luts > 1 else 0
    return OpCost(lut=float(luts * out_width * elements), out_bits=out_width * elements,
                  delay_ns=(1 + mux_levels) * C.LUT_DELAY_NS)


def pool_cost(op: Op) -> OpCost:
    width = _widths(op.out)
    steps = max(int(op.window) - 1, 0)
    per_bit = C.LUT_PER_MAX_BIT if isinstance(op, MaxPool) else C.LUT_PER_ADDER_BIT
    depth = math.ceil(math.log2(op.window)) if op.window > 1 else 0
    return OpCost(lut=float(per_bit * steps * width.sum()), out_bits=int(width.sum()),
                  delay_ns=depth * _adder_delay(width))


def add_cost(op: Op) -> OpCost:
    width = _widths(op.out)
    steps = max(int(op.n_inputs) - 1, 0)
    return OpCost(lut=float(C.LUT_PER_ADDER_BIT * steps * width.sum()), out_bits=int(width.sum()),
                  delay_ns=steps * _adder_delay(width))


def _cmvm_cost(op: Op, strategy: str, dsp_min_product_bits: int, live_out=None) -> OpCost:
    # latency_only (our ASQ/POST template, hls4ml's DepthwiseConv): no DA code either way.
    if strategy == "distributed_arithmetic" and not op.latency_only:
        return cmvm_da_cost(op, live_out)
    return cmvm_latency_cost(op, dsp_min_product_bits, live_out)


# The cost of each operation class of conversion/ops.OPERATIONS (tests/test_registries.py checks the
# two tables list the same classes): fn(op, strategy, dsp_min_product_bits, live_out) -> OpCost.
COSTS = {
    Cast: lambda op, strategy, dsp_bits, live: cast_cost(op, live),
    CMVM: _cmvm_cost,
    Relu: lambda op, strategy, dsp_bits, live: relu_cost(op, live),
    Table: lambda op, strategy, dsp_bits, live: table_cost(op, live),
    MaxPool: lambda op, strategy, dsp_bits, live: pool_cost(op),
    AvgPool: lambda op, strategy, dsp_bits, live: pool_cost(op),
    Add: lambda op, strategy, dsp_bits, live: add_cost(op),
    MinMax: lambda op, strategy, dsp_bits, live: minmax_cost(op),
    Product: lambda op, strategy, dsp_bits, live: product_cost(op, dsp_bits, live),
}


def op_cost(op: Op, strategy: str, dsp_min_product_bits: int, live_out=None) -> OpCost:
    """Cost of ``op`` (looked up by its class in :data:`COSTS`); ``live_out`` marks the output
    elements that are used (None: all). ValueError for a class not in the table."""
    cost = COSTS.get(type(op))
    if cost is None:
        raise ValueError(f"no cost for the operation {type(op).__name__} in the estimate inputs")
    return cost(op, strategy, dsp_min_product_bits, live_out)
