"""Precision rule for HConv1D/HConv2D (their BatchNorm-fused forms) and HDepthwiseConv1D/2D.

Bounds of a convolution with constant weights: positive taps take the input's bound of
the same side, negative taps the other side. Padding contributes zeros, which the
bounds include because the convolution pads the bound maps the same way.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from ...fixed.interval import Interval
from ...fixed.minimal import fractional_bits
from ...layers import HConv1D, HConv2D, HDepthwiseConv1D, HDepthwiseConv2D
from ...layers.depthwise import block_diagonal_kernel
from ..hls_handlers import handle_weighted, handler
from ..precision import quantizer_name, quantizer_stage, rule, weight_table, weighted_layer_record


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
    return weighted_layer_record(layer, stage, kernel, products_sum, magnitudes)


@handler(HDepthwiseConv1D, HDepthwiseConv2D)
def handle_depthwise(layer, in_tensors, out_tensors):
    """hls4ml's DepthwiseConv1D/2D for ``depth_multiplier=1`` (its weights are read from
    ``depthwise_data``); for a larger multiplier its Conv1D/Conv2D with the block-diagonal kernel."""
    configs = list(handle_weighted(layer, in_tensors, out_tensors))
    main = next(config for config in configs if config["name"] == layer.name)
    kernel = main["weight_data"]
    if layer.fused_bias() is None:  # handle_weighted's zeros follow the kernel's last axis (the multiplier)
        main["bias_data"] = np.zeros(kernel.shape[-2] * kernel.shape[-1])
    if layer.depth_multiplier == 1:
        main["depthwise_data"] = kernel
    else:
        main["weight_data"] = block_diagonal_kernel(kernel)
        main["class_name"] = "Conv1D" if isinstance(layer, HDepthwiseConv1D) else "Conv2D"
        main.pop("depthwise_data", None)
        main.pop("depth_multiplier", None)
    return tuple(configs)
