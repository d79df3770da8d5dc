"""Helpers the families' RTL traces share (``family.trace``): casts, table reads, windows,
stacking, weighted sums and merge chains on da4ml's symbolic fixed-point arrays
(``da4ml.trace.FixedVariableArray``, imported lazily).

A trace replays the firmware's arithmetic with the formats and constants of the layer's
``LayerRecord`` (types per hls4ml stage, quantizer formats, quantized weights, tables), so the
traced logic computes what the hls4ml firmware computes, bit for bit, each stage's result
cast to its type as the firmware assigns it (``estimation/rtl.check_trace`` compares it with
Keras through da4ml's interpreter). The exact cast (RND_CONV, 1-bit SAT_SYM) is ``_cast.py``.
"""

from __future__ import annotations

import keras
import numpy as np

from ...errors import UnsupportedLayerError
from ._cast import cast, lookup  # noqa: F401  (re-exported: the families' one cast and table read)
from ._stages import quantizer_name


def relu(x):
    from da4ml.trace.ops import relu as da4ml_relu

    return da4ml_relu(x)


def stage_types(record) -> dict:
    """The record's hls4ml stages by name: ``{stage name: {key: FixedFormat}}``."""
    return {stage.name: stage.types for stage in record.hls_layers}


def quantized_input(layer, record, x, quantizer=None):
    """``x`` through ``layer``'s input quantizer stage (``quantizer``, default ``layer.iq``),
    in the format the record holds for it (rounding and overflow included)."""
    return cast(x, record.quantizer_formats[quantizer_name(layer, layer.iq if quantizer is None else quantizer)])


def stack(cells, shape):
    """Per-position vectors (a mapping or object array indexed by positions of ``shape``) as one
    array ``(*shape, channels)``."""
    return np.stack([cells[p] for p in np.ndindex(*shape)]).reshape(*shape, -1)


def maximum(values):
    """The elementwise maximum of a list of arrays, left to right."""
    result = values[0]
    for item in values[1:]:
        result = np.maximum(result, item)
    return result


def total(values):
    """The sum of a list of arrays, left to right."""
    result = values[0]
    for item in values[1:]:
        result = result + item
    return result


def window_taps(in_spatial, out_spatial, sizes, strides, padding: str):
    """Per output position, ``(position, [(tap, source position), ...])`` over the window's real
    input positions (Keras' 'same' padding: the smaller half first; padding contributes nothing
    to a sum, and never wins a maximum in the firmware)."""
    pads = []
    for n, k, s, o in zip(in_spatial, sizes, strides, out_spatial):
        pads.append(max((o - 1) * s + k - n, 0) // 2 if padding == "same" else 0)
    for position in np.ndindex(*out_spatial):
        taps = []
        for tap in np.ndindex(*sizes):
            source = tuple(p * s + t - pad for p, s, t, pad in zip(position, strides, tap, pads))
            if all(0 <= c < n for c, n in zip(source, in_spatial)):
                taps.append((tap, source))
        yield position, taps


def conv_taps(layer, x, kernel):
    """``window_taps`` of a convolution ``layer`` on ``x`` (``(*spatial, channels)``) with
    ``kernel`` ``(*taps, channels, filters)``. Raises UnsupportedLayerError for channels_first or
    dilation (convert refuses them too)."""
    if layer.data_format != "channels_last" or any(d != 1 for d in layer.dilation_rate):
        raise UnsupportedLayerError(f"layer {layer.name!r}: RTL tracing supports channels_last, undilated "
                                    "convolutions (as convert does); use dilation_rate=1")
    out_spatial = tuple(int(d) for d in layer.output.shape[1:-1])
    return out_spatial, window_taps(x.shape[:-1], out_spatial, kernel.shape[:-2], layer.strides, layer.padding)


def kernel_and_bias(record, prefix: str = ""):
    """(kernel, bias or None) of the record's quantized weights (float64, what the firmware
    holds): ``<prefix>kernel`` and ``<prefix>bias``."""
    bias = record.weights.get(f"{prefix}bias")
    kernel = np.asarray(record.weights[f"{prefix}kernel"].values, np.float64)
    return kernel, None if bias is None else np.asarray(bias.values, np.float64)


def affine(x2d, kernel, bias):
    """Rows of ``x2d`` ``(L, C)`` times ``kernel`` ``(C, O)`` plus ``bias`` ``(O,)`` or None
    (da4ml's constant matrix-vector solver)."""
    y = x2d @ kernel
    return y + bias if bias is not None else y


def finish(layer, record, y, hls_name=None):
    """``y`` (products + bias) assigned to stage ``hls_name``'s (default the layer's) result type,
    then the fused relu stage ``<hls_name>_relu`` if ``layer`` has one."""
    hls_name = hls_name or layer.name
    types = stage_types(record)
    y = cast(y, types[hls_name]["result"])
    if layer.activation is keras.activations.relu:
        y = cast(relu(y), types[f"{hls_name}_relu"]["result"])
    return y


_COMBINE = {
    "add": lambda a, b: a + b,
    "subtract": lambda a, b: a - b,
    "multiply": lambda a, b: a * b,  # two variables: a multiplier
    "maximum": np.maximum,
    "minimum": np.minimum,
}


def chain(layer, record, inputs, op: str, partial):
    """hls4ml's two-input merges chained left to right (as Keras combines n inputs), each
    partial result cast to its stage's result type (``partial(layer, i)`` names stage i; the
    last stage is the layer's own). ``op``: add, subtract, multiply, maximum or minimum."""
    types = stage_types(record)
    out = inputs[0]
    for index, other in enumerate(inputs[1:], 1):
        last = index == len(inputs) - 1
        out = cast(_COMBINE[op](out, other), types[layer.name if last else partial(layer, index)]["result"])
    return out
