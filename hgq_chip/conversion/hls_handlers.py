"""hls4ml layer handlers for hgq_chip layers: the only place that knows hls4ml's layer dicts.

hls4ml's Keras 3 front end looks handlers up in ``hls4ml.converters.keras_v3.layer_handlers``
by the layer's fully qualified class name; registering there is its public extension point.
A handler returns hls4ml layer dicts (structure and weight data); the types come from the
records in ``precision.py`` through the hls4ml configuration.

Registries: :func:`handler` (our layer classes, exact class: hls4ml matches the exact name) and
:func:`keras_handler` (wrappers of hls4ml's handler for a Keras class). Both refuse a class
registered twice (:class:`~hgq_chip.registry.DuplicateRegistrationError`). hls4ml asserts its
mandatory keys only for its own handler classes, so :func:`register_handlers` installs ours
behind :func:`check_handler_output`, which does the same check with a typed error.
"""

from __future__ import annotations

import contextlib
import contextvars

import numpy as np

from ..errors import UnsupportedLayerError
from ..fixed.interval import Interval
from ..layers import (
    HActivation,
    HConv1D,
    HConv1DBatchNorm,
    HConv2D,
    HConv2DBatchNorm,
    HDense,
    HDenseBatchNorm,
    HQuantize,
)
from ..registry import describe, register_once
from .precision import quantizer_name
from .records import format_of, quantizer_needs_mask

# The keys hls4ml 1.3 asserts on every dict a Keras 3 handler returns (``mandatory_keys`` in
# ``KerasV3LayerHandler.__call__``, hls4ml/converters/keras_v3/_base.py). Our handlers are plain
# functions, so hls4ml never checks their output: check_handler_output does.
MANDATORY_KEYS = ("name", "class_name", "input_keras_tensor_names", "output_keras_tensor_names")

_HANDLERS: dict = {}
# Handlers wrapping hls4ml's own one for a Keras class: fn(layer, in_tensors, out_tensors, hls4ml_handler).
_KERAS_HANDLERS: dict = {}
# hls4ml's handlers that ours replace, by class key (kept to delegate to them).
_HLS4ML_HANDLERS: dict = {}
# True only inside hgq_chip's own conversion: other hls4ml conversions in the process keep
# hls4ml's behaviour for the Keras classes we wrap.
_CONVERTING = contextvars.ContextVar("hgq_chip_converting", default=False)
# io_stream plan from stream.prepare_stream: {"repacks": {layer: flat size}, "zero_padded": {layer: pads}}.
_STREAM_PLAN = contextvars.ContextVar("hgq_chip_stream_plan", default={})


def handler(*classes):
    """Register ``fn(layer, in_tensors, out_tensors) -> tuple[dict, ...]`` as the hls4ml handler of
    hgq_chip layer ``classes`` (subclasses need their own entry: hls4ml looks handlers up by
    exact class name). A class registered twice raises DuplicateRegistrationError."""

    def register(fn):
        register_once(_HANDLERS, classes, fn, "the hls4ml handler (@handler)")
        return fn

    return register


def keras_handler(*classes):
    """Register a wrapper of hls4ml's handler for Keras classes (e.g. pooling). The wrapper gets
    hls4ml's handler as a fourth argument and runs only inside :func:`converting`. A class
    registered twice raises DuplicateRegistrationError."""

    def register(fn):
        register_once(_KERAS_HANDLERS, classes, fn, "the hls4ml handler wrapper (@keras_handler)")
        return fn

    return register


def own_handlers() -> dict:
    """``{layer class: handler}`` registered with :func:`handler` (import ``rules`` first)."""
    return dict(_HANDLERS)


def wrapped_keras_classes() -> tuple[type, ...]:
    """The Keras classes whose hls4ml handler :func:`keras_handler` wraps."""
    return tuple(_KERAS_HANDLERS)


def check_handler_output(layer, configs, source):
    """``configs`` unchanged if it is a tuple/list of dicts each holding :data:`MANDATORY_KEYS`.

    Else :class:`~hgq_chip.errors.UnsupportedLayerError` naming ``layer`` and the handler
    ``source`` (a bug in that handler: hls4ml would fail later with a bare KeyError/assert).
    """
    what = f"layer {layer.name!r} ({type(layer).__name__}): hgq_chip's hls4ml handler {describe(source)}"
    if not isinstance(configs, (tuple, list)) or not all(isinstance(c, dict) for c in configs):
        raise UnsupportedLayerError(f"{what} returned {type(configs).__name__}, not a tuple of layer dicts; "
                                    "this is a bug in hgq_chip, please report it")
    for config in configs:
        missing = [key for key in MANDATORY_KEYS if key not in config]
        if missing:
            raise UnsupportedLayerError(
                f"{what} made the hls4ml layer {config.get('name', '?')!r} without the keys hls4ml requires: "
                f"{', '.join(missing)}; this is a bug in hgq_chip, please report it")
    return configs


def _checked(fn):
    def checked(layer, in_tensors, out_tensors):
        return check_handler_output(layer, fn(layer, in_tensors, out_tensors), fn)

    checked.hgq_chip_handler = fn
    return checked


def class_key(cls) -> str:
    return f"{cls.__module__}.{cls.__name__}"


def _io(name, inputs, outputs, **extra) -> dict:
    return {"name": name, "input_keras_tensor_names": list(inputs), "output_keras_tensor_names": list(outputs), **extra}


def quantizer_config(name: str, quantizer, in_tensor, out_name: str) -> dict:
    shape = tuple(in_tensor.shape[1:])
    fmt = quantizer.fixed_format()
    if not quantizer_needs_mask(fmt):
        # A linear activation with an explicit result type is a plain ap_fixed cast.
        return _io(name, [in_tensor.name], [out_name], class_name="Activation", activation="linear",
                   input_shape=[list(shape)])
    width = np.broadcast_to(fmt.width, shape)
    k = np.broadcast_to(fmt.k, shape)
    integer = np.where(width > 0, np.broadcast_to(fmt.k + fmt.i, shape), 0)
    mask = tuple(a.astype(np.int16)[None] for a in (k, width, integer))
    return _io(name, [in_tensor.name], [out_name], class_name="FixedPointQuantizer", mask_kbi=mask,
               SAT=fmt.overflow.value, RND=fmt.rounding.value, fusible=None, overrides={},
               input_shape=[list(shape)])


def _repacked(layer, in_tensor) -> tuple[list[dict], object]:
    """In io_stream, a layer reading a flattened stream reads it through hls4ml's Repack layer
    (see stream.py); returns the configs to put first and the tensor the layer then reads."""
    from .stream import repack_name

    size = planned("repacks", layer.name)
    if size is None:
        return [], in_tensor
    name = f"{in_tensor.name}_{repack_name(layer)}"
    config = _io(repack_name(layer), [in_tensor.name], [name], class_name="Repack", target_shape=[size])
    return [config], _RenamedTensor(name, in_tensor.shape)


class _RenamedTensor:
    """A Keras tensor's shape under the name of the hls4ml tensor that replaces it."""

    def __init__(self, name, shape):
        self.name, self.shape = name, shape


@handler(HQuantize)
def handle_hquantize(layer: HQuantize, in_tensors, out_tensors):
    first, in_tensor = _repacked(layer, in_tensors[0])
    return (*first, quantizer_config(layer.name, layer.q, in_tensor, out_tensors[0].name))


def _quantized_input(layer, in_tensor) -> tuple[list[dict], str]:
    """The hls4ml layers for a layer's input quantizer (behind a Repack where needed), and the
    tensor name the quantizer produces."""
    first, source = _repacked(layer, in_tensor)
    q_name = f"{in_tensor.name}_{layer.name}_q"
    return [*first, quantizer_config(quantizer_name(layer, layer.iq), layer.iq, source, q_name)], q_name


def _redirect_input(config: dict, old: str, new: str) -> dict:
    config["input_keras_tensor_names"] = [new if t == old else t for t in config["input_keras_tensor_names"]]
    return config


@handler(HDense, HDenseBatchNorm, HConv1D, HConv2D, HConv1DBatchNorm, HConv2DBatchNorm)
def handle_weighted(layer, in_tensors, out_tensors):
    """HDense/HConv (and BatchNorm-fused forms): hls4ml's own handler for the Keras parent
    builds the layer dicts; we quantize its input and swap in the quantized weights."""
    from hls4ml.converters.keras_v3 import layer_handlers

    in_tensor = in_tensors[0]
    q_configs, q_name = _quantized_input(layer, in_tensor)
    parent = next(cls for cls in type(layer).__mro__ if class_key(cls) in layer_handlers and cls.__module__.startswith("keras."))
    configs = list(layer_handlers[class_key(parent)](layer, in_tensors, out_tensors))
    main = _redirect_input(configs[0], in_tensor.name, q_name)
    kernel = layer.kq.quantized(layer.fused_kernel())
    main["weight_data"] = kernel
    bias = layer.fused_bias()  # also without use_bias when a batch normalization is folded in
    main["bias_data"] = layer.bq.quantized(bias) if bias is not None else np.zeros(kernel.shape[-1])
    main["use_bias"] = True
    main["class_name"] = parent.__name__
    return (*q_configs, *configs)


@handler(HActivation)
def handle_hactivation(layer, in_tensors, out_tensors):
    from hls4ml.model.types import FixedPrecisionType

    from .rules.activation import table_in_index_order

    in_tensor, out_tensor = in_tensors[0], out_tensors[0]
    q_configs, q_name = _quantized_input(layer, in_tensor)
    name = layer.activation.__name__
    if not layer.uses_table:
        if name == "linear":
            q_configs[-1]["output_keras_tensor_names"] = [out_tensor.name]
            return tuple(q_configs)
        return (*q_configs, _io(f"{layer.name}_relu", [q_name], [out_tensor.name], class_name="Activation",
                                activation="relu"))
    table = table_in_index_order(layer)
    fmt = format_of(Interval.of_constants(table).covering())
    table_t = FixedPrecisionType(fmt.width, fmt.k + fmt.i, bool(fmt.k))
    lut = _io(f"{layer.name}_table", [q_name], [out_tensor.name], class_name="UnaryLUT", activation="unary_lut",
              table_data=table, table_t=table_t, input_shape=[list(in_tensor.shape[1:])])
    return (*q_configs, lut)


def hls4ml_handler(cls):
    """hls4ml's own handler for the Keras class ``cls`` (also where ours wraps it)."""
    from hls4ml.converters.keras_v3 import layer_handlers

    key = class_key(cls)
    return _HLS4ML_HANDLERS[key] if key in _HLS4ML_HANDLERS else layer_handlers[key]


def register_handlers() -> None:
    """Make hls4ml's Keras 3 converter dispatch our layers to our handlers (idempotent).

    Each of our handlers is installed behind :func:`check_handler_output`, so a dict without
    hls4ml's mandatory keys raises UnsupportedLayerError naming the layer.
    """
    from hls4ml.converters.keras_v3 import layer_handlers

    from . import rules  # noqa: F401  (rule modules may register handlers for their layers)
    from .asq_post_hls import register_asq_post_hls
    from .softmax_hls import register_softmax_hls

    # hls4ml copies every registered source into every project: registering ours before the
    # first convert makes a project's files independent of what the process converted earlier.
    register_asq_post_hls()
    register_softmax_hls()

    for cls, fn in _HANDLERS.items():
        layer_handlers[class_key(cls)] = _checked(fn)
    for cls, fn in _KERAS_HANDLERS.items():
        key = class_key(cls)
        current = layer_handlers.get(key)
        if not getattr(current, "hgq_chip_wrapper", False):
            _HLS4ML_HANDLERS[key] = current
            layer_handlers[key] = _dispatching(fn, key)


def _dispatching(fn, key):
    """Our wrapper inside :func:`converting`; hls4ml's own handler otherwise. For a Keras class
    hls4ml 1.3 has no Keras 3 handler for (e.g. ZeroPadding1D), ``original`` is None: outside our
    conversions the wrapper then returns None, which makes hls4ml try its fallbacks as before."""

    def dispatch(layer, in_tensors, out_tensors):
        original = _HLS4ML_HANDLERS[key]
        if not _CONVERTING.get():
            return None if original is None else original(layer, in_tensors, out_tensors)
        return check_handler_output(layer, fn(layer, in_tensors, out_tensors, original), fn)

    dispatch.hgq_chip_wrapper = True
    return dispatch


def planned(kind: str, layer_name: str):
    """What the io_stream plan holds for ``layer_name`` under ``kind`` (None: nothing)."""
    return _STREAM_PLAN.get().get(kind, {}).get(layer_name)


@contextlib.contextmanager
def converting(stream_plan: dict | None = None):
    """Register the handlers and let the wrapped Keras handlers act for the duration;
    ``stream_plan`` (from ``stream.prepare_stream``) names the layers whose input is read
    through a Repack or zero-padded ahead of a stream pooling."""
    register_handlers()
    token, plan_token = _CONVERTING.set(True), _STREAM_PLAN.set(dict(stream_plan or {}))
    try:
        yield
    finally:
        _CONVERTING.reset(token)
        _STREAM_PLAN.reset(plan_token)
