"""Helpers the families' RTL traces share (``family.trace``): casts, windows and patches on
da4ml's symbolic fixed-point arrays (``da4ml.trace.FixedVariableArray``, imported lazily).

A trace replays the firmware's arithmetic with the formats and constants of the layer's
``LayerRecord``, so the traced logic computes what the hls4ml firmware computes, bit for bit
(``estimation/rtl.check_trace`` compares it with Keras through da4ml's interpreter).
"""

from __future__ import annotations

import numpy as np

from ...errors import UnsupportedLayerError


def quantize(x, fmt, shape=None):
    """``x`` cast into ``fmt`` (an ArrayFormat or FixedFormat, broadcast over ``shape``,
    default ``x.shape``) with its rounding and overflow modes."""
    shape = x.shape if shape is None else shape
    k, i, f = (np.broadcast_to(a, shape) for a in (fmt.k, fmt.i, fmt.f))
    return x.quantize(k, i, f, overflow_mode=fmt.overflow.value, round_mode=fmt.rounding.value)


def relu(x):
    from da4ml.trace.ops import relu as da4ml_relu

    return da4ml_relu(x)


def stack(cells, shape):
    """An object array of per-position vectors (``shape``) as one array (``*shape, channels``)."""
    return np.stack([cells[p] for p in np.ndindex(*shape)]).reshape(*shape, -1)


def windows(layer, x, op):
    """``op(list of window vectors)`` at every output position of a 'valid' pooling ``layer``."""
    sizes, strides = layer.pool_size, layer.strides
    if layer.padding != "valid":
        raise UnsupportedLayerError(f"{layer.name}: RTL tracing supports valid pooling only")
    out_spatial = tuple(layer.output.shape[1:-1])
    cells = np.empty(out_spatial, dtype=object)
    for position in np.ndindex(*out_spatial):
        window = [x[tuple(p * s + t for p, s, t in zip(position, strides, tap))] for tap in np.ndindex(*sizes)]
        cells[position] = op(window)
    return stack(cells, out_spatial)


def convolve(layer, x, kernel, bias):
    """Convolution (channels_last) as one constant matrix-vector product per output position:
    ``kernel`` ``(*taps, channels, filters)``, ``bias`` ``(filters,)`` or None."""
    if layer.data_format != "channels_last" or any(d != 1 for d in layer.dilation_rate):
        raise UnsupportedLayerError(f"{layer.name}: RTL tracing supports channels_last, undilated convolutions")
    in_spatial, sizes, strides = x.shape[:-1], kernel.shape[:-2], layer.strides
    out_spatial = tuple(layer.output.shape[1:-1])
    pads = []
    for n, k, s, o in zip(in_spatial, sizes, strides, out_spatial):
        total = max((o - 1) * s + k - n, 0) if layer.padding == "same" else 0
        pads.append(total // 2)
    outputs = np.empty(out_spatial, dtype=object)
    for position in np.ndindex(*out_spatial):
        rows, taps = [], []
        for tap in np.ndindex(*sizes):
            source = tuple(p * s + t - pad for p, s, t, pad in zip(position, strides, tap, pads))
            if all(0 <= c < n for c, n in zip(source, in_spatial)):  # padded zeros contribute nothing
                rows.append(x[source])
                taps.append(kernel[tap])
        y = np.concatenate(rows) @ np.concatenate(taps)
        outputs[position] = y + bias if bias is not None else y
    return stack(outputs, out_spatial)


def weights_of(record):
    """(kernel, bias or None) of a weighted layer's record: the quantized values the firmware holds."""
    bias = record.weights.get("bias")
    return record.weights["kernel"].values, None if bias is None else bias.values


def input_format(layer, record):
    """The format of ``layer``'s input quantizer, as the record holds it."""
    from ._stages import quantizer_name

    return record.quantizer_formats[quantizer_name(layer, layer.iq)]
