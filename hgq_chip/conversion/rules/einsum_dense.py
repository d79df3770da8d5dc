"""Precision rule and hls4ml handler for HEinsumDense (and the projections inside HMultiHeadAttention).

A projection over trailing axes is a Dense on the flattened view (``layers/einsum_dense.py``):
the input ``(*lead, *contract)`` is read as ``(L, C)``, the kernel as ``(C, O)``, the output
``(L, O)`` is read back as ``(*lead, *free)``. The firmware is hls4ml's Dense on that sequence
(hls4ml makes it a pointwise convolution; io_parallel and io_stream alike) between two
Reshapes (wires in io_parallel); its types are derived exactly as for HDense: the product of
every input element with every weight, summed, plus the bias; relu keeps the interval's upper part.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from ...fixed.format import ArrayFormat
from ...fixed.interval import Interval
from ...layers.einsum_dense import HEinsumDense
from ..family import handler, limits, rule, trace
from ..option import io_types_option
from ..records import (
    FloatValues,
    HLSLayerTypes,
    LayerRecord,
    WeightTable,
    format_of,
    sum_bits,
)
from . import _trace
from ._stages import (
    RenamedTensor,
    constant_format,
    layer_dict,
    quantizer_config,
    quantizer_name,
    quantizer_stage,
    record_of_layer,
    recorded_format,
    weight_table,
    weighted_ops,
)


def _flat_table(table: WeightTable, flatten) -> WeightTable:
    formats = table.formats
    shape = np.shape(table.values)
    flat = [flatten(np.broadcast_to(a, shape)) for a in (formats.k, formats.i, formats.f)]
    return WeightTable(flatten(table.values), ArrayFormat(*flat, formats.rounding, formats.overflow))


def projection_parts(owner, layer: HEinsumDense, hls_name: str) -> dict:
    """Everything a projection contributes to its owner's record (``owner``: the layer in the model,
    ``layer`` itself or the HMultiHeadAttention holding it; ``hls_name``: its Dense's hls4ml name).

    Returns ``stages`` (HLSLayerTypes: the input quantizer, the Dense, the relu), ``input``
    (the quantizer's output interval), ``output`` (interval, shape ``(*lead, *free)``),
    ``kernel``/``bias`` (flattened WeightTables), ``float_values`` and ``accum``.
    """
    in_shape = layer.lead_shape + layer.contract_shape
    stage, x = quantizer_stage(quantizer_name(owner, layer.iq), layer.iq, in_shape)
    L, C = math.prod(layer.lead_shape), math.prod(layer.contract_shape)
    x_flat = x.reshape((L, C))
    kernel = _flat_table(weight_table(layer.kq, layer.fused_kernel()), layer.flat_kernel)
    products = Interval(x_flat.lo[..., None], x_flat.hi[..., None], x_flat.f[..., None]) * Interval.of_constants(kernel.values)
    accum = products.sum(axis=-2)
    magnitudes = np.maximum(np.abs(products.lo), np.abs(products.hi)).sum(axis=-2)
    types = {"weight": constant_format(kernel.values)}
    bias = None
    if layer.use_bias:
        bias = _flat_table(weight_table(layer.bq, layer.fused_bias()), layer.flat_bias)
        accum = accum + Interval.of_constants(bias.values)
        magnitudes = magnitudes + np.abs(bias.values)
        types["bias"] = constant_format(bias.values)
    else:
        types["bias"] = constant_format(np.zeros(1))  # the handler passes zeros
    types.update(accum=format_of(accum), result=format_of(accum))
    stages = [stage, HLSLayerTypes(hls_name, types)]
    output = accum
    if layer.activation is keras.activations.relu:
        output = accum.relu()
        stages.append(HLSLayerTypes(f"{hls_name}_relu", {"result": format_of(output)}))
    what = f"accumulator of {hls_name} (every product and partial sum of inputs x weights + bias)"
    return {"stages": stages, "input": x, "output": output.reshape(layer.lead_shape + layer.free_shape),
            "flat_output": output, "kernel": kernel, "bias": bias, "accum": format_of(accum),
            "float_values": [FloatValues(what, sum_bits(magnitudes, accum.f))]}


@rule(HEinsumDense)
def heinsum_dense_rule(layer, intervals):
    parts = projection_parts(layer, layer, layer.name)
    record = LayerRecord(layer.name, type(layer).__name__, parts["output"], parts["stages"], {"kernel": parts["kernel"]})
    if parts["bias"] is not None:
        record.weights["bias"] = parts["bias"]
    record.accum = parts["accum"]
    record.float_values.extend(parts["float_values"])
    record.ebops = layer.ebops_exact()
    record.estimate_ops = weighted_ops(record, layer.iq.fixed_format(), layer.lead_shape + layer.contract_shape)
    return record


def projection_configs(owner, layer: HEinsumDense, hls_name: str, in_name: str, in_shape, out_name: str,
                       kernel: WeightTable, bias: WeightTable | None) -> list[dict]:
    """hls4ml layer dicts of one projection: input quantizer, Reshape to ``(L, C)`` (when the input
    has another shape), Dense, relu, Reshape to ``(*lead, *free)`` (when needed), reading tensor
    ``in_name`` of shape ``in_shape`` (no batch axis) and writing ``out_name``. ``kernel`` and
    ``bias`` (None: zeros) are the flattened tables of ``owner``'s record."""
    q_name = f"{in_name}_{hls_name}_q"
    configs = [quantizer_config(quantizer_name(owner, layer.iq), recorded_format(owner, layer.iq),
                                RenamedTensor(in_name, (None, *in_shape)), q_name)]
    L, C, O = math.prod(layer.lead_shape), math.prod(layer.contract_shape), math.prod(layer.free_shape)
    flat_in = [L, C] if layer.lead_shape else [C]
    flat_out = [L, O] if layer.lead_shape else [O]
    source = q_name
    if list(in_shape) != flat_in:
        source = f"{q_name}_flat"
        configs.append(layer_dict(f"{hls_name}_flat", [q_name], [source], class_name="Reshape", target_shape=flat_in,
                           input_shape=[list(in_shape)]))
    out_shape = list(layer.lead_shape + layer.free_shape)
    relu = layer.activation is keras.activations.relu
    reshape_out = out_shape != flat_out
    dense_out = f"{out_name}_{hls_name}_dense" if (relu or reshape_out) else out_name
    bias = np.zeros(O) if bias is None else bias.values
    configs.append(layer_dict(hls_name, [source], [dense_out], class_name="Dense", data_format="channels_last",
                       weight_data=kernel.values, bias_data=bias, n_in=C, n_out=O, use_bias=True, input_shape=[flat_in]))
    if relu:
        relu_out = f"{out_name}_{hls_name}_relu" if reshape_out else out_name
        configs.append(layer_dict(f"{hls_name}_relu", [dense_out], [relu_out], class_name="Activation", activation="relu",
                           input_shape=[flat_out]))
        dense_out = relu_out
    if reshape_out:
        configs.append(layer_dict(f"{hls_name}_unflat", [dense_out], [out_name], class_name="Reshape", target_shape=out_shape,
                           input_shape=[flat_out]))
    return configs


@handler(HEinsumDense)
def handle_heinsum_dense(layer, in_tensors, out_tensors):
    in_tensor, weights = in_tensors[0], record_of_layer(layer).weights
    return tuple(projection_configs(layer, layer, layer.name, in_tensor.name, tuple(in_tensor.shape[1:]),
                                    out_tensors[0].name, weights["kernel"], weights.get("bias")))


limits(HEinsumDense, options=[io_types_option(
    ("io_parallel",), "HEinsumDense converts for io_parallel only; convert with io_type='io_parallel' (a "
                      "projection over the last axis alone is an HDense, which also streams)")])


@trace(HEinsumDense)
def trace_heinsum_dense(layer, record, inputs):
    """A Dense on the flattened ``(lead, contract)`` view, as the firmware computes it: input
    quantizer stage, the record's flattened kernel ``(C, O)`` and bias, result type, relu stage."""
    x = _trace.quantized_input(layer, record, inputs[0])
    kernel, bias = _trace.kernel_and_bias(record)
    y = _trace.affine(x.reshape(math.prod(layer.lead_shape), math.prod(layer.contract_shape)), kernel, bias)
    return _trace.finish(layer, record, y).reshape(*layer.lead_shape, *layer.free_shape)
