"""Precision rules for layers without weights: reshaping, dropout, addition (pooling: pooling.py)."""

from __future__ import annotations

import keras
import numpy as np

from ...fixed.interval import Interval
from ...layers import HAdd
from ..family import handler, keras_handler, limits, rule, trace
from ..ops import add_op
from ..option import Option
from ..records import FloatValues, HLSLayerTypes, LayerRecord, format_of, interval_bits
from . import _trace
from ._stages import hls4ml_handler, require_input
from .merge import SAME_SHAPES


def record_of(layer, out: Interval, **types) -> LayerRecord:
    types = {"result": format_of(out), **types}
    return LayerRecord(layer.name, type(layer).__name__, out, [HLSLayerTypes(layer.name, types)])


def apply_to_bounds(layer, array) -> np.ndarray:
    """Run a monotone weightless layer on one bound map, in float64 whatever the layer's dtype
    (a float64 copy from its config: bounds of up to 53 significant bits stay exact)."""
    copy = type(layer).from_config({**layer.get_config(), "dtype": "float64"})
    out = copy(keras.ops.convert_to_tensor(np.asarray(array, np.float64)[None], dtype="float64"))
    return np.asarray(keras.ops.convert_to_numpy(out), np.float64)[0]


@rule(keras.layers.Flatten, keras.layers.Reshape)
def reshape_rule(layer, intervals):
    require_input(layer, intervals)
    return record_of(layer, intervals[0].reshape(tuple(layer.output.shape[1:])))


@rule(keras.layers.Dropout)
def dropout_rule(layer, intervals):
    require_input(layer, intervals)
    return record_of(layer, intervals[0])


def partial_sum_name(layer, index: int) -> str:
    """The hls4ml layer adding input ``index`` + 1 to the sum of the inputs before it."""
    return f"{layer.name}_sum{index}"


@rule(keras.layers.Add)
def add_rule(layer, intervals):
    """A sum of fixed-point values is exact in a type holding its interval. hls4ml adds two
    tensors per layer, so n inputs become a chain of n - 1 additions, each partial sum typed
    by its own interval."""
    require_input(layer, intervals)
    out, partials = intervals[0], []
    for iv in intervals[1:]:
        out = out + iv
        partials.append(out)
    record = record_of(layer, out)
    chain = [HLSLayerTypes(partial_sum_name(layer, i), {"result": format_of(p)}) for i, p in enumerate(partials[:-1], 1)]
    record.hls_layers[:0] = chain
    record.estimate_ops = [add_op(out, len(intervals))]
    # Keras adds the inputs in order too (keras.layers.Add), each partial sum in the compute dtype.
    for i, p in enumerate(partials, 1):
        what = "sum" if len(partials) == 1 else f"sum of inputs 0..{i}"
        record.float_values.append(FloatValues(what, interval_bits(p)))
    return record


@keras_handler(keras.layers.Add)
def handle_add(layer, in_tensors, out_tensors, add_handler):
    """hls4ml's Merge('add') for two inputs; a chain of them for more."""
    first = [dict(c) for c in add_handler(layer, in_tensors[:2], [out_tensors[0]])]
    for config in first:
        config["op"] = "add"  # hls4ml derives the op from the class name (HAdd's is ours)
    if len(in_tensors) == 2:
        return first
    configs, previous = [], in_tensors[0].name
    for index, tensor in enumerate(in_tensors[1:], 1):
        last = index == len(in_tensors) - 1
        config = dict(first[0], name=layer.name if last else partial_sum_name(layer, index))
        out_name = out_tensors[0].name if last else f"{out_tensors[0].name}_{config['name']}"
        config.update(input_keras_tensor_names=[previous, tensor.name], output_keras_tensor_names=[out_name])
        configs.append(config)
        previous = out_name
    return configs


@handler(HAdd)
def handle_hadd(layer, in_tensors, out_tensors):
    return handle_add(layer, in_tensors, out_tensors, hls4ml_handler(keras.layers.Add))


limits(keras.layers.Flatten, options=[
    Option("data_format", lambda layer, node: (layer.data_format, len(node.inputs[0].shape)),
           lambda v: v[0] == "channels_last" or v[1] <= 2,
           "use data_format='channels_last' (channels_first transposes before flattening, which the "
           "firmware does not)"),
])
limits(keras.layers.Add, options=[SAME_SHAPES])


@trace(keras.layers.Flatten, keras.layers.Reshape)
def trace_reshape(layer, record, inputs):
    return inputs[0].reshape(tuple(int(d) for d in layer.output.shape[1:]))


@trace(keras.layers.Dropout)
def trace_dropout(layer, record, inputs):
    return inputs[0]


@trace(keras.layers.Add)
def trace_add(layer, record, inputs):
    """The inputs added left to right (hls4ml's chain of two-input additions), each partial sum
    cast to its type (``<layer>_sum<i>``, the last one the layer's)."""
    return _trace.chain(layer, record, list(inputs), "add", partial_sum_name)
