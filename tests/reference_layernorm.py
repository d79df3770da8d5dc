"""NumPy reference of HLayerNormalization's inference (hgq_chip/layers/layernorm.py): the same steps
on the layer's quantizer formats, written with NumPy only (quantize_np, 1/sqrt in float64)."""

from __future__ import annotations

import numpy as np


def layernorm_reference(layer, x) -> np.ndarray:
    """Float32 outputs of a calibrated HLayerNormalization for inputs ``x`` (batch first): the
    module doc's steps in NumPy float64 with the layer's quantizer formats (quantize_np)."""
    x = layer.iq.quantize_np(np.asarray(x, np.float64))
    c = layer.factor
    d = layer.diff_q.quantize_np(x - x.sum(-1, keepdims=True) * c)
    v = layer.var_q.quantize_np((d * d).sum(-1, keepdims=True))
    rsqrt = (1.0 / np.sqrt(np.maximum(v, 0.0) * c + layer.epsilon)).astype(np.float32).astype(np.float64)
    y = layer.norm_q.quantize_np(d * layer.rsqrt_q.quantize_np(rsqrt))
    if layer.scale:
        y = y * layer.gq.quantized(layer.ln_gamma.numpy())
    if layer.center:
        y = y + layer.bq.quantized(layer.ln_beta.numpy())
    return layer.oq.quantize_np(y).astype(np.float32)
