"""Installing the families' hls4ml handlers into hls4ml, and the conversion context they run in.

hls4ml's Keras 3 front end looks handlers up in ``hls4ml.converters.keras_v3.layer_handlers``
by the layer's fully qualified class name; registering there is its public extension point.
A handler returns hls4ml layer dicts (structure and weight data); the types come from the
records of ``precision.derive`` through the hls4ml configuration.

The handlers live beside their rules (``rules/<family>.py``), registered with
``family.handler`` (our layer classes, exact class: hls4ml matches the exact name) and
``family.keras_handler`` (wrappers of hls4ml's handler for a Keras class); our own HLS
templates are declared in ``hls_custom.py``. hls4ml asserts its mandatory keys only for its own
handler classes, so :func:`register_handlers` installs ours behind :func:`check_handler_output`,
which does the same check with a typed error.
"""

from __future__ import annotations

import contextlib
import contextvars

from ..errors import UnsupportedLayerError
from ..registry import describe
from . import rules  # noqa: F401  (importing the families fills the registries of family.py)
from .family import HANDLERS, KERAS_HANDLERS, handler, keras_handler, own_handlers, wrapped_keras_classes  # noqa: F401
from .rules._stages import (  # noqa: F401  (class_key, hls4ml_handler, planned: re-exported)
    RECORDS, REPLACED_HLS4ML_HANDLERS, STREAM_PLAN, class_key, hls4ml_handler, planned,
)

# The keys hls4ml 1.3 asserts on every dict a Keras 3 handler returns (``mandatory_keys`` in
# ``KerasV3LayerHandler.__call__``, hls4ml/converters/keras_v3/_base.py). Our handlers are plain
# functions, so hls4ml never checks their output: check_handler_output does.
MANDATORY_KEYS = ("name", "class_name", "input_keras_tensor_names", "output_keras_tensor_names")

# True only inside hgq_chip's own conversion: other hls4ml conversions in the process keep
# hls4ml's behaviour for the Keras classes we wrap.
_CONVERTING = contextvars.ContextVar("hgq_chip_converting", default=False)


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


def register_handlers() -> None:
    """Make hls4ml's Keras 3 converter dispatch our layers to our handlers (idempotent).

    Each of our handlers is installed behind :func:`check_handler_output`, so a dict without
    hls4ml's mandatory keys raises UnsupportedLayerError naming the layer.
    """
    from hls4ml.converters.keras_v3 import layer_handlers

    from .asq_post_hls import register_asq_post_hls
    from .rules.layernorm import register_layernorm_hls
    from .softmax_hls import register_softmax_hls

    # hls4ml copies every registered source into every project: registering ours before the
    # first convert makes a project's files independent of what the process converted earlier.
    register_asq_post_hls()
    register_softmax_hls()
    register_layernorm_hls()

    for cls, fn in HANDLERS.items():
        layer_handlers[class_key(cls)] = _checked(fn)
    for cls, fn in KERAS_HANDLERS.items():
        key = class_key(cls)
        current = layer_handlers.get(key)
        if not getattr(current, "hgq_chip_wrapper", False):
            REPLACED_HLS4ML_HANDLERS[key] = current
            layer_handlers[key] = _dispatching(fn, key)


def _dispatching(fn, key):
    """Our wrapper inside :func:`converting`; hls4ml's own handler otherwise. For a Keras class
    hls4ml 1.3 has no Keras 3 handler for (e.g. ZeroPadding1D), ``original`` is None: outside our
    conversions the wrapper then returns None, which makes hls4ml try its fallbacks as before."""

    def dispatch(layer, in_tensors, out_tensors):
        original = REPLACED_HLS4ML_HANDLERS[key]
        if not _CONVERTING.get():
            return None if original is None else original(layer, in_tensors, out_tensors)
        return check_handler_output(layer, fn(layer, in_tensors, out_tensors, original), fn)

    dispatch.hgq_chip_wrapper = True
    return dispatch


@contextlib.contextmanager
def converting(stream_plan: dict | None = None, records=()):
    """Register the handlers and let the wrapped Keras handlers act for the duration;
    ``stream_plan`` (from ``stream.prepare_stream``) names the layers whose input is read
    through a Repack or zero-padded ahead of a stream pooling; ``records`` (of
    ``precision.derive``, after ``prepare_stream``) are what the handlers render, by layer name."""
    register_handlers()
    token, plan_token = _CONVERTING.set(True), STREAM_PLAN.set(dict(stream_plan or {}))
    records_token = RECORDS.set({record.layer_name: record for record in records})
    try:
        yield
    finally:
        _CONVERTING.reset(token)
        STREAM_PLAN.reset(plan_token)
        RECORDS.reset(records_token)
