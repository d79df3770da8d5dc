"""The convolution family: HConv1D/HConv2D (their BatchNorm-fused forms) and HDepthwiseConv1D/2D.

Bounds of a convolution with constant weights: positive taps take the input's bound of
the same side, negative taps the other side. Padding contributes zeros, which the
bounds include because the convolution pads the bound maps the same way.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from ...errors import UnsupportedConfigurationError, UnsupportedLayerError
from ...fixed.interval import Interval
from ...fixed.minimal import fractional_bits
from ...layers import HConv1D, HConv2D, HDepthwiseConv1D, HDepthwiseConv2D
from ...layers.depthwise import block_diagonal_kernel
from ..family import handler, limits, rule, trace
from ..option import CHANNELS_LAST, FUSED_ACTIVATION, STREAM, Option, all_ones, attr, tuple_attr
from . import _trace
from ._stages import quantizer_name, quantizer_stage, record_of_layer, weight_table, weighted_layer_record, weighted_ops
from .dense import handle_weighted


def _convolve(layer, feature_map, kernel) -> np.ndarray:
    """The layer's own convolution on float64 maps (values exact: < 53-bit sums)."""
    x = ops.convert_to_tensor(np.asarray(feature_map, np.float64)[None])
    w = ops.convert_to_tensor(np.asarray(kernel, np.float64))
    return np.asarray(ops.convert_to_numpy(layer.convolution_op(x, w)))[0]


@rule(HConv1D, HConv2D, HDepthwiseConv1D, HDepthwiseConv2D)
def hconv_rule(layer, intervals):
    stage, x = quantizer_stage(quantizer_name(layer, layer.iq), layer.iq, layer.input.shape[1:])
    kernel = weight_table(layer.kq, layer.fused_kernel())
    w = kernel.values
    positive, negative = np.maximum(w, 0.0), np.minimum(w, 0.0)
    lo = _convolve(layer, x.lo, positive) + _convolve(layer, x.hi, negative)
    hi = _convolve(layer, x.hi, positive) + _convolve(layer, x.lo, negative)
    live = ~x.is_zero
    f_in = int(x.f[live].max()) if live.any() else 0
    f_w = int(fractional_bits(w[w != 0]).max()) if np.any(w != 0) else 0
    products_sum = Interval(lo, hi, np.full(lo.shape, f_in + f_w))
    magnitudes = _convolve(layer, np.maximum(np.abs(x.lo), np.abs(x.hi)), np.abs(w))
    record = weighted_layer_record(layer, stage, kernel, products_sum, magnitudes)
    if isinstance(layer, (HDepthwiseConv1D, HDepthwiseConv2D)):
        # depth_multiplier 1 is hls4ml's DepthwiseConv, built as the latency strategy even under
        # distributed_arithmetic (its DA code generator takes Dense/Conv only); larger ones are a Conv.
        # Priced as its block-diagonal equivalent: the same products, its zeros cost nothing.
        record.estimate_ops = weighted_ops(record, layer.iq.fixed_format(), x.lo.shape, block_diagonal_kernel(w),
                                           latency_template=w.shape[-1] == 1)
    else:
        record.estimate_ops = weighted_ops(record, layer.iq.fixed_format(), x.lo.shape)
    return record


@handler(HDepthwiseConv1D, HDepthwiseConv2D)
def handle_depthwise(layer, in_tensors, out_tensors):
    """hls4ml's DepthwiseConv1D/2D for ``depth_multiplier=1`` (its weights are read from
    ``depthwise_data``); for a larger multiplier its Conv1D/Conv2D with the block-diagonal kernel."""
    configs = list(handle_weighted(layer, in_tensors, out_tensors))
    main = next(config for config in configs if config["name"] == layer.name)
    kernel = main["weight_data"]
    if "bias" not in record_of_layer(layer).weights:  # handle_weighted's zeros follow the kernel's last axis
        main["bias_data"] = np.zeros(kernel.shape[-2] * kernel.shape[-1])
    if layer.depth_multiplier == 1:
        main["depthwise_data"] = kernel
    else:
        main["weight_data"] = block_diagonal_kernel(kernel)
        main["class_name"] = "Conv1D" if isinstance(layer, HDepthwiseConv1D) else "Conv2D"
        main.pop("depthwise_data", None)
        main.pop("depth_multiplier", None)
    return tuple(configs)


@trace(HConv1D, HConv2D)
def trace_hconv(layer, record, inputs):
    """One constant product per output position over the window's real input positions
    (Keras' 'same' zero padding adds nothing), then the result type and the fused relu stage."""
    x = _trace.quantized_input(layer, record, inputs[0])
    kernel, bias = _trace.kernel_and_bias(record)
    out_spatial, windows = _trace.conv_taps(layer, x, kernel)
    cells = {}
    for position, taps in windows:
        if not taps:
            raise UnsupportedLayerError(f"layer {layer.name!r}: an output position sees only padding")
        rows = np.concatenate([x[source] for _, source in taps])
        weights = np.concatenate([kernel[tap] for tap, _ in taps])
        cells[position] = _trace.affine(rows[None], weights, bias)[0]
    return _trace.finish(layer, record, _trace.stack(cells, out_spatial))


@trace(HDepthwiseConv1D, HDepthwiseConv2D)
def trace_hdepthwise(layer, record, inputs):
    """One small constant product per channel and position (``depth_multiplier`` outputs each,
    output channel ``c * multiplier + m``): the sums of hls4ml's DepthwiseConv or its
    block-diagonal Conv."""
    x = _trace.quantized_input(layer, record, inputs[0])
    kernel, bias = _trace.kernel_and_bias(record)  # kernel (*taps, channels, multiplier)
    out_spatial, windows = _trace.conv_taps(layer, x, kernel)
    cells = {}
    for position, taps in windows:
        outputs = []
        for c in range(kernel.shape[-2]):
            rows = np.concatenate([x[(*source, slice(c, c + 1))] for _, source in taps])  # (taps,)
            weights = np.stack([kernel[tap][c] for tap, _ in taps])  # (taps, multiplier)
            outputs.append(_trace.affine(rows[None], weights, None)[0])
        y = np.concatenate(outputs)
        cells[position] = y + bias if bias is not None else y
    return _trace.finish(layer, record, _trace.stack(cells, out_spatial))


# hls4ml 1.3's Keras 3 handlers ignore dilation_rate, groups and channels_first layouts.
_CONV = [
    CHANNELS_LAST,
    FUSED_ACTIVATION,
    Option("groups", attr("groups"), lambda v: v == 1, "use groups=1 (hls4ml has no grouped convolution)"),
    Option("dilation_rate", tuple_attr("dilation_rate"), all_ones,
           "use dilation_rate=1 (hls4ml ignores dilation); for a wider receptive field stack convolutions or "
           "use a larger kernel"),
    Option("padding", attr("padding"), lambda v: v in ("valid", "same"),
           "use padding='valid' or 'same' (for 'causal' put keras.layers.ZeroPadding1D((k - 1, 0)) before a "
           "'valid' convolution)"),
]

# nnet_conv_stream.h (Conv2D) and nnet_sepconv2d_stream.h (DepthwiseConv2D) run a kernel of
# height 1 as a 1D convolution along each row: they never skip rows, so a row stride is lost.
_ROW_STRIDE = Option(
    "strides", lambda layer, node: (tuple(layer.kernel_size), tuple(layer.strides)),
    lambda v: v[0][0] > 1 or v[1][0] == 1,
    "hls4ml's streaming convolution ignores the row stride of a kernel of height 1; use "
    "strides=(1, s) followed by a pooling, or convert with io_type='io_parallel'",
    io_types=STREAM, error=UnsupportedConfigurationError,
)

# Keras' depthwise convolutions have no ``groups``.
_DEPTHWISE = [option for option in _CONV if option.name != "groups"]

limits(keras.layers.Conv1D, options=_CONV)
limits(keras.layers.Conv2D, options=[*_CONV, _ROW_STRIDE])
limits(keras.layers.DepthwiseConv1D, options=_DEPTHWISE)
# A depthwise layer with depth_multiplier > 1 converts as a Conv2D (hconv_rule): same limit.
limits(keras.layers.DepthwiseConv2D, options=[*_DEPTHWISE, _ROW_STRIDE])
