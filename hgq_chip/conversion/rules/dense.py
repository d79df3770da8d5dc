"""The HQuantize and HDense family (HDenseBatchNorm and the AdaQAT forms through HDense), and
the weighted-layer handler that HConv (``conv.py``) shares: rules, handlers, limits, traces."""

from __future__ import annotations

import keras
import numpy as np

from ...fixed.interval import Interval
from ...layers import HConv1D, HConv1DBatchNorm, HConv2D, HConv2DBatchNorm, HDense, HDenseBatchNorm, HQuantize
from ..family import handler, limits, rule, trace
from ..option import FUSED_ACTIVATION, Option
from ..records import LayerRecord
from . import _trace
from ._stages import (
    class_key, quantized_input, quantizer_config, quantizer_name, quantizer_stage, record_of_layer, recorded_format,
    redirect_input, repacked, weight_table, weighted_layer_record, weighted_ops,
)


@rule(HQuantize)
def hquantize_rule(layer, intervals):
    stage, out = quantizer_stage(layer.name, layer.q, layer.output.shape[1:])
    return LayerRecord(layer.name, type(layer).__name__, out, [stage])


@handler(HQuantize)
def handle_hquantize(layer: HQuantize, in_tensors, out_tensors):
    first, in_tensor = repacked(layer, in_tensors[0])
    return (*first, quantizer_config(layer.name, recorded_format(layer, layer.q), in_tensor, out_tensors[0].name))


@trace(HQuantize)
def trace_hquantize(layer, record, inputs):
    """The quantizer's cast (its rounding and overflow modes), in the record's format."""
    return _trace.cast(inputs[0], record.quantizer_formats[layer.name])


@rule(HDense)
def hdense_rule(layer, intervals):
    stage, x = quantizer_stage(quantizer_name(layer, layer.iq), layer.iq, layer.input.shape[1:])
    kernel = weight_table(layer.kq, layer.fused_kernel())
    products = Interval(x.lo[..., None], x.hi[..., None], x.f[..., None]) * Interval.of_constants(kernel.values)
    magnitudes = np.maximum(np.abs(products.lo), np.abs(products.hi)).sum(axis=-2)
    record = weighted_layer_record(layer, stage, kernel, products.sum(axis=-2), magnitudes)
    record.estimate_ops = weighted_ops(record, layer.iq.fixed_format(), x.lo.shape)
    return record


@handler(HDense, HDenseBatchNorm, HConv1D, HConv2D, HConv1DBatchNorm, HConv2DBatchNorm)
def handle_weighted(layer, in_tensors, out_tensors):
    """HDense/HConv (and BatchNorm-fused forms): hls4ml's own handler for the Keras parent
    builds the layer dicts; we quantize its input and swap in the quantized weights of the record."""
    from hls4ml.converters.keras_v3 import layer_handlers

    in_tensor = in_tensors[0]
    q_configs, q_name = quantized_input(layer, in_tensor)
    parent = next(cls for cls in type(layer).__mro__ if class_key(cls) in layer_handlers and cls.__module__.startswith("keras."))
    configs = list(layer_handlers[class_key(parent)](layer, in_tensors, out_tensors))
    main = redirect_input(configs[0], in_tensor.name, q_name)
    weights = record_of_layer(layer).weights
    kernel = weights["kernel"].values
    main["weight_data"] = kernel
    # A bias also without use_bias when a batch normalization is folded in; zeros without one.
    main["bias_data"] = weights["bias"].values if "bias" in weights else np.zeros(kernel.shape[-1])
    main["use_bias"] = True
    main["class_name"] = parent.__name__
    return (*q_configs, *configs)


@trace(HDense)
def trace_hdense(layer, record, inputs):
    """Input quantizer stage, the record's quantized kernel and bias as one constant product per
    row (a Dense on a (positions, channels) map: each position), assigned to the result type
    (wide enough: the cast changes no value), then the fused relu stage."""
    x = _trace.quantized_input(layer, record, inputs[0])
    kernel, bias = _trace.kernel_and_bias(record)
    lead = tuple(x.shape[:-1])
    y = _trace.affine(x.reshape(-1, x.shape[-1]), kernel, bias)
    return _trace.finish(layer, record, y.reshape(*lead, kernel.shape[-1]))


limits(keras.layers.Dense, options=[
    FUSED_ACTIVATION,
    # hls4ml turns a Dense on a (positions..., channels) tensor into a pointwise Conv1D/Conv2D.
    Option("input rank", lambda layer, node: len(node.inputs[0].shape) - 1, lambda v: v <= 3,
           "hls4ml applies a Dense per position only on 1D or 2D maps (input rank <= 3 per sample); "
           "put a keras.layers.Flatten or Reshape before it"),
])
