"""RTL traces of layers that only move values: Flatten, Reshape, Dropout, ZeroPadding1D/2D,
Cropping1D/2D, UpSampling1D/2D (nearest), Permute and Concatenate.

Each output element is an input element or a zero (wires in the firmware). The layer itself
is run on a map of element numbers (1-based, in float64: exact), so the trace follows Keras'
own indexing; a 0 in the result is a pad. hls4ml types these outputs with their input's type
(``conversion/rules/movement.py``), which holds every copied value: no cast changes a value.
Concatenate joins its inputs along the layer's axis (a chain of two-input concatenations in the
firmware, each partial result typed by its own interval: exact too).
"""

from __future__ import annotations

import keras
import numpy as np

from ..conversion.rules.movement import MOVEMENT, concat_axis
from ..conversion.rules.structure import apply_to_bounds
from .rtl_trace_registry import traces


def source_map(layer, in_shape) -> np.ndarray:
    """For each output element of ``layer`` on an input of ``in_shape`` (no batch axis), the
    1-based flat index of the input element it copies, 0 for a pad (int64, the output's shape)."""
    numbers = np.arange(1, int(np.prod(in_shape)) + 1, dtype=np.float64).reshape(in_shape)
    return np.rint(apply_to_bounds(layer, numbers)).astype(np.int64)


def move(x, sources: np.ndarray):
    """The elements of ``x`` picked by ``sources`` (1-based flat indices, 0: a constant 0)."""
    flat = np.ravel(x)
    padded = np.concatenate([flat[:1] * 0.0, flat])
    return padded[sources.ravel()].reshape(sources.shape)


@traces(*MOVEMENT)
def trace_movement(layer, record, inputs):
    x = inputs[0]
    return move(x, source_map(layer, tuple(x.shape)))


@traces(keras.layers.Flatten, keras.layers.Reshape)
def trace_reshape(layer, record, inputs):
    return inputs[0].reshape(tuple(int(d) for d in layer.output.shape[1:]))


@traces(keras.layers.Dropout)
def trace_dropout(layer, record, inputs):
    return inputs[0]


@traces(keras.layers.Concatenate)
def trace_concatenate(layer, record, inputs):
    return np.concatenate(list(inputs), axis=concat_axis(layer) - 1)
