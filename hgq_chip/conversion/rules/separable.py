"""The separable convolution family: HSeparableConv1D/2D as two hls4ml layers with our types.

hls4ml 1.3's SeparableConv template shares one accumulator type between its two phases and
asserts ``depth_multiplier == 1``, so the layer converts as what it computes: hls4ml's
DepthwiseConv (``depth_multiplier`` 1; else its Conv with the block-diagonal kernel, as
HDepthwiseConv does), the intermediate quantizer ``mq`` as a cast into its trained format,
hls4ml's 1x1 Conv with the bias, and the fused relu. Stages, in order: ``<name>_iq``,
``<name>_depthwise``, ``<name>_mq``, ``<name>`` (pointwise), ``<name>_relu``.

Bounds of each phase as for HConv (``conv.py``): positive taps take the input's bound of the
same side, negative taps the other; 'same' padding adds zeros, which the bounds include.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops as kops

from ...errors import UnsupportedLayerError
from ...fixed.interval import Interval
from ...fixed.minimal import fractional_bits
from ...layers import HSeparableConv1D, HSeparableConv2D
from ...layers.depthwise import block_diagonal_kernel
from ..family import handler, limits, rule, trace
from ..ops import cast_op, cmvm_op, kif
from ..records import FloatValues, HLSLayerTypes, format_of, sum_bits
from . import _trace
from ._stages import (
    RenamedTensor,
    constant_format,
    layer_dict,
    quantized_input,
    quantizer_config,
    quantizer_name,
    quantizer_stage,
    record_of_layer,
    recorded_format,
    weight_table,
    weighted_layer_record,
    weighted_ops,
)
from .conv import _DEPTHWISE, _ROW_STRIDE


def depthwise_name(layer) -> str:
    """The hls4ml layer of the depthwise phase."""
    return f"{layer.name}_depthwise"


def _bounds(convolve, x: Interval, w) -> tuple[Interval, np.ndarray]:
    """(exact interval of the sums of products, bound on |partial sums|) of ``convolve`` (a
    float64 convolution of one feature map) on ``x`` with the constant kernel ``w``."""
    def run(feature_map, kernel):
        out = convolve(kops.convert_to_tensor(np.asarray(feature_map, np.float64)[None]), np.asarray(kernel, np.float64))
        return np.asarray(kops.convert_to_numpy(out))[0]

    positive, negative = np.maximum(w, 0.0), np.minimum(w, 0.0)
    lo = run(x.lo, positive) + run(x.hi, negative)
    hi = run(x.hi, positive) + run(x.lo, negative)
    live = ~x.is_zero
    f_in = int(x.f[live].max()) if live.any() else 0
    f_w = int(fractional_bits(w[w != 0]).max()) if np.any(w != 0) else 0
    magnitudes = run(np.maximum(np.abs(x.lo), np.abs(x.hi)), np.abs(w))
    return Interval(lo, hi, np.full(lo.shape, f_in + f_w)), magnitudes


@rule(HSeparableConv1D, HSeparableConv2D)
def hseparable_rule(layer, intervals):
    in_shape = tuple(layer.input.shape[1:])
    in_stage, x = quantizer_stage(quantizer_name(layer, layer.iq), layer.iq, in_shape)
    depthwise = weight_table(layer.dq, layer.fused_depthwise_kernel())
    middle_sum, middle_magnitudes = _bounds(layer.depthwise_op, x, depthwise.values)
    middle_types = {"weight": constant_format(depthwise.values), "bias": constant_format(np.zeros(1)),
                    "accum": format_of(middle_sum), "result": format_of(middle_sum)}
    middle_stage, middle = quantizer_stage(quantizer_name(layer, layer.mq), layer.mq, middle_sum.lo.shape)
    pointwise = weight_table(layer.pq, layer.fused_kernel())
    products_sum, magnitudes = _bounds(layer.pointwise_op, middle, pointwise.values)
    record = weighted_layer_record(layer, in_stage, pointwise, products_sum, magnitudes)
    record.hls_layers[1:1] = [HLSLayerTypes(depthwise_name(layer), middle_types), middle_stage]
    record.weights["depthwise_kernel"] = depthwise
    record.float_values.append(FloatValues("depthwise accumulator (every product and partial sum of inputs x "
                                           "depthwise weights)", sum_bits(middle_magnitudes, middle_sum.f)))
    # The input cast reads input 0; the intermediate cast reads the depthwise sums (emitted here).
    record.cast_stages = {in_stage.name: 0}
    multiplier = int(layer.depth_multiplier)
    record.estimate_ops = [
        cmvm_op(block_diagonal_kernel(depthwise.values), None, kif(layer.iq.fixed_format(), in_shape),
                int(middle_sum.lo.size // middle_sum.lo.shape[-1]), latency_only=multiplier == 1),
        cast_op(middle_stage.name, middle_sum, layer.mq.fixed_format(), middle_sum.lo.shape),
        *weighted_ops(record, layer.mq.fixed_format(), middle_sum.lo.shape),
    ]
    return record


def _conv_dict(name, class_name, in_name, in_shape, out_name, out_shape, kernel_size, strides, padding, **data):
    """An hls4ml Conv/DepthwiseConv layer dict (channels_last) with hls4ml's own size fields."""
    from hls4ml.converters.keras_v3.conv import gen_conv_config

    sizes = gen_conv_config(in_shape=tuple(in_shape), out_shape=tuple(out_shape), ker_px_shape=tuple(kernel_size),
                            strides=tuple(strides), padding=padding, data_format="channels_last", name=name)
    return layer_dict(name, [in_name], [out_name], class_name=class_name, module="keras", data_format="channels_last",
                      use_bias=True, input_shape=[list(in_shape)], **sizes, **data)


@handler(HSeparableConv1D, HSeparableConv2D)
def handle_hseparable(layer, in_tensors, out_tensors):
    """The input cast, the depthwise phase, the intermediate cast, the pointwise phase with the
    bias, and the fused relu: every weight from the record."""
    record = record_of_layer(layer)
    in_tensor, out_tensor = in_tensors[0], out_tensors[0]
    rank = "1D" if isinstance(layer, HSeparableConv1D) else "2D"
    q_configs, q_name = quantized_input(layer, in_tensor)
    in_shape = tuple(int(d) for d in in_tensor.shape[1:])
    middle_shape = tuple(int(d) for d in layer.intermediate_shape)
    depthwise = record.weights["depthwise_kernel"].values
    middle_raw, middle_q = f"{out_tensor.name}_{depthwise_name(layer)}", f"{out_tensor.name}_{layer.name}_mq"
    if layer.depth_multiplier == 1:
        data = {"weight_data": depthwise, "depthwise_data": depthwise, "depth_multiplier": 1}
        class_name = f"DepthwiseConv{rank}"
    else:
        data = {"weight_data": block_diagonal_kernel(depthwise)}
        class_name = f"Conv{rank}"
    dw = _conv_dict(depthwise_name(layer), class_name, q_name, in_shape, middle_raw, middle_shape, layer.kernel_size,
                    layer.strides, layer.padding, bias_data=np.zeros(middle_shape[-1]), **data)
    cast = quantizer_config(quantizer_name(layer, layer.mq), recorded_format(layer, layer.mq),
                            RenamedTensor(middle_raw, (None, *middle_shape)), middle_q)
    relu = layer.activation is keras.activations.relu
    pw_out = f"{out_tensor.name}_activation" if relu else out_tensor.name
    pointwise = record.weights["kernel"].values
    bias = record.weights["bias"].values if "bias" in record.weights else np.zeros(pointwise.shape[-1])
    pw = _conv_dict(layer.name, f"Conv{rank}", middle_q, middle_shape, pw_out, tuple(int(d) for d in out_tensor.shape[1:]),
                    pointwise.shape[:-2], (1,) * len(pointwise.shape[:-2]), "valid", weight_data=pointwise,
                    bias_data=bias)
    configs = [*q_configs, dw, cast, pw]
    if relu:
        configs.append(layer_dict(f"{layer.name}_relu", [pw_out], [out_tensor.name], class_name="Activation",
                                  activation="relu"))
    return tuple(configs)


@trace(HSeparableConv1D, HSeparableConv2D)
def trace_hseparable(layer, record, inputs):
    """The input cast; per channel and position the depthwise sums (output channel
    ``c * multiplier + m``) in the depthwise stage's result type; the intermediate cast; one
    constant product per position for the pointwise phase plus the bias; the fused relu."""
    types = _trace.stage_types(record)
    x = _trace.quantized_input(layer, record, inputs[0])
    depthwise = np.asarray(record.weights["depthwise_kernel"].values, np.float64)
    out_spatial, windows = _trace.conv_taps(layer, x, depthwise)
    cells = {}
    for position, taps in windows:
        if not taps:
            raise UnsupportedLayerError(f"layer {layer.name!r}: an output position sees only padding")
        outputs = []
        for c in range(depthwise.shape[-2]):
            rows = np.concatenate([x[(*source, slice(c, c + 1))] for _, source in taps])
            weights = np.stack([depthwise[tap][c] for tap, _ in taps])
            outputs.append(_trace.affine(rows[None], weights, None)[0])
        cells[position] = np.concatenate(outputs)
    middle = _trace.cast(_trace.stack(cells, out_spatial), types[depthwise_name(layer)]["result"])
    middle = _trace.quantized_input(layer, record, middle, layer.mq)
    kernel, bias = _trace.kernel_and_bias(record)
    flat = middle.reshape(-1, middle.shape[-1])
    y = _trace.affine(flat, kernel.reshape(-1, kernel.shape[-1]), bias)
    return _trace.finish(layer, record, y.reshape(*out_spatial, kernel.shape[-1]))


limits(keras.layers.SeparableConv1D, options=_DEPTHWISE)
limits(keras.layers.SeparableConv2D, options=[*_DEPTHWISE, _ROW_STRIDE])
