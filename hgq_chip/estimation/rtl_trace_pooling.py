"""RTL traces of MaxPooling1D/2D, AveragePooling1D/2D ('valid' and 'same') and
GlobalMaxPooling1D/2D, GlobalAveragePooling1D/2D (``conversion/rules/pooling.py``).

A window holds only real input positions: Keras ignores padding, and so does the firmware
(a padded max pool reads its signed type's minimum, which never wins; an average divides by
the count of real positions, ``count_pad = false``). An average is the window's sum in
``accum_t`` times 1/count, a power of two (``check_exact_average_pooling``), then the result
type; a maximum goes through ``accum_t`` too. Every type holds its values exactly (the rules
derive them by interval arithmetic), and the casts below follow the firmware's.
"""

from __future__ import annotations

import keras
import numpy as np

from .rtl_trace_cast import cast
from .rtl_trace_registry import stage_types, traces

_MAX = (keras.layers.MaxPooling1D, keras.layers.MaxPooling2D)
_AVERAGE = (keras.layers.AveragePooling1D, keras.layers.AveragePooling2D)
_GLOBAL_MAX = (keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D)
_GLOBAL_AVERAGE = (keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D)


def windows(layer, in_spatial, out_spatial):
    """Per output position, the input positions of its window that are not padding (Keras'
    'same': the smaller half of the padding first)."""
    sizes, strides = tuple(layer.pool_size), tuple(layer.strides)
    pads = []
    for n, k, s, o in zip(in_spatial, sizes, strides, out_spatial):
        total = max((o - 1) * s + k - n, 0) if layer.padding == "same" else 0
        pads.append(total // 2)
    for position in np.ndindex(*out_spatial):
        taps = []
        for tap in np.ndindex(*sizes):
            source = tuple(p * s + t - pad for p, s, t, pad in zip(position, strides, tap, pads))
            if all(0 <= c < n for c, n in zip(source, in_spatial)):
                taps.append(source)
        yield position, taps


def maximum(values):
    result = values[0]
    for item in values[1:]:
        result = np.maximum(result, item)
    return result


def total(values):
    result = values[0]
    for item in values[1:]:
        result = result + item
    return result


def _stack(cells: dict, out_spatial):
    return np.stack([cells[p] for p in np.ndindex(*out_spatial)]).reshape(*out_spatial, -1)


def _types(layer, record):
    types = stage_types(record)[layer.name]
    return types["accum"], types["result"]


@traces(*_MAX)
def trace_max_pooling(layer, record, inputs):
    x = inputs[0]
    accum, result = _types(layer, record)
    out_spatial = tuple(int(d) for d in layer.output.shape[1:-1])
    cells = {p: maximum([x[t] for t in taps]) for p, taps in windows(layer, x.shape[:-1], out_spatial)}
    y = _stack(cells, out_spatial)
    return cast(cast(y, accum), result)


@traces(*_AVERAGE)
def trace_average_pooling(layer, record, inputs):
    x = inputs[0]
    accum, result = _types(layer, record)
    out_spatial = tuple(int(d) for d in layer.output.shape[1:-1])
    cells = {p: cast(total([x[t] for t in taps]), accum) * (1.0 / len(taps))
             for p, taps in windows(layer, x.shape[:-1], out_spatial)}
    return cast(_stack(cells, out_spatial), result)


@traces(*_GLOBAL_MAX)
def trace_global_max_pooling(layer, record, inputs):
    x = inputs[0]
    accum, result = _types(layer, record)
    rows = cast(x, accum).reshape(-1, x.shape[-1])
    return cast(maximum([rows[j] for j in range(rows.shape[0])]), result)


@traces(*_GLOBAL_AVERAGE)
def trace_global_average_pooling(layer, record, inputs):
    x = inputs[0]
    accum, result = _types(layer, record)
    rows = x.reshape(-1, x.shape[-1])
    summed = cast(total([rows[j] for j in range(rows.shape[0])]), accum)
    return cast(summed * (1.0 / rows.shape[0]), result)
