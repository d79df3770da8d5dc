"""Precision rules for layers without weights: reshaping, dropout, pooling, addition."""

from __future__ import annotations

import math

import keras
import numpy as np

from ...fixed.interval import Interval
from ...layers import check_exact_average_pooling
from ..precision import require_input, rule
from ..records import HLSLayerTypes, LayerRecord, format_of


def _record(layer, out: Interval, **types) -> LayerRecord:
    types = {"result": format_of(out), **types}
    return LayerRecord(layer.name, type(layer).__name__, out, [HLSLayerTypes(layer.name, types)])


def _apply(layer, array) -> np.ndarray:
    """Run a monotone weightless layer on one bound map (float32 holds these exactly)."""
    return np.asarray(keras.ops.convert_to_numpy(layer(array[None].astype(np.float32))))[0].astype(np.float64)


@rule(keras.layers.Flatten, keras.layers.Reshape)
def reshape_rule(layer, intervals):
    require_input(layer, intervals)
    return _record(layer, intervals[0].reshape(tuple(layer.output.shape[1:])))


@rule(keras.layers.Dropout)
def dropout_rule(layer, intervals):
    require_input(layer, intervals)
    return _record(layer, intervals[0])


@rule(keras.layers.MaxPooling1D, keras.layers.MaxPooling2D)
def max_pooling_rule(layer, intervals):
    """Max pooling is monotone, so pooling each bound map bounds the pooled values."""
    require_input(layer, intervals)
    iv = intervals[0]
    out = Interval(_apply(layer, iv.lo), _apply(layer, iv.hi), _apply(layer, iv.f).astype(np.int64))
    # hls4ml's max() returns through accum_t: it must hold the result exactly too.
    return _record(layer, out, accum=format_of(out))


@rule(keras.layers.AveragePooling1D, keras.layers.AveragePooling2D)
def average_pooling_rule(layer, intervals):
    """The firmware sums a window in accum_t, then divides by its power-of-two size: a shift."""
    require_input(layer, intervals)
    check_exact_average_pooling(layer)
    iv = intervals[0]
    shift = int(math.log2(math.prod(layer.pool_size)))
    max_pool = (keras.layers.MaxPooling1D if len(layer.pool_size) == 1 else keras.layers.MaxPooling2D)(
        layer.pool_size, layer.strides, layer.padding
    )
    f = _apply(max_pool, iv.f).astype(np.int64) + shift
    out = Interval(_apply(layer, iv.lo), _apply(layer, iv.hi), f)
    window_sum = Interval(out.lo * 2**shift, out.hi * 2**shift, f)
    return _record(layer, out, accum=format_of(window_sum))


@rule(keras.layers.Add)
def add_rule(layer, intervals):
    require_input(layer, intervals)
    out = intervals[0]
    for iv in intervals[1:]:
        out = out + iv
    return _record(layer, out)
