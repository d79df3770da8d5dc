"""RTL trace of HMultiHeadAttention, stage for stage as the converter's chain of hls4ml layers
computes it (``conversion/rules/attention.py``; types, kernels and softmax tables from its record):

- the query, key and value projections (input quantizer, Dense on the flattened view, result type,
  optional relu: as HEinsumDense), then the operand quantizers ``q_q``, ``k_q``, ``v_q``;
- ``_scores``: hls4ml's Einsum ``bcd,ecd->cbe``, products of two variables summed (exact in its
  accumulator type, cast to it as the firmware assigns it);
- the softmax's input quantizer and our HSoftmax template over the last axis of (H, Tq, Tk)
  (``rtl_trace_softmax.softmax_rows``; its exp table holds exp(-t / sqrt(dk)));
- ``_attend``: Einsum ``cbe,ecd->bcd`` of the probabilities and V, cast to its type;
- the output projection.
"""

from __future__ import annotations

import math

import keras

from ..conversion.precision import quantizer_name
from ..layers.attention import HMultiHeadAttention
from .rtl_trace_cast import cast
from .rtl_trace_registry import stage_types, traces
from .rtl_trace_softmax import softmax_rows


def _projection(layer, record, role: str, dense, x):
    """One HEinsumDense inside ``layer`` (hls4ml name ``<layer>_<dense>``) on ``x``."""
    hls_name = f"{layer.name}_{dense.name}"
    types = stage_types(record)
    x = cast(x, record.quantizer_formats[quantizer_name(layer, dense.iq)])
    kernel = record.weights[f"{role}_kernel"].values
    bias = record.weights.get(f"{role}_bias")
    y = x.reshape(math.prod(dense.lead_shape), math.prod(dense.contract_shape)) @ kernel
    if bias is not None:
        y = y + bias.values
    y = cast(y, types[hls_name]["result"])
    if dense.activation is keras.activations.relu:
        from da4ml.trace.ops import relu

        y = cast(relu(y), types[f"{hls_name}_relu"]["result"])
    return y.reshape(*dense.lead_shape, *dense.free_shape)


@traces(HMultiHeadAttention)
def trace_attention(layer, record, inputs):
    from da4ml.trace.ops import einsum

    query, value = inputs[0], inputs[1]
    key = inputs[2] if len(inputs) > 2 else value
    types, formats, name = stage_types(record), record.quantizer_formats, layer.name
    q = cast(_projection(layer, record, "query", layer.query_dense, query), formats[quantizer_name(layer, layer.q_q)])
    k = cast(_projection(layer, record, "key", layer.key_dense, key), formats[quantizer_name(layer, layer.k_q)])
    v = cast(_projection(layer, record, "value", layer.value_dense, value), formats[quantizer_name(layer, layer.v_q)])
    scores = cast(einsum("bcd,ecd->cbe", q, k), types[f"{name}_scores"]["result"])  # (H, Tq, Tk)
    softmax = layer.softmax
    scores = cast(scores, formats[quantizer_name(layer, softmax.iq)])
    shape = tuple(scores.shape)
    p = softmax_rows(scores.reshape(-1, shape[-1]), types[f"{name}_softmax"], record.tables, softmax.stable)
    attended = cast(einsum("cbe,ecd->bcd", p.reshape(shape), v), types[f"{name}_attend"]["result"])
    return _projection(layer, record, "output", layer.output_dense, attended)
