"""The separable convolution family's case (HSeparableConv1D/2D, ``conversion/rules/separable.py``)."""

from __future__ import annotations

import numpy as np

from ...layers import HSeparableConv1D, HSeparableConv2D
from ...layers.depthwise import block_diagonal_kernel
from . import FamilyCase, FuzzStep
from ._numpy import conv_np


def reference(layer, x) -> np.ndarray:
    """relu?(pw(q_mid(dw(q_in(x), q_dw(Wd))), q_pw(Wp)) + q_b(b)), float32."""
    x_q = layer.iq.quantize_np(x)
    depthwise = block_diagonal_kernel(layer.dq.quantized(layer.fused_depthwise_kernel()))
    middle = layer.mq.quantize_np(conv_np(x_q, depthwise, layer.strides, layer.padding).astype(np.float32))
    y = conv_np(middle, layer.pq.quantized(layer.fused_kernel()), (1,) * len(layer.strides), "valid")
    if layer.use_bias:
        y = y + layer.bq.quantized(layer.fused_bias())
    if layer.get_config()["activation"] == "relu":
        y = np.maximum(y, 0.0)
    return y.astype(np.float32)


def _draw(d, shape) -> tuple[dict, tuple]:
    ch, spatial = d.ch, shape[:-1]
    kernel = [ch.integer(1, min(3, n)) for n in spatial]
    padding = ch.choice(("valid", "same"))
    strides = [ch.choice((1, 1, 2)) for _ in spatial]
    filters = ch.integer(1, 3)
    if padding == "same":
        out = tuple(-(-n // s) for n, s in zip(spatial, strides))
    else:
        out = tuple((n - k) // s + 1 for n, k, s in zip(spatial, kernel, strides))
    step = {"op": "separable", "filters": filters, "kernel": kernel, "strides": strides, "padding": padding,
            "depth_multiplier": ch.choice((1, 1, 2)), "activation": ch.choice(("relu", "linear")),
            "use_bias": ch.chance(70), "name": d.name("sep"), "iq": d.act_q(), "dq": d.weight_q(),
            "mq": d.act_q(), "pq": d.weight_q(), "bq": d.weight_q()}
    return step, out + (filters,)


def _build(step):
    cls = HSeparableConv1D if len(step["kernel"]) == 1 else HSeparableConv2D
    return cls(step["filters"], tuple(step["kernel"]), strides=tuple(step["strides"]), padding=step["padding"],
               depth_multiplier=step["depth_multiplier"], activation=step["activation"], use_bias=step["use_bias"],
               name=step["name"], input_quantizer=step["iq"], depthwise_quantizer=step["dq"],
               intermediate_quantizer=step["mq"], pointwise_quantizer=step["pq"], bias_quantizer=step["bq"])


# Variables: depthwise_kernel, pointwise_kernel, bias, iq/f, dq/f, mq/f, pq/f, bq/f | beta and the
# three range variables of iq and of mq; one EBOPs loss (both phases) in training.
CASES = (
    FamilyCase(
        name="separable",
        classes=(HSeparableConv1D, HSeparableConv2D),
        args=(3, 2),
        kwargs={"depth_multiplier": 2, "activation": "relu", "bias_initializer": "random_normal"},
        input_shape={HSeparableConv1D: (7, 2), HSeparableConv2D: (4, 5, 2)},
        counts=(8, 7, 1),
        reference=reference,
        stream_kwargs={"input_quantizer": {"granularity": "per-layer"},
                       "intermediate_quantizer": {"granularity": "per-layer"}},
        fuzz=FuzzStep("separable", ranks=(2, 3), draw=_draw, build=_build),
    ),
)
