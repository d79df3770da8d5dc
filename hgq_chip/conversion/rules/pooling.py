"""Precision rules and hls4ml handler for MaxPooling1D/2D and AveragePooling1D/2D, and the
rules of GlobalMaxPooling1D/2D and GlobalAveragePooling1D/2D (hls4ml's own handler converts
those: ``GlobalPooling1D/2D``, ``nnet_pooling.h`` / ``nnet_pooling_stream.h``).

hls4ml's io_parallel pooling (``nnet_pooling.h``) fills a padded window position of a max
pool with ``pad_val``: the type's top bit set. For a signed type that is its most negative
value, below every real value, so the maximum equals Keras' (which ignores padding). For an
unsigned type it is a large positive value that wins the maximum. So a max pool that really
pads first casts its input into the signed type one sign bit wider (every value kept
exactly); the cast is a separate hls4ml layer ``<name>_signed`` emitted by the handler here.
io_stream pooling cannot pad at all: there an unsigned input is zero-padded ahead of the
pooling instead (exact: every value is >= 0 and every window holds one), a signed one is
refused (``stream.py``).
"""

from __future__ import annotations

import math

import keras
import numpy as np

from ...errors import UnsupportedConfigurationError
from ...fixed.format import FixedFormat
from ...fixed.interval import Interval
from ...layers import check_exact_average_pooling
from ...layers.pooling import pooling_pads
from ..family import keras_handler, limits, rule, trace
from ..ops import AvgPool, MaxPool, pool_op
from ..option import CHANNELS_LAST, STREAM, Option, attr
from ..records import FloatValues, HLSLayerTypes, format_of, sum_bits
from . import _trace
from ._stages import (
    layer_dict,
    planned,
    redirect_input,
    require_input,
    signed_cast_name,
)
from .structure import apply_to_bounds, record_of

_MAX_POOLING = (keras.layers.MaxPooling1D, keras.layers.MaxPooling2D)


def needs_signed_input(layer) -> bool:
    """A max pool whose windows reach into padding (Keras 'same' on a size the stride and pool
    do not fit): its input is cast to a signed type first."""
    return isinstance(layer, _MAX_POOLING) and any(pooling_pads(layer, layer.input.shape))


def signed(fmt: FixedFormat) -> FixedFormat:
    """The signed type holding every value of ``fmt`` (one sign bit more when unsigned)."""
    return fmt if fmt.k else FixedFormat(1, fmt.i, fmt.f)


@rule(*_MAX_POOLING)
def max_pooling_rule(layer, intervals):
    """Max pooling is monotone, so pooling each bound map bounds the pooled values."""
    require_input(layer, intervals)
    iv = intervals[0]
    out = Interval(apply_to_bounds(layer, iv.lo), apply_to_bounds(layer, iv.hi),
                   apply_to_bounds(layer, iv.f).astype(np.int64))
    # hls4ml's max() returns through accum_t: it must hold the result exactly too.
    record = record_of(layer, out, accum=format_of(out))
    if needs_signed_input(layer):
        cast = HLSLayerTypes(signed_cast_name(layer), {"result": signed(format_of(iv))})
        record.hls_layers.insert(0, cast)
    record.estimate_ops = [pool_op(MaxPool, out, iv.lo.size // out.lo.size)]
    return record


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
    f = apply_to_bounds(max_pool, iv.f).astype(np.int64) + shift
    out = Interval(apply_to_bounds(layer, iv.lo), apply_to_bounds(layer, iv.hi), f)
    window_sum = Interval(out.lo * 2**shift, out.hi * 2**shift, f)
    record = record_of(layer, out, accum=format_of(window_sum))
    # Keras sums a window (any order) in the compute dtype, then divides by its count (a shift).
    # Each partial sum is a multiple of 2**-(f - shift) of magnitude <= mean(|x|) * 2**shift.
    mean_magnitude = apply_to_bounds(layer, np.maximum(np.abs(iv.lo), np.abs(iv.hi)))
    record.float_values.append(FloatValues("window sums", sum_bits(mean_magnitude, f)))
    record.estimate_ops = [pool_op(AvgPool, out, iv.lo.size // out.lo.size)]
    return record


_GLOBAL_MAX = (keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D)
_GLOBAL_AVERAGE = (keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D)


def _spatial_axes(iv: Interval) -> tuple[int, ...]:
    return tuple(range(iv.lo.ndim - 1))


@rule(*_GLOBAL_MAX)
def global_max_pooling_rule(layer, intervals):
    """The maximum over every position, per channel. hls4ml's streaming global pooling converts
    each input value into accum_t before comparing (``compute_global_pool``), so accum_t holds
    the whole input interval, not only the maxima."""
    require_input(layer, intervals)
    iv = intervals[0]
    axes = _spatial_axes(iv)
    out = Interval(iv.lo.max(axis=axes), iv.hi.max(axis=axes), iv.f.max(axis=axes))
    record = record_of(layer, out, accum=format_of(iv))
    record.estimate_ops = [pool_op(MaxPool, out, iv.lo.size // out.lo.size)]
    return record


@rule(*_GLOBAL_AVERAGE)
def global_average_pooling_rule(layer, intervals):
    """The sum over every position in accum_t, then a division by their power-of-two count
    (``check_exact_average_pooling`` refuses other counts): ap_fixed's division keeps accum_t's
    fractional bits, so accum_t carries ``shift`` more than the input and the shift is exact."""
    require_input(layer, intervals)
    check_exact_average_pooling(layer)
    iv = intervals[0]
    axes = _spatial_axes(iv)
    count = math.prod(iv.lo.shape[:-1])
    shift = int(math.log2(count))
    f = iv.f.max(axis=axes) + shift
    window_sum = Interval(iv.lo.sum(axis=axes), iv.hi.sum(axis=axes), f)
    out = Interval(window_sum.lo / count, window_sum.hi / count, f)
    record = record_of(layer, out, accum=format_of(window_sum))
    magnitude = np.maximum(np.abs(iv.lo), np.abs(iv.hi)).sum(axis=axes)
    record.float_values.append(FloatValues("sums over all positions", sum_bits(magnitude, f - shift)))
    record.estimate_ops = [pool_op(AvgPool, out, iv.lo.size // out.lo.size)]
    return record


def _zero_padded(layer, in_tensor, configs: list, pads) -> list:
    """io_stream: a ZeroPadding1D/2D ahead of the pooling, which then pools the padded map
    without padding (keras/hls4ml put the smaller half of the padding first)."""
    *spatial, n_chan = (int(d) for d in in_tensor.shape[1:])
    before = [p // 2 for p in pads]
    after = [p - b for p, b in zip(pads, before)]
    padded = [s + p for s, p in zip(spatial, pads)]
    name = f"{layer.name}_pad"
    out_name = f"{in_tensor.name}_{name}"
    pool = redirect_input(configs[0], in_tensor.name, out_name)
    pool["input_shape"] = [[*padded, n_chan]]
    common = {"n_chan": n_chan, "data_format": "channels_last", "input_shape": [[*spatial, n_chan]]}
    if len(spatial) == 1:
        pad = layer_dict(name, [in_tensor.name], [out_name], class_name="ZeroPadding1D", in_width=spatial[0],
                  out_width=padded[0], pad_left=before[0], pad_right=after[0], **common)
        pool.update(pad_left=0, pad_right=0, in_width=padded[0], n_in=padded[0])
    else:
        pad = layer_dict(name, [in_tensor.name], [out_name], class_name="ZeroPadding2D", in_height=spatial[0],
                  in_width=spatial[1], out_height=padded[0], out_width=padded[1], pad_top=before[0],
                  pad_bottom=after[0], pad_left=before[1], pad_right=after[1], **common)
        pool.update(pad_top=0, pad_bottom=0, pad_left=0, pad_right=0, in_height=padded[0], in_width=padded[1])
    return [pad, *configs]


@keras_handler(*_MAX_POOLING)
def handle_max_pooling(layer, in_tensors, out_tensors, hls4ml_handler):
    """hls4ml's own pooling layer, behind a cast into a signed type where the pool pads
    (io_parallel), or behind a zero padding of its unsigned input (io_stream, planned by
    ``stream.prepare_stream``)."""
    configs = list(hls4ml_handler(layer, in_tensors, out_tensors))
    pads = planned("zero_padded", layer.name)
    if pads is not None:
        return _zero_padded(layer, in_tensors[0], configs, pads)
    if not needs_signed_input(layer):
        return configs
    in_tensor = in_tensors[0]
    signed_name = f"{in_tensor.name}_{signed_cast_name(layer)}"
    cast = layer_dict(signed_cast_name(layer), [in_tensor.name], [signed_name], class_name="Activation",
               activation="linear", input_shape=[list(in_tensor.shape[1:])])
    configs[0] = redirect_input(configs[0], in_tensor.name, signed_name)
    return [cast, *configs]


# hls4ml's streaming pooling templates (nnet_pooling_stream.h) assert no padding and a pool size
# equal to the stride; its global pooling outputs one value per channel (no keepdims).
_POOL_STRIDE = Option(
    "pool_size", lambda layer, node: (tuple(layer.pool_size), tuple(layer.strides)), lambda sizes: sizes[0] == sizes[1],
    "hls4ml's streaming pooling needs pool_size == strides (it asserts this); change the pooling or "
    "convert with io_type='io_parallel'",
    io_types=STREAM, error=UnsupportedConfigurationError,
)
# A max pool that pads is padded with zeros ahead of the stream pooling where its input is
# unsigned (stream.py checks the sign once types are derived); an average never.
_AVERAGE_POOL_PADS = Option(
    "padding (elements padded per axis)", lambda layer, node: pooling_pads(layer, node.inputs[0].shape),
    lambda pads: not any(pads),
    "hls4ml's streaming average pooling cannot pad: use padding='valid', or an input size the stride divides "
    "with pool_size == strides, or convert with io_type='io_parallel'",
    io_types=STREAM, error=UnsupportedConfigurationError,
)
_KEEPDIMS = Option("keepdims", attr("keepdims"), lambda v: not v,
                   "use keepdims=False and put a keras.layers.Reshape after the pooling (hls4ml's global pooling "
                   "outputs one value per channel)")
limits(*_GLOBAL_MAX, *_GLOBAL_AVERAGE, options=[CHANNELS_LAST, _KEEPDIMS])
limits(*_MAX_POOLING, options=[CHANNELS_LAST, _POOL_STRIDE])
limits(keras.layers.AveragePooling1D, keras.layers.AveragePooling2D,
       options=[CHANNELS_LAST, _POOL_STRIDE, _AVERAGE_POOL_PADS])


def _pool_types(layer, record):
    types = _trace.stage_types(record)[layer.name]
    return types["accum"], types["result"]


def _pool_windows(layer, x):
    """(output spatial shape, window taps): a window holds only real input positions. Keras
    ignores padding, and so does the firmware (a padded max pool reads its signed type's
    minimum, which never wins; an average divides by the count of real positions)."""
    out_spatial = tuple(int(d) for d in layer.output.shape[1:-1])
    taps = _trace.window_taps(x.shape[:-1], out_spatial, tuple(layer.pool_size), tuple(layer.strides), layer.padding)
    return out_spatial, taps


@trace(*_MAX_POOLING)
def trace_max_pooling(layer, record, inputs):
    """Max pooling ('valid' or 'same'): each window's maximum through ``accum_t``, then ``result_t``."""
    x = inputs[0]
    accum, result = _pool_types(layer, record)
    out_spatial, windows = _pool_windows(layer, x)
    cells = {p: _trace.maximum([x[s] for _, s in taps]) for p, taps in windows}
    return _trace.cast(_trace.cast(_trace.stack(cells, out_spatial), accum), result)


@trace(keras.layers.AveragePooling1D, keras.layers.AveragePooling2D)
def trace_average_pooling(layer, record, inputs):
    """Average pooling: each window's sum in ``accum_t`` times 1/count (a power of two,
    ``check_exact_average_pooling``), then ``result_t``."""
    x = inputs[0]
    accum, result = _pool_types(layer, record)
    out_spatial, windows = _pool_windows(layer, x)
    cells = {p: _trace.cast(_trace.total([x[s] for _, s in taps]), accum) * (1.0 / len(taps)) for p, taps in windows}
    return _trace.cast(_trace.stack(cells, out_spatial), result)


@trace(*_GLOBAL_MAX)
def trace_global_max_pooling(layer, record, inputs):
    """The maximum over every position, through ``accum_t``, then ``result_t``."""
    x = inputs[0]
    accum, result = _pool_types(layer, record)
    rows = _trace.cast(x, accum).reshape(-1, x.shape[-1])
    return _trace.cast(_trace.maximum([rows[j] for j in range(rows.shape[0])]), result)


@trace(*_GLOBAL_AVERAGE)
def trace_global_average_pooling(layer, record, inputs):
    """The sum over every position in ``accum_t`` times 1/count, then ``result_t``."""
    x = inputs[0]
    accum, result = _pool_types(layer, record)
    rows = x.reshape(-1, x.shape[-1])
    summed = _trace.cast(_trace.total([rows[j] for j in range(rows.shape[0])]), accum)
    return _trace.cast(summed * (1.0 / rows.shape[0]), result)
