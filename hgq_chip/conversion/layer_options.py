"""Layer options the firmware reproduces exactly, as one table checked before anything is written.

Each accepted layer class lists the constructor options (and call shapes) whose values
its precision rule and hls4ml handler reproduce bit for bit; any other value is refused
with a typed error naming the layer, the option and what to use instead. The table is
looked up along each layer's class hierarchy, so subclasses (BatchNorm-fused, AdaQAT,
ASQ layers) are checked by their Keras parent's entries plus their own.

Sources of the limits: hls4ml 1.3's Keras 3 handlers ignore ``dilation_rate``, ``groups``
and ``channels_first`` layouts of convolutions; its ``Merge`` layer (add, subtract,
multiply, maximum, minimum) combines inputs of equal shape (no broadcasting in io_stream,
and its io_parallel broadcasting repeats the flat smaller input, unlike Keras); its
``Dense`` works per position on at most 2D maps (as a pointwise convolution); its streaming
pooling templates (``nnet_pooling_stream.h``) assert no padding and a pool size equal to the
stride; its global pooling outputs one value per channel (no ``keepdims``); its ``Resize``
is nearest or bilinear only and its io_parallel nearest index uses 16-bit ratios
(``nnet_image.h``); its concatenation templates (``nnet_merge*.h``) cover tensors of at most 3 axes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras

from ..errors import UnsupportedConfigurationError, UnsupportedLayerError
from ..layers.asq_post import ASQDense
from ..layers.asq_post_conv import ASQConv1D, ASQConv2D
from ..layers.pooling import pooling_pads
from ..layers.attention import HMultiHeadAttention
from ..layers.einsum_dense import HEinsumDense
from ..layers.softmax import HSoftmax
from .precision import find_rule
from .rules.movement import resize_index_exact, upsampling_axes

BOTH = ("io_parallel", "io_stream")
STREAM = ("io_stream",)
_MAX_POOLING = (keras.layers.MaxPooling1D, keras.layers.MaxPooling2D)
_AVERAGE_POOLING = (keras.layers.AveragePooling1D, keras.layers.AveragePooling2D)


@dataclass(frozen=True)
class Option:
    """One checked option: how to read it from a layer call, which values are exact, the fix.

    ``value(layer, node)`` returns the option's value; ``exact(value)`` says whether the
    firmware reproduces it. ``io_types`` limits the check to those io types; ``error`` is
    the typed error raised (a layer limit, or a limit of the chosen configuration).
    """

    name: str
    value: Callable
    exact: Callable
    advice: str
    io_types: tuple = BOTH
    error: type = UnsupportedLayerError


def _attr(name: str) -> Callable:
    return lambda layer, node: getattr(layer, name, None)


def _tuple_attr(name: str) -> Callable:
    return lambda layer, node: tuple(getattr(layer, name))


def _input_shapes(layer, node) -> list:
    return [tuple(t.shape[1:]) for t in node.inputs]


def _all_ones(value) -> bool:
    return all(int(v) == 1 for v in value)


_CHANNELS_LAST = Option(
    "data_format", _attr("data_format"), lambda v: v == "channels_last",
    "use data_format='channels_last' (put keras.layers.Permute before the layer if your data is channels-first)",
)


def _activation_name(layer, node):
    return getattr(layer.activation, "__name__", str(layer.activation))


_FUSED_ACTIVATION = Option(
    "activation", _activation_name, lambda v: v in ("linear", "relu"),
    "use activation='relu' or None here and put an HActivation layer after it (exact tables)",
)

_CONV = [
    _CHANNELS_LAST,
    _FUSED_ACTIVATION,
    Option("groups", _attr("groups"), lambda v: v == 1, "use groups=1 (hls4ml has no grouped convolution)"),
    Option("dilation_rate", _tuple_attr("dilation_rate"), _all_ones,
           "use dilation_rate=1 (hls4ml ignores dilation); for a wider receptive field stack convolutions or "
           "use a larger kernel"),
    Option("padding", _attr("padding"), lambda v: v in ("valid", "same"),
           "use padding='valid' or 'same' (for 'causal' put keras.layers.ZeroPadding1D((k - 1, 0)) before a "
           "'valid' convolution)"),
]

# nnet_conv_stream.h (Conv2D) and nnet_sepconv2d_stream.h (DepthwiseConv2D) run a kernel of
# height 1 as a 1D convolution along each row: they never skip rows, so a row stride is lost.
_ROW_STRIDE = Option(
    "strides", lambda layer, node: (tuple(layer.kernel_size), tuple(layer.strides)),
    lambda v: v[0][0] > 1 or v[1][0] == 1,
    "hls4ml's streaming convolution ignores the row stride of a kernel of height 1; use "
    "strides=(1, s) followed by a pooling, or convert with io_type='io_parallel'",
    io_types=STREAM, error=UnsupportedConfigurationError,
)

# Keras' depthwise convolutions have no ``groups``.
_DEPTHWISE = [option for option in _CONV if option.name != "groups"]

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

_SAME_SHAPES = Option(
    "input shapes", _input_shapes, lambda shapes: len(set(shapes)) == 1,
    "inputs must have the same shape (no broadcasting): repeat or reshape the smaller input "
    "explicitly, e.g. with a convolution or UpSampling",
)
# nnet_image.h's io_parallel resize_nearest computes source indices with 16-bit ratios (rules/movement.py).
_RESIZE_INDEX = Option(
    "size (input size, factor per axis)", lambda layer, node: upsampling_axes(layer, node),
    lambda axes: all(resize_index_exact(n, s) for n, s in axes),
    "hls4ml's io_parallel nearest resize picks wrong source positions for so large a map and factor; use a "
    "smaller factor (two up-samplings in a row) or convert with io_type='io_stream'",
    io_types=("io_parallel",), error=UnsupportedConfigurationError,
)
_GLOBAL_POOLING = (keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D,
                   keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D)
_KEEPDIMS = Option("keepdims", _attr("keepdims"), lambda v: not v,
                   "use keepdims=False and put a keras.layers.Reshape after the pooling (hls4ml's global pooling "
                   "outputs one value per channel)")

def _parallel_only(message: str) -> Option:
    """The refusal of io_stream for a layer whose firmware exists for io_parallel only."""
    return Option("io_type", lambda layer, node: "io_stream", lambda v: False, message, io_types=STREAM,
                  error=UnsupportedConfigurationError)


_ASQ_STREAM = _parallel_only("ASQ/POST firmware exists for io_parallel only; convert with io_type='io_parallel'")
_SOFTMAX_STREAM = _parallel_only("HSoftmax firmware (nnet_hgq_softmax.h) exists for io_parallel only; convert with "
                                 "io_type='io_parallel', or end the io_stream model before the softmax")
_ATTENTION_STREAM = _parallel_only("HMultiHeadAttention firmware (hls4ml's Einsum, our softmax template) exists for "
                                   "io_parallel only; convert with io_type='io_parallel'")
_EINSUM_STREAM = _parallel_only("HEinsumDense converts for io_parallel only; convert with io_type='io_parallel' (a "
                                "projection over the last axis alone is an HDense, which also streams)")

OPTIONS: dict[type, list[Option]] = {
    keras.layers.Layer: [
        Option("dtype", lambda layer, node: layer.compute_dtype, lambda v: v in ("float32", "float64"),
               "keep the layer's dtype float32 (or float64): in lower precision Keras rounds values the "
               "firmware keeps exact"),
    ],
    keras.layers.Conv1D: _CONV,
    keras.layers.Conv2D: [*_CONV, _ROW_STRIDE],
    keras.layers.DepthwiseConv1D: _DEPTHWISE,
    # A depthwise layer with depth_multiplier > 1 converts as a Conv2D (rules/conv.py): same limit.
    keras.layers.DepthwiseConv2D: [*_DEPTHWISE, _ROW_STRIDE],
    ASQDense: [_ASQ_STREAM],
    HSoftmax: [_SOFTMAX_STREAM],
    HMultiHeadAttention: [_ATTENTION_STREAM],
    HEinsumDense: [_EINSUM_STREAM],
    ASQConv1D: [_ASQ_STREAM, Option("padding", _attr("padding"), lambda v: v == "valid",
                       "use padding='valid' (pad with keras.layers.ZeroPadding1D before the layer)")],
    ASQConv2D: [_ASQ_STREAM, Option("padding", _attr("padding"), lambda v: v == "valid",
                       "use padding='valid' (pad with keras.layers.ZeroPadding2D before the layer)")],
    keras.layers.Dense: [
        _FUSED_ACTIVATION,
        # hls4ml turns a Dense on a (positions..., channels) tensor into a pointwise Conv1D/Conv2D.
        Option("input rank", lambda layer, node: len(node.inputs[0].shape) - 1, lambda v: v <= 3,
               "hls4ml applies a Dense per position only on 1D or 2D maps (input rank <= 3 per sample); "
               "put a keras.layers.Flatten or Reshape before it"),
    ],
    keras.layers.Flatten: [
        Option("data_format", lambda layer, node: (layer.data_format, len(node.inputs[0].shape)),
               lambda v: v[0] == "channels_last" or v[1] <= 2,
               "use data_format='channels_last' (channels_first transposes before flattening, which the "
               "firmware does not)"),
    ],
    **{cls: [_SAME_SHAPES] for cls in (keras.layers.Add, keras.layers.Subtract, keras.layers.Multiply,
                                        keras.layers.Maximum, keras.layers.Minimum)},
    keras.layers.Concatenate: [
        # nnet_merge.h / nnet_merge_stream.h have concatenate1d/2d/3d only.
        Option("input rank", lambda layer, node: len(node.inputs[0].shape) - 1, lambda v: v <= 3,
               "hls4ml concatenates tensors of at most 3 axes per sample; reshape the inputs first"),
    ],
    keras.layers.ReLU: [
        Option("max_value", _attr("max_value"), lambda v: v is None,
               "leave max_value=None, or use hgq_chip.layers.HActivation('relu6') for a relu capped at 6 (an exact "
               "table)"),
        Option("negative_slope", lambda layer, node: float(layer.negative_slope), lambda v: v == 0,
               "use hgq_chip.layers.HActivation('leaky_relu') (an exact table; Keras' function has slope 0.2), "
               "or negative_slope=0"),
        Option("threshold", lambda layer, node: float(layer.threshold), lambda v: v == 0,
               "use threshold=0 (a relu), or an hgq_chip.layers.HActivation table of the thresholded function"),
    ],
    keras.layers.UpSampling1D: [_RESIZE_INDEX],
    keras.layers.UpSampling2D: [
        _CHANNELS_LAST,
        _RESIZE_INDEX,
        Option("interpolation", _attr("interpolation"), lambda v: v == "nearest",
               "use interpolation='nearest' (other interpolations compute weighted means the firmware does not)"),
    ],
    **{cls: [_CHANNELS_LAST] for cls in (keras.layers.ZeroPadding2D, keras.layers.Cropping2D)},
    **{cls: [_CHANNELS_LAST, _KEEPDIMS] for cls in _GLOBAL_POOLING},
    **{cls: [_CHANNELS_LAST, _POOL_STRIDE] for cls in _MAX_POOLING},
    **{cls: [_CHANNELS_LAST, _POOL_STRIDE, _AVERAGE_POOL_PADS] for cls in _AVERAGE_POOLING},
}


def options_of(layer) -> list[Option]:
    """Every table entry that applies to ``layer`` (its class and each parent class)."""
    found, seen = [], set()
    for cls in type(layer).__mro__:
        for option in OPTIONS.get(cls, ()):
            if id(option) not in seen:
                seen.add(id(option))
                found.append(option)
    return found


def check_layer_options(nodes, io_type: str) -> None:
    """Raise the option's typed error for the first layer option the firmware would not reproduce.

    ``nodes`` are ``graph.GraphNode`` s; ``io_type`` selects the io-specific limits.
    """
    from . import rules  # noqa: F401  (importing registers every rule)

    for node in nodes:
        layer = node.layer
        if find_rule(layer) is None:
            continue  # precision.derive refuses it, listing the supported layers
        for option in options_of(layer):
            if io_type not in option.io_types:
                continue
            value = option.value(layer, node)
            if not option.exact(value):
                where = "" if option.io_types == BOTH else f" in {io_type}"
                raise option.error(
                    f"layer {layer.name!r} ({type(layer).__name__}): {option.name}={value!r} is not supported"
                    f"{where}; {option.advice}"
                )
