"""NumPy references the family cases share (float64, no Keras): not a family (no ``CASES``)."""

from __future__ import annotations

import numpy as np


def conv_np(x, kernel, strides, padding: str) -> np.ndarray:
    """Keras' channels_last convolution (dilation 1) in float64 NumPy: ``x`` ``(batch, *spatial,
    channels)``, ``kernel`` ``(*taps, channels, outputs)``; 'same' pads the smaller half first."""
    x, kernel = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
    taps, spatial = kernel.shape[:-2], x.shape[1:-1]
    if padding == "same":
        out = [-(-n // s) for n, s in zip(spatial, strides)]
        pads = [max((o - 1) * s + k - n, 0) for o, s, k, n in zip(out, strides, taps, spatial)]
        x = np.pad(x, [(0, 0), *((p // 2, p - p // 2) for p in pads), (0, 0)])
    else:
        out = [(n - k) // s + 1 for n, k, s in zip(spatial, taps, strides)]
    y = np.zeros((x.shape[0], *out, kernel.shape[-1]))
    for tap in np.ndindex(*taps):
        window = tuple(slice(t, t + (o - 1) * s + 1, s) for t, o, s in zip(tap, out, strides))
        y += x[(slice(None), *window, slice(None))] @ kernel[tap]
    return y
