"""Plain-loop NumPy convolution (channels_last) used as the reference for the conv layers.

Padding follows TensorFlow's 'same' rule (extra pad at the end), which is what
``keras.ops.conv`` does; everything runs in float64.
"""

from __future__ import annotations

import math

import numpy as np


def _pads_and_output(size, kernel, stride, dilation, padding):
    span = (kernel - 1) * dilation + 1
    if padding == "valid":
        return (0, 0), (size - span) // stride + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + span - size, 0)
    return (total // 2, total - total // 2), out


def conv_np(x, w, strides, padding, dilation):
    """x: (batch, *spatial, c_in), w: (*kernel, c_in, c_out) -> (batch, *out, c_out) in float64."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    rank = w.ndim - 2
    kernel = w.shape[:rank]
    pads, out = zip(*(_pads_and_output(s, k, st, d, padding) for s, k, st, d in zip(x.shape[1:-1], kernel, strides, dilation)))
    xp = np.pad(x, [(0, 0), *pads, (0, 0)])
    y = np.zeros((x.shape[0], *out, w.shape[-1]))
    for o in np.ndindex(*out):
        for t in np.ndindex(*kernel):
            pixel = tuple(oi * st + ti * d for oi, ti, st, d in zip(o, t, strides, dilation))
            y[(slice(None), *o)] += xp[(slice(None), *pixel)] @ w[t]
    return y
