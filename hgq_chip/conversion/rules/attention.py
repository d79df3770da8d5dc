"""Precision rule and hls4ml handler for HMultiHeadAttention (``layers/attention.py``).

The layer becomes a chain of hls4ml layers, each typed exactly (names prefixed with the layer's):

- ``_query``, ``_key``, ``_value``: the projections (``rules/einsum_dense.py``: input quantizer,
  Dense on the sequence, Reshape to (T, H, d));
- ``_q_q``, ``_k_q``, ``_v_q``: the operands' quantizers;
- ``_scores``: hls4ml's ``Einsum`` (``nnet_einsum.h``, io_parallel): per head the products Q x K of
  two variables (the full-precision ap_fixed product) summed in ``accum_t`` and copied to the
  result; both types hold every partial sum (interval arithmetic, the same as a Dense's
  accumulator, wrap-around safe), so nothing rounds;
- ``_softmax_iq`` and ``_softmax``: our HSoftmax template (``firmware_templates/nnet_hgq_softmax.h``)
  over the last axis of (H, Tq, Tk), its exp table holding ``exp(-t / sqrt(dk))``;
- ``_attend``: ``Einsum`` P x V, typed the same way;
- ``_attention_output``: the output projection.

hls4ml's ``MultiHeadAttention`` template is not used: it computes its own softmax (tables that do
not follow the trained model) and types its intermediate values itself.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ...fixed.interval import Interval
from ...layers.attention import HMultiHeadAttention
from ..family import handler, limits, rule, trace
from ..ops import Add, Op, Product, cast_op, cmvm_op, interval_kif
from ..option import io_types_option
from ..records import (
    FloatValues,
    HLSLayerTypes,
    LayerRecord,
    format_of,
    sum_bits,
)
from . import _trace
from ._stages import (
    RenamedTensor,
    layer_dict,
    quantizer_config,
    quantizer_name,
    quantizer_stage,
    record_of_layer,
    recorded_format,
)
from .einsum_dense import projection_configs, projection_parts
from .softmax import softmax_float_values, softmax_operations, softmax_rows, softmax_tables


def _transpose(interval: Interval, axes) -> Interval:
    return Interval(np.transpose(interval.lo, axes), np.transpose(interval.hi, axes), np.transpose(interval.f, axes))


def _expand(interval: Interval, axis) -> Interval:
    return Interval(np.expand_dims(interval.lo, axis), np.expand_dims(interval.hi, axis),
                    np.expand_dims(interval.f, axis))


def _contract(a: Interval, b: Interval, axis: int) -> tuple[Interval, Interval, np.ndarray]:
    """Products of broadcast ``a`` and ``b``, their sum over ``axis`` and the bound on partial sums."""
    products = a * b
    magnitudes = np.maximum(np.abs(products.lo), np.abs(products.hi)).sum(axis=axis)
    return products, products.sum(axis=axis), magnitudes


def attention_parts(layer: HMultiHeadAttention) -> dict:
    """Every stage's types and interval, in the firmware's order (see module doc)."""
    name, heads = layer.name, layer.num_heads
    t_q, t_k = layer.query_shape[0], layer.key_shape[0]
    parts = {role: projection_parts(layer, dense, f"{name}_{dense.name}")
             for role, dense in zip(("query", "key", "value", "output"), layer.projections())}
    casts = {}
    for role, quantizer in (("query", layer.q_q), ("key", layer.k_q), ("value", layer.v_q)):
        shape = parts[role]["output"].lo.shape
        casts[role] = quantizer_stage(quantizer_name(layer, quantizer), quantizer, shape)
    q, k, v = (casts[role][1] for role in ("query", "key", "value"))
    # S[h, i, j] = sum_d Q[i, h, d] K[j, h, d]: (Tq, Tk, H, dk) products, summed over d.
    score_products, scores, score_magnitudes = _contract(_expand(q, 1), _expand(k, 0), axis=-1)
    scores = _transpose(scores, (2, 0, 1))
    score_magnitudes = np.transpose(score_magnitudes, (2, 0, 1))
    softmax = layer.softmax
    softmax_stage, x = quantizer_stage(quantizer_name(layer, softmax.iq), softmax.iq, (heads, t_q, t_k))
    tables = softmax_tables(softmax, x)
    p = Interval.of_format(tables["types"]["result"]).broadcast_to((heads, t_q, t_k))
    # A[i, h, d] = sum_j P[h, i, j] V[j, h, d]: (H, Tq, Tk, dv) products, summed over j.
    v_heads = _transpose(v, (1, 0, 2))
    attend_products, attended, attend_magnitudes = _contract(_expand(p, -1), _expand(v_heads, 1), axis=2)
    attended = _transpose(attended, (1, 0, 2))
    attend_magnitudes = np.transpose(attend_magnitudes, (1, 0, 2))
    return {"projections": parts, "casts": casts, "score_products": score_products, "scores": scores,
            "score_magnitudes": score_magnitudes, "softmax_stage": softmax_stage, "softmax_input": x,
            "tables": tables, "probabilities": p, "attend_products": attend_products, "attended": attended,
            "attend_magnitudes": attend_magnitudes}


def _projection_ops(parts: dict, stage_name: str, source: Interval, quantizer_format, first: bool) -> list[Op]:
    shape = parts["input"].lo.shape
    cast = cast_op(stage_name, source, quantizer_format, shape)
    cast = replace(cast, reads_previous=False) if first else cast
    kernel = parts["kernel"].values
    bias = parts["bias"].values if parts["bias"] is not None else None
    positions = int(parts["flat_output"].lo.shape[0]) if parts["flat_output"].lo.ndim > 1 else 1
    return [cast, cmvm_op(kernel, bias, cast.out, positions)]


def attention_operations(layer, intervals, parts: dict) -> list[Op]:
    """Every operation of the layer for the estimate, each marked when it does not read the one before."""
    projections, casts = parts["projections"], parts["casts"]
    sources = {"query": intervals[0], "value": intervals[1], "key": intervals[2] if len(intervals) > 2 else intervals[1]}
    ops = []
    for role, dense in zip(("query", "key", "value"), layer.projections()):
        source = sources[role] if sources[role] is not None else projections[role]["input"]
        ops += _projection_ops(projections[role], quantizer_name(layer, dense.iq), source, dense.iq.fixed_format(),
                               first=True)
    for role, quantizer in (("query", layer.q_q), ("key", layer.k_q)):
        stage = quantizer_name(layer, quantizer)
        out = projections[role]["output"]
        ops.append(replace(cast_op(stage, out, quantizer.fixed_format(), out.lo.shape), reads_previous=False))
    widths = [np.maximum(casts[role][1].to_format().width, 0) for role in ("query", "key")]
    shape = parts["score_products"].lo.shape
    ops.append(Product(a_width=np.broadcast_to(widths[0][:, None], shape).copy(),
                       b_width=np.broadcast_to(widths[1][None], shape).copy(),
                       out=interval_kif(parts["score_products"]), reads_previous=False))
    ops.append(Add(out=interval_kif(parts["scores"]), n_inputs=layer.key_dim))
    softmax = layer.softmax
    ops.append(cast_op(quantizer_name(layer, softmax.iq), parts["scores"], softmax.iq.fixed_format(),
                       parts["scores"].lo.shape))
    ops += softmax_operations(softmax, parts["softmax_input"], parts["tables"])
    value = projections["value"]["output"]
    ops.append(replace(cast_op(quantizer_name(layer, layer.v_q), value, layer.v_q.fixed_format(), value.lo.shape),
                       reads_previous=False))
    shape = parts["attend_products"].lo.shape
    p_width = parts["tables"]["types"]["result"].width
    v_width = np.transpose(np.maximum(casts["value"][1].to_format().width, 0), (1, 0, 2))
    ops.append(Product(a_width=np.full(shape, p_width), b_width=np.broadcast_to(v_width[:, None], shape).copy(),
                       out=interval_kif(parts["attend_products"]), reads_previous=False))
    ops.append(Add(out=interval_kif(parts["attended"]), n_inputs=layer.key_shape[0]))
    ops += _projection_ops(projections["output"], quantizer_name(layer, layer.output_dense.iq), parts["attended"],
                           layer.output_dense.iq.fixed_format(), first=False)
    return ops


@rule(HMultiHeadAttention)
def hmha_rule(layer, intervals):
    parts = attention_parts(layer)
    projections, casts, tables = parts["projections"], parts["casts"], parts["tables"]
    name = layer.name
    stages = [*projections["query"]["stages"], *projections["key"]["stages"], *projections["value"]["stages"]]
    stages += [casts[role][0] for role in ("query", "key", "value")]
    scores_fmt, attended_fmt = format_of(parts["scores"]), format_of(parts["attended"])
    stages.append(HLSLayerTypes(f"{name}_scores", {"accum": scores_fmt, "result": scores_fmt}))
    stages += [parts["softmax_stage"], HLSLayerTypes(f"{name}_softmax", tables["types"])]
    stages.append(HLSLayerTypes(f"{name}_attend", {"accum": attended_fmt, "result": attended_fmt}))
    stages += projections["output"]["stages"]
    record = LayerRecord(name, type(layer).__name__, projections["output"]["output"], stages)
    # The projections' weights (the report's weight counts and weight_types.csv); the estimate reads
    # estimate_ops, which hold the same kernels.
    for role in ("query", "key", "value", "output"):
        record.weights[f"{role}_kernel"] = projections[role]["kernel"]
        if projections[role]["bias"] is not None:
            record.weights[f"{role}_bias"] = projections[role]["bias"]
    record.ebops = layer.ebops_exact()
    # Firmware arrays (handlers) and the same tables by index value (RTL traces: "exp", "inverse").
    record.tables.update(exp_table=tables["exp_table"], inv_table=tables["inv_table"], **tables["by_value"])
    for role in ("query", "key", "value", "output"):
        record.float_values.extend(projections[role]["float_values"])
    record.float_values.append(FloatValues("scores Q.K (every product and partial sum)",
                                           sum_bits(parts["score_magnitudes"], parts["scores"].f)))
    record.float_values.extend(softmax_float_values(tables, prefix="softmax "))
    record.float_values.append(FloatValues("attention P.V (every product and partial sum)",
                                           sum_bits(parts["attend_magnitudes"], parts["attended"].f)))
    record.estimate_ops = attention_operations(layer, intervals, parts)  # its casts included
    record.cast_stages = {}
    return record


@handler(HMultiHeadAttention)
def handle_hmha(layer, in_tensors, out_tensors):
    from ..softmax_hls import HLS_CLASS_NAME

    name, out = layer.name, out_tensors[0].name
    heads, t_q, t_k = layer.num_heads, layer.query_shape[0], layer.key_shape[0]
    query, value = in_tensors[0], in_tensors[1]
    key = in_tensors[2] if len(in_tensors) > 2 else value
    configs, operands = [], {}
    record = record_of_layer(layer)

    def projection(role, dense, tensor_name, in_shape, out_name):
        return projection_configs(layer, dense, f"{name}_{dense.name}", tensor_name, in_shape, out_name,
                                  record.weights[f"{role}_kernel"], record.weights.get(f"{role}_bias"))

    for role, tensor, dense, quantizer in (("query", query, layer.query_dense, layer.q_q),
                                           ("key", key, layer.key_dense, layer.k_q),
                                           ("value", value, layer.value_dense, layer.v_q)):
        projected = f"{out}_{name}_{role}"
        configs += projection(role, dense, tensor.name, tuple(tensor.shape[1:]), projected)
        shape = dense.lead_shape + dense.free_shape
        operands[role] = f"{projected}_q"
        configs.append(quantizer_config(quantizer_name(layer, quantizer), recorded_format(layer, quantizer),
                                        RenamedTensor(projected, (None, *shape)), operands[role]))
    scores = f"{out}_{name}_scores"
    configs.append(layer_dict(f"{name}_scores", [operands["query"], operands["key"]], [scores], class_name="Einsum",
                       equation="bcd,ecd->cbe", inp0_shape=(t_q, heads, layer.key_dim),
                       inp1_shape=(t_k, heads, layer.key_dim), out_shape=(heads, t_q, t_k)))
    softmax = layer.softmax
    scores_q = f"{scores}_q"
    configs.append(quantizer_config(quantizer_name(layer, softmax.iq), recorded_format(layer, softmax.iq),
                                    RenamedTensor(scores, (None, heads, t_q, t_k)), scores_q))
    tables = record.tables
    probabilities = f"{out}_{name}_probabilities"
    configs.append(layer_dict(f"{name}_softmax", [scores_q], [probabilities], class_name=HLS_CLASS_NAME, n_in=t_k,
                       n_outer=heads * t_q, stable=softmax.stable, output_shape=[heads, t_q, t_k],
                       exp_table_data=tables["exp_table"], inv_table_data=tables["inv_table"]))
    attended = f"{out}_{name}_attended"
    configs.append(layer_dict(f"{name}_attend", [probabilities, operands["value"]], [attended], class_name="Einsum",
                       equation="cbe,ecd->bcd", inp0_shape=(heads, t_q, t_k), inp1_shape=(t_k, heads, layer.value_dim),
                       out_shape=(t_q, heads, layer.value_dim)))
    dense = layer.output_dense
    configs += projection("output", dense, attended, (t_q, heads, layer.value_dim), out)
    return tuple(configs)


limits(HMultiHeadAttention, options=[io_types_option(
    ("io_parallel",), "HMultiHeadAttention firmware (hls4ml's Einsum, our softmax template) exists for "
                      "io_parallel only; convert with io_type='io_parallel'")])


def _trace_projection(layer, record, role: str, dense, x):
    """One HEinsumDense inside ``layer`` (hls4ml stage ``<layer>_<dense>``) on ``x``: input
    quantizer, a Dense on the flattened view, result type, optional relu stage."""
    x = _trace.quantized_input(layer, record, x, dense.iq)
    kernel, bias = _trace.kernel_and_bias(record, f"{role}_")
    y = _trace.affine(x.reshape(math.prod(dense.lead_shape), math.prod(dense.contract_shape)), kernel, bias)
    y = _trace.finish(dense, record, y, f"{layer.name}_{dense.name}")
    return y.reshape(*dense.lead_shape, *dense.free_shape)


@trace(HMultiHeadAttention)
def trace_hmha(layer, record, inputs):
    """Stage for stage as the converter's chain of hls4ml layers: the query, key and value
    projections and their operand quantizers; ``_scores``, hls4ml's Einsum ``bcd,ecd->cbe``
    (products of two variables) cast to its type; the softmax's input quantizer and
    ``softmax.softmax_rows`` over the last axis of (H, Tq, Tk); ``_attend``, Einsum
    ``cbe,ecd->bcd`` with V, cast to its type; the output projection."""
    from da4ml.trace.ops import einsum

    query, value = inputs[0], inputs[1]
    key = inputs[2] if len(inputs) > 2 else value
    types, name = _trace.stage_types(record), layer.name
    q = _trace.quantized_input(layer, record, _trace_projection(layer, record, "query", layer.query_dense, query), layer.q_q)
    k = _trace.quantized_input(layer, record, _trace_projection(layer, record, "key", layer.key_dense, key), layer.k_q)
    v = _trace.quantized_input(layer, record, _trace_projection(layer, record, "value", layer.value_dense, value), layer.v_q)
    scores = _trace.cast(einsum("bcd,ecd->cbe", q, k), types[f"{name}_scores"]["result"])  # (H, Tq, Tk)
    scores = _trace.quantized_input(layer, record, scores, layer.softmax.iq)
    shape = tuple(scores.shape)
    p = softmax_rows(scores.reshape(-1, shape[-1]), types[f"{name}_softmax"], record.tables, layer.softmax.stable)
    attended = _trace.cast(einsum("cbe,ecd->bcd", p.reshape(shape), v), types[f"{name}_attend"]["result"])
    return _trace_projection(layer, record, "output", layer.output_dense, attended)
