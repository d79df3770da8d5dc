"""Precision rules and hls4ml handlers for layers that only move values: ZeroPadding1D/2D,
Cropping1D/2D, UpSampling1D/2D (nearest), Permute and Concatenate.

Each output element is an input element or a zero, so the output interval of every element
is the interval of the element it copies (a pad: exactly 0) and nothing rounds: the layer is
exact in any type holding its output interval. The rules run the layer itself on the bound
and fractional-bit maps (``apply_to_bounds``), so they follow Keras' own indexing.

hls4ml 1.3 has Keras 3 handlers for Permute (its ``Transpose``) and Concatenate (two inputs
per ``Concatenate`` layer, so n inputs become a chain of n - 1); the padding, cropping and
up-sampling layers only have Keras 2 parsers, which the converter does not use (their
ZeroPadding2D parser also mixes up ``pad_bottom``/``pad_right`` for an int padding), so the
handlers here write hls4ml's layer dicts (``ZeroPadding1D/2D``, ``Cropping1D/2D``,
``Resize``) directly. hls4ml types ZeroPadding, Cropping, Resize and Transpose outputs with
their input's type whatever the configuration says (``add_output_variable(precision=inp.type.precision)``): exact, since that type
holds every copied value and 0.

io_parallel ``resize_nearest`` (``nnet_image.h``) picks source column ``(j * r) >> 16`` with
``r = (w << 16) / (w * s) + 1``, which equals Keras' ``j // s`` only while ``j * (r - 65536/s)``
stays below the rounding margin; :func:`resize_index_exact` checks every index (``layer_options``
refuses the rest in io_parallel; the io_stream template repeats each value exactly).
"""

from __future__ import annotations

import keras
import numpy as np

from ...errors import UnsupportedConfigurationError
from ...fixed.interval import Interval
from ..family import keras_handler, limits, rule, trace
from ..option import CHANNELS_LAST, Option, attr
from ..records import HLSLayerTypes, format_of
from ._stages import concat_repack_name, layer_dict, planned, require_input
from .structure import apply_to_bounds, record_of

_PADDING = (keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D)
_CROPPING = (keras.layers.Cropping1D, keras.layers.Cropping2D)
_UPSAMPLING = (keras.layers.UpSampling1D, keras.layers.UpSampling2D)
MOVEMENT = (*_PADDING, *_CROPPING, *_UPSAMPLING, keras.layers.Permute)


def moved_interval(layer, interval: Interval) -> Interval:
    """The interval of ``layer``'s output: the layer applied to each bound map and to the
    fractional bits (pads get [0, 0] with 0 fractional bits)."""
    return Interval(apply_to_bounds(layer, interval.lo), apply_to_bounds(layer, interval.hi),
                    np.rint(apply_to_bounds(layer, interval.f)).astype(np.int64))


@rule(*MOVEMENT)
def movement_rule(layer, intervals):
    require_input(layer, intervals)
    out = moved_interval(layer, intervals[0])
    # hls4ml gives these layers their input's type (see the module docstring).
    return record_of(layer, out, result=format_of(intervals[0]))


def resize_index_exact(size: int, factor: int) -> bool:
    """Whether hls4ml's io_parallel ``resize_nearest`` maps every output index j of an axis of
    ``size`` up-sampled ``factor`` times to ``j // factor`` (Keras' nearest up-sampling)."""
    ratio = ((size << 16) // (size * factor)) + 1
    return all(((j * ratio) >> 16) == j // factor for j in range(size * factor))


def upsampling_axes(layer, node) -> tuple[tuple[int, int], ...]:
    """(input size, factor) of each spatial axis of an UpSampling1D/2D call."""
    size = layer.size
    factors = (int(size),) if np.ndim(size) == 0 else tuple(int(s) for s in size)
    return tuple(zip((int(d) for d in node.inputs[0].shape[1:-1]), factors))


@rule(keras.layers.Concatenate)
def concatenate_rule(layer, intervals):
    """The output type holds every input's values (inputs of different types included); n inputs
    are concatenated two at a time, each partial result typed by its own interval."""
    require_input(layer, intervals)
    axis = concat_axis(layer)
    partials, out = [], intervals[0]
    for iv in intervals[1:]:
        out = Interval(*(np.concatenate([getattr(out, k), getattr(iv, k)], axis=axis - 1) for k in ("lo", "hi", "f")))
        partials.append(out)
    record = record_of(layer, out)
    record.hls_layers[:0] = [HLSLayerTypes(partial_concat_name(layer, i), {"result": format_of(p)})
                             for i, p in enumerate(partials[:-1], 1)]
    return record


def concat_axis(layer) -> int:
    """The concatenation axis counted with the batch axis first (1 .. rank), as hls4ml's
    ``concatenate`` templates take it."""
    rank = len(layer.output.shape) - 1
    axis = int(layer.axis)
    return axis + rank + 1 if axis < 0 else axis


def partial_concat_name(layer, index: int) -> str:
    """The hls4ml layer concatenating input ``index`` + 1 to the inputs before it."""
    return f"{layer.name}_cat{index}"


@keras_handler(keras.layers.Concatenate)
def handle_concatenate(layer, in_tensors, out_tensors, concat_handler):
    """hls4ml's Concatenate for two inputs (axis counted from the batch axis); a chain for more."""
    repacks, in_tensors = _repacked_inputs(layer, in_tensors)
    first = dict(concat_handler(layer, in_tensors[:2], [out_tensors[0]])[0])
    first["axis"] = concat_axis(layer)
    if len(in_tensors) == 2:
        return (*repacks, first)
    configs, previous, axis = list(repacks), in_tensors[0], concat_axis(layer) - 1
    for index, tensor in enumerate(in_tensors[1:], 1):
        last = index == len(in_tensors) - 1
        name = layer.name if last else partial_concat_name(layer, index)
        out_name = out_tensors[0].name if last else f"{out_tensors[0].name}_{name}"
        shape = list(previous.shape[1:])
        shape[axis] += int(tensor.shape[1:][axis])
        configs.append(dict(first, name=name, input_keras_tensor_names=[previous.name, tensor.name],
                            output_keras_tensor_names=[out_name], output_shape=shape,
                            input_shape=[list(previous.shape[1:]), list(tensor.shape[1:])]))
        previous = _Shaped(out_name, (None, *shape))
    return configs


def _repacked_inputs(layer, in_tensors) -> tuple[list[dict], list]:
    """io_stream: each flattened input (``stream.prepare_stream`` plans them) read through hls4ml's
    Repack into one word of the whole vector; returns those configs and the tensors to read."""
    sizes = planned("concat_repacks", layer.name) or [None] * len(in_tensors)
    configs, tensors = [], []
    for index, (tensor, size) in enumerate(zip(in_tensors, sizes)):
        if size is None:
            tensors.append(tensor)
            continue
        name = concat_repack_name(layer, index)
        out_name = f"{tensor.name}_{name}"
        configs.append(layer_dict(name, [tensor.name], [out_name], class_name="Repack", target_shape=[size]))
        tensors.append(_Shaped(out_name, tensor.shape))
    return configs, tensors


class _Shaped:
    def __init__(self, name, shape):
        self.name, self.shape = name, shape


def _pair(value) -> tuple[int, int]:
    return (int(value), int(value)) if np.ndim(value) == 0 else (int(value[0]), int(value[1]))


def _common(in_tensor) -> dict:
    return {"data_format": "channels_last", "input_shape": [list(in_tensor.shape[1:])]}


def _border_layer(layer, in_tensors, out_tensors, widths, kind: str, class_prefix: str) -> tuple:
    """hls4ml's ZeroPadding1D/2D or Cropping1D/2D dict: ``widths`` is the Keras layer's
    ``padding`` or ``cropping``; ``kind`` ("pad"/"crop") prefixes hls4ml's border attributes."""
    (in_tensor,), (out_tensor,) = in_tensors, out_tensors
    *spatial, n_chan = (int(d) for d in in_tensor.shape[1:])
    *out_spatial, _ = (int(d) for d in out_tensor.shape[1:])
    io = layer_dict(layer.name, [in_tensor.name], [out_tensor.name], n_chan=n_chan, **_common(in_tensor))
    if len(spatial) == 1:
        left, right = _pair(widths)
        return (dict(io, class_name=f"{class_prefix}1D", in_width=spatial[0], out_width=out_spatial[0],
                     **{f"{kind}_left": left, f"{kind}_right": right}),)
    (top, bottom), (left, right) = (_pair(w) for w in widths)
    return (dict(io, class_name=f"{class_prefix}2D", in_height=spatial[0], in_width=spatial[1],
                 out_height=out_spatial[0], out_width=out_spatial[1],
                 **{f"{kind}_top": top, f"{kind}_bottom": bottom, f"{kind}_left": left, f"{kind}_right": right}),)


@keras_handler(*_PADDING)
def handle_zero_padding(layer, in_tensors, out_tensors, _none):
    return _border_layer(layer, in_tensors, out_tensors, layer.padding, "pad", "ZeroPadding")


@keras_handler(*_CROPPING)
def handle_cropping(layer, in_tensors, out_tensors, _none):
    return _border_layer(layer, in_tensors, out_tensors, layer.cropping, "crop", "Cropping")


@keras_handler(*_UPSAMPLING)
def handle_upsampling(layer, in_tensors, out_tensors, _none):
    """hls4ml's ``Resize`` (nearest); a 1D map is a map one row high."""
    (in_tensor,), (out_tensor,) = in_tensors, out_tensors
    *spatial, n_chan = (int(d) for d in in_tensor.shape[1:])
    *out_spatial, _ = (int(d) for d in out_tensor.shape[1:])
    if len(spatial) == 1:
        spatial, out_spatial = [1, *spatial], [1, *out_spatial]
    return (layer_dict(layer.name, [in_tensor.name], [out_tensor.name], class_name="Resize", algorithm="nearest",
                align_corners=False, in_height=spatial[0], in_width=spatial[1], out_height=out_spatial[0],
                out_width=out_spatial[1], n_chan=n_chan, **_common(in_tensor)),)


# nnet_merge.h / nnet_merge_stream.h have concatenate1d/2d/3d only.
limits(keras.layers.Concatenate, options=[
    Option("input rank", lambda layer, node: len(node.inputs[0].shape) - 1, lambda v: v <= 3,
           "hls4ml concatenates tensors of at most 3 axes per sample; reshape the inputs first"),
])
# nnet_image.h's io_parallel resize_nearest computes source indices with 16-bit ratios (resize_index_exact).
_RESIZE_INDEX = Option(
    "size (input size, factor per axis)", lambda layer, node: upsampling_axes(layer, node),
    lambda axes: all(resize_index_exact(n, s) for n, s in axes),
    "hls4ml's io_parallel nearest resize picks wrong source positions for so large a map and factor; use a "
    "smaller factor (two up-samplings in a row) or convert with io_type='io_stream'",
    io_types=("io_parallel",), error=UnsupportedConfigurationError,
)
limits(keras.layers.UpSampling1D, options=[_RESIZE_INDEX])
# hls4ml's Resize is nearest or bilinear only.
limits(keras.layers.UpSampling2D, options=[
    CHANNELS_LAST,
    _RESIZE_INDEX,
    Option("interpolation", attr("interpolation"), lambda v: v == "nearest",
           "use interpolation='nearest' (other interpolations compute weighted means the firmware does not)"),
])
limits(keras.layers.ZeroPadding2D, keras.layers.Cropping2D, options=[CHANNELS_LAST])


def source_map(layer, in_shape) -> np.ndarray:
    """For each output element of ``layer`` on an input of ``in_shape`` (no batch axis), the
    1-based flat index of the input element it copies, 0 for a pad (int64, the output's shape):
    the layer run on a map of element numbers (float64: exact), so the trace follows Keras' own
    indexing."""
    numbers = np.arange(1, int(np.prod(in_shape)) + 1, dtype=np.float64).reshape(in_shape)
    return np.rint(apply_to_bounds(layer, numbers)).astype(np.int64)


@trace(*MOVEMENT)
def trace_movement(layer, record, inputs):
    """Each output element is an input element or a zero (wires); hls4ml types the output with
    the input's type, which holds every copied value: no cast."""
    x = inputs[0]
    sources = source_map(layer, tuple(x.shape))
    padded = np.concatenate([np.ravel(x)[:1] * 0.0, np.ravel(x)])
    return padded[sources.ravel()].reshape(sources.shape)


@trace(keras.layers.Concatenate)
def trace_concatenate(layer, record, inputs):
    """The inputs joined along the layer's axis (a chain of two-input concatenations in the
    firmware, each partial result typed by its own interval: exact)."""
    return np.concatenate(list(inputs), axis=concat_axis(layer) - 1)
