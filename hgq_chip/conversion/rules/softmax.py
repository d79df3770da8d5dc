"""Precision rule and hls4ml handler for HSoftmax (``firmware_templates/nnet_hgq_softmax.h``).

Types, per row of n elements (interval arithmetic; only the two declared casts round):

- ``data_T``: the input quantizer stage's result (the covering format of ``iq``);
- ``diff``: ``max(x) - x`` in [0, hi - lo] (stable), the exp table's index; else the index is x;
  the stable table ends where its entries become constant (``constant_tail_cut``);
- ``exp_table``: the narrowest type holding every exp table entry; ``sum``: n times that range;
- ``inv_in``: ``sum_q``'s format with its rounding and overflow (the cast), the inverse table's index;
- ``inv_table``: the narrowest type holding every inverse table entry;
- ``product``: e * r exactly; ``result``: ``oq``'s format with its rounding and overflow.

The tables' entries come from the Keras layer's own ops (``HSoftmax.exp_table`` /
``inverse_table``) on every value of the index type, ordered by the index's raw bits.
"""

from __future__ import annotations

import math

import numpy as np

from ...errors import UnsupportedLayerError
from ...fixed.format import FixedFormat
from ...fixed.interval import Interval
from ...layers.activation import MAX_TABLE_INPUT_BITS, representable_values
from ...layers.softmax import HSoftmax
from ..family import handler, limits, rule, trace
from ..softmax_hls import HLS_CLASS_NAME, IO_STREAM_ADVICE
from ..ops import Add, Cast, MaxPool, Op, Product, Table
from ..option import io_types_option
from ..records import FloatValues, HLSLayerTypes, LayerRecord, format_of, interval_bits, is_uniform, sum_bits
from . import _trace
from ._stages import layer_dict, quantized_input, quantizer_name, quantizer_stage, record_of_layer


def uniform_format(layer, quantizer, cast: bool = True) -> FixedFormat:
    """The single format of a per-layer quantizer, with its modes; else UnsupportedLayerError. A
    ``cast`` (sum_q, oq: the firmware casts into it) must have bits; a table's output quantizer
    (exp_q, inv_q) of 0 bits only fills its table with zeros."""
    fmt = quantizer.fixed_format()
    if not is_uniform(fmt):
        raise UnsupportedLayerError(f"{layer.name}: quantizer {quantizer.name!r} needs one format for the whole "
                                    "tensor; give it granularity='per-layer'")
    one = fmt[(0,) * fmt.k.ndim]
    if cast and one.width <= 0:
        raise UnsupportedLayerError(
            f"{layer.name}: quantizer {quantizer.name!r} of HSoftmax has 0 bits (it outputs only 0, so the softmax "
            "is constant); give it more fractional bits (a higher init_f or a lower beta) and calibrate again")
    return one


def in_raw_bit_order(fmt: FixedFormat, values: np.ndarray) -> np.ndarray:
    """Entries given at ``representable_values(fmt)`` (increasing) reordered by the raw bits of the
    index read as unsigned: for a signed type the non-negative half comes first."""
    if fmt.k:
        half = len(values) // 2
        return np.concatenate([values[half:], values[:half]])
    return values


def check_table_index(layer, what: str, fmt: FixedFormat, advice: str) -> None:
    if fmt.width > MAX_TABLE_INPUT_BITS:
        raise UnsupportedLayerError(
            f"{layer.name}: the {what} table's index {fmt.to_hls()} is {fmt.width} bits wide ({2**fmt.width} "
            f"entries); at most {MAX_TABLE_INPUT_BITS} bits are supported. {advice}")


def softmax_tables(layer, x: Interval) -> dict:
    """Every type, both tables (in raw-bit order) and the intervals the estimate needs."""
    input_fmt = format_of(x)
    if layer.stable:
        covering = x.covering()
        diff = Interval(0.0, float(np.max(covering.hi) - np.min(covering.lo)), int(np.max(covering.f)))
        index_fmt = format_of(diff)
    else:
        diff, index_fmt = None, input_fmt
    check_table_index(layer, "exp", index_fmt, "Narrow the input: lower input_quantizer init_f, raise beta, or "
                      "calibrate on data without outliers")
    exp_entries = layer.exp_table(representable_values(index_fmt))
    exp_iv = Interval.of_constants(exp_entries).covering()
    n = int(layer.element_shape[-1])
    total = Interval(exp_iv.lo * n, exp_iv.hi * n, exp_iv.f)
    sum_fmt = uniform_format(layer, layer.sum_q)
    check_table_index(layer, "inverse", sum_fmt, "Narrow sum_quantizer: lower its init_f or raise beta")
    inv_entries = layer.inverse_table(representable_values(sum_fmt))
    inv_iv = Interval.of_constants(inv_entries).covering()
    product = exp_iv * inv_iv
    for quantizer in (layer.exp_q, layer.inv_q):
        uniform_format(layer, quantizer, cast=False)
    types = {
        "result": uniform_format(layer, layer.oq), "diff": index_fmt, "exp_table": format_of(exp_iv),
        "sum": format_of(total), "inv_in": sum_fmt, "inv_table": format_of(inv_iv), "product": format_of(product),
    }
    exp_table = in_raw_bit_order(index_fmt, exp_entries)
    if layer.stable:
        exp_table = constant_tail_cut(exp_table)
    return {"types": types, "index": index_fmt, "diff": diff, "total": total, "product": product, "n": n,
            "by_value": {"exp": (representable_values(index_fmt), exp_entries),
                         "inverse": (representable_values(sum_fmt), inv_entries)},
            "exp_table": exp_table, "inv_table": in_raw_bit_order(sum_fmt, inv_entries),
            "exp_index_width": max(int(len(exp_table) - 1).bit_length(), 1)}


def constant_tail_cut(table: np.ndarray) -> np.ndarray:
    """The table up to the first entry of its constant tail: the firmware clips a larger index to
    the last entry, which holds the same value. exp(-t) of a large t rounds to one value (0, or
    exp_q's minimum), so the stable exp table keeps only the entries before it does."""
    differs = np.flatnonzero(table != table[-1])
    return table[: (int(differs[-1]) + 2) if differs.size else 1]


def _kif(fmt: FixedFormat, count: int) -> dict:
    return {key: np.full(count, getattr(fmt, key), np.int64) for key in "kif"}


def _cast(stage: str, source: Interval, fmt: FixedFormat, count: int) -> Cast:
    source = source.broadcast_to((count,))
    return Cast(stage=stage, in_lo=source.lo, in_hi=source.hi, in_f=source.f, out=_kif(fmt, count),
                rounding=fmt.rounding.value, overflow=fmt.overflow.value)


def softmax_operations(layer, x: Interval, tables: dict) -> list[Op]:
    """The firmware's operations for the estimate (facts.py): max and difference (stable), the
    exp table read by every element, the row sums, the sum's cast, the inverse table read once
    per row, the n products of two variables per row, the output cast."""
    types, n = tables["types"], tables["n"]
    elements = int(math.prod(layer.element_shape))
    rows = elements // n
    ops = []
    if layer.stable:
        ops.append(MaxPool(out=_kif(format_of(x), rows), window=n))
        ops.append(Add(out=_kif(types["diff"], elements), n_inputs=2))
    ops.append(Table(index_width=tables["exp_index_width"], out_width=types["exp_table"].width, elements=elements))
    ops.append(Add(out=_kif(types["sum"], rows), n_inputs=n))
    ops.append(_cast("sum", tables["total"], types["inv_in"], rows))
    ops.append(Table(index_width=types["inv_in"].width, out_width=types["inv_table"].width, elements=rows))
    exact_product = FixedFormat(1, types["exp_table"].width + types["inv_table"].width, 0)
    ops.append(Product(a_width=types["exp_table"].width, b_width=types["inv_table"].width,
                       out=_kif(exact_product, elements)))
    ops.append(_cast("output", tables["product"], types["result"], elements))
    return ops


@rule(HSoftmax)
def hsoftmax_rule(layer, intervals):
    stage, x = quantizer_stage(quantizer_name(layer, layer.iq), layer.iq, layer.input.shape[1:])
    tables = softmax_tables(layer, x)
    types = tables["types"]
    record = LayerRecord(layer.name, type(layer).__name__, Interval.of_format(types["result"]).broadcast_to(x.lo.shape),
                         [stage, HLSLayerTypes(layer.name, types)])
    record.ebops = layer.ebops_exact()
    # Firmware arrays (handlers) and the same tables by index value (RTL traces: "exp", "inverse").
    record.tables.update(exp_table=tables["exp_table"], inv_table=tables["inv_table"], **tables["by_value"])
    record.estimate_ops = softmax_operations(layer, x, tables)
    # What Keras computes exactly besides the quantizer outputs (derive adds those).
    record.float_values.extend(softmax_float_values(tables))
    return record


def softmax_float_values(tables: dict, prefix: str = "") -> list[FloatValues]:
    """The values an HSoftmax computes in the float dtype besides its quantizer outputs, with the
    significant bits each needs (``tables``: :func:`softmax_tables`): ``max(x) - x`` (stable only),
    the row sum of the exp values (any order of additions) and the products exp x 1/sum.
    ``prefix`` starts each description (a layer holding a softmax names it, e.g. ``"softmax "``)."""
    values = []
    if tables["diff"] is not None:
        values.append(FloatValues(f"{prefix}max(x) - x", interval_bits(tables["diff"])))
    exp_iv = Interval.of_constants(tables["exp_table"]).covering()
    magnitude = np.maximum(np.abs(exp_iv.lo), np.abs(exp_iv.hi)) * tables["n"]
    values.append(FloatValues(f"{prefix}row sum of the exp values (any order)", sum_bits(magnitude, exp_iv.f)))
    values.append(FloatValues(f"{prefix}products exp x 1/sum", interval_bits(tables["product"])))
    return values


@handler(HSoftmax)
def handle_hsoftmax(layer, in_tensors, out_tensors):
    in_tensor, out_tensor = in_tensors[0], out_tensors[0]
    q_configs, q_name = quantized_input(layer, in_tensor)
    tables = record_of_layer(layer).tables
    n = int(layer.element_shape[-1])
    config = layer_dict(layer.name, [q_name], [out_tensor.name], class_name=HLS_CLASS_NAME,
                 n_in=n, n_outer=int(math.prod(layer.element_shape)) // n, stable=layer.stable,
                 output_shape=list(layer.element_shape),
                 exp_table_data=tables["exp_table"], inv_table_data=tables["inv_table"])
    return (*q_configs, config)


limits(HSoftmax, options=[io_types_option(("io_parallel",), IO_STREAM_ADVICE)])


def softmax_rows(x, types: dict, tables: dict, stable: bool):
    """The softmax of each row of ``x`` (``(rows, n)``), step for step as
    ``firmware_templates/nnet_hgq_softmax.h`` computes it, with the record's ``types`` (diff,
    exp_table, sum, inv_in, inv_table, product, result) and ``tables`` ("exp", "inverse": by
    index value): ``t = max(x) - x`` in ``diff_t`` (stable) or ``t = x``; ``e = exp[t]`` (a
    stable table cut where its entries turn constant reads its last entry beyond: the same
    value); ``s = sum(e)`` in ``sum_t``; ``q = s`` cast to ``inv_in_t``; ``r = inverse[q]``;
    ``y = e * r`` (two variables, exact in ``product_t``) cast to ``result_t``."""
    n = x.shape[-1]
    if stable:
        index = _trace.cast(_trace.maximum([x[:, j] for j in range(n)])[:, None] - x, types["diff"])
    else:
        index = x
    e = _trace.lookup(index, *tables["exp"], types["exp_table"])
    s = _trace.cast(_trace.total([e[:, j] for j in range(n)]), types["sum"])
    r = _trace.lookup(_trace.cast(s, types["inv_in"]), *tables["inverse"], types["inv_table"])
    return _trace.cast(_trace.cast(e * r[:, None], types["product"]), types["result"])


@trace(HSoftmax)
def trace_hsoftmax(layer, record, inputs):
    """The input quantizer stage, then ``softmax_rows`` over the last axis."""
    x = _trace.quantized_input(layer, record, inputs[0])
    shape = tuple(x.shape)
    y = softmax_rows(x.reshape(-1, shape[-1]), _trace.stage_types(record)[layer.name], record.tables, layer.stable)
    return y.reshape(shape)
