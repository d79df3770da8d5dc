"""Precision rules for layers without weights: reshaping, dropout, addition (pooling: pooling.py)."""

from __future__ import annotations

import keras
import numpy as np

from ...fixed.interval import Interval
from ..precision import require_input, rule
from ..records import HLSLayerTypes, LayerRecord, format_of


def record_of(layer, out: Interval, **types) -> LayerRecord:
    types = {"result": format_of(out), **types}
    return LayerRecord(layer.name, type(layer).__name__, out, [HLSLayerTypes(layer.name, types)])


def apply_to_bounds(layer, array) -> np.ndarray:
    """Run a monotone weightless layer on one bound map (float32 holds these exactly)."""
    return np.asarray(keras.ops.convert_to_numpy(layer(array[None].astype(np.float32))))[0].astype(np.float64)


@rule(keras.layers.Flatten, keras.layers.Reshape)
def reshape_rule(layer, intervals):
    require_input(layer, intervals)
    return record_of(layer, intervals[0].reshape(tuple(layer.output.shape[1:])))


@rule(keras.layers.Dropout)
def dropout_rule(layer, intervals):
    require_input(layer, intervals)
    return record_of(layer, intervals[0])


@rule(keras.layers.Add)
def add_rule(layer, intervals):
    require_input(layer, intervals)
    out = intervals[0]
    for iv in intervals[1:]:
        out = out + iv
    return record_of(layer, out)
