"""NumPy reference of HSoftmax's inference (hgq_chip/layers/softmax.py): the same steps on the
layer's quantizer formats, written with NumPy only (quantize_np, np.exp in float64)."""

from __future__ import annotations

import numpy as np

from hgq_chip.layers.softmax import EXP_ARGUMENT_MAX


def softmax_reference(layer, x) -> np.ndarray:
    """Float32 outputs of ``layer`` (calibrated HSoftmax) for inputs ``x`` (batch first)."""
    x_q = layer.iq.quantize_np(np.asarray(x, np.float64))
    argument = x_q - x_q.max(axis=-1, keepdims=True) if layer.stable else x_q
    argument = argument * getattr(layer, "scale", 1.0)
    exp = np.exp(np.minimum(argument, EXP_ARGUMENT_MAX)).astype(np.float32).astype(np.float64)
    e = layer.exp_q.quantize_np(exp)
    s = layer.sum_q.quantize_np(e.sum(axis=-1, keepdims=True))
    step = 2.0 ** -layer.sum_q.rounded_f()
    r = layer.inv_q.quantize_np((1.0 / np.maximum(s, step)).astype(np.float32).astype(np.float64))
    return layer.oq.quantize_np(e * r).astype(np.float32)
