"""The depthwise convolution family's cases (HDepthwiseConv1D/2D, ``conversion/rules/conv.py``).

Fuzzed by the fuzzer's ``conv`` step (family ``dw``), which predates the cases: no FuzzStep here.
"""

from __future__ import annotations

import numpy as np

from ...layers import HDepthwiseConv1D, HDepthwiseConv2D
from ...layers.depthwise import block_diagonal_kernel
from . import FamilyCase
from ._numpy import conv_np


def reference(layer, x) -> np.ndarray:
    """relu?(dwconv(q_in(x), q_w(W)) + q_b(b)) as the convolution with the block-diagonal kernel, float32."""
    x_q = layer.iq.quantize_np(x)
    y = conv_np(x_q, block_diagonal_kernel(layer.kq.quantized(layer.fused_kernel())), layer.strides, layer.padding)
    bias = layer.fused_bias()
    if bias is not None:
        y = y + layer.bq.quantized(bias)
    if layer.get_config()["activation"] == "relu":
        y = np.maximum(y, 0.0)
    return y.astype(np.float32)


# Variables: kernel, bias, iq/f, kq/f, bq/f | beta and iq's three range variables; one EBOPs loss.
CASES = (
    FamilyCase(name="depthwise1d", classes=(HDepthwiseConv1D,), args=(3,),
               kwargs={"depth_multiplier": 2, "padding": "same", "bias_initializer": "random_normal"},
               input_shape={HDepthwiseConv1D: (6, 2)}, counts=(5, 4, 1), reference=reference,
               stream_kwargs={"input_quantizer": {"granularity": "per-layer"}}),
    FamilyCase(name="depthwise2d", classes=(HDepthwiseConv2D,), args=(2,), kwargs={"strides": 2, "activation": "relu"},
               input_shape={HDepthwiseConv2D: (5, 5, 3)}, counts=(5, 4, 1), reference=reference,
               stream_kwargs={"input_quantizer": {"granularity": "per-layer"}}),
)
