"""The registry of layer families: every table a family fills, in one leaf module.

A family is one module under ``conversion/rules/`` that owns everything keyed by its layer
classes, each declared with a decorator or call from here:

- :func:`rule`: ``fn(layer, input_intervals) -> LayerRecord``, the precision rule (found along
  the class hierarchy, so subclasses inherit it);
- :func:`handler`: ``fn(layer, in_tensors, out_tensors) -> tuple[dict, ...]``, the hls4ml handler
  of our own classes (exact class: hls4ml looks handlers up by the class's qualified name);
- :func:`keras_handler`: a wrapper ``fn(layer, in_tensors, out_tensors, hls4ml_handler)`` of
  hls4ml's handler for a Keras class, active only inside ``hls_handlers.converting``;
- :func:`limits`: the constructor options the firmware reproduces (``option.Option``), collected
  along the class hierarchy by :func:`options_of`;
- :func:`trace`: ``fn(layer, record, inputs) -> FixedVariableArray``, the layer replayed on
  da4ml's symbolic arrays (``estimation/rtl.trace_model``), found along the class hierarchy;
- :func:`custom_template`: an ``hls_custom.CustomHLSLayer`` (our own C++ template, as data).

The drivers (``precision.derive``, ``hls_handlers.register_handlers``,
``layer_options.check_layer_options``, ``estimation/rtl.trace_model``) import ``rules`` (which
fills the tables) and read them here; rules import only this module and other leaves, so the
conversion package has no import cycle (``tests/test_import_order.py``). Every table refuses a
class registered twice (:class:`~hgq_chip.registry.DuplicateRegistrationError`). Standard
library and ``registry`` only.
"""

from __future__ import annotations

from collections.abc import Callable

from ..registry import register_once

# Precision rules: fn(layer, input_intervals) -> LayerRecord (records.py).
RULES: dict[type, Callable] = {}
# hls4ml handlers of our own classes: fn(layer, in_tensors, out_tensors) -> tuple of layer dicts.
HANDLERS: dict[type, Callable] = {}
# Wrappers of hls4ml's handler for a Keras class: fn(layer, in_tensors, out_tensors, hls4ml_handler).
KERAS_HANDLERS: dict[type, Callable] = {}
# Option limits per class (option.Option), unioned along the class hierarchy.
LIMITS: dict[type, tuple] = {}
# RTL traces: fn(layer, record, inputs: list[FixedVariableArray]) -> FixedVariableArray.
TRACES: dict[type, Callable] = {}
# Our own HLS templates (hls_custom.CustomHLSLayer), by hls4ml IR class name.
TEMPLATES: dict[str, object] = {}


def rule(*classes):
    """Register ``fn(layer, input_intervals) -> LayerRecord`` as the precision rule of ``classes``.

    Lookup follows the MRO (:func:`find_rule`), so subclasses inherit a rule unless they
    register their own. A class registered twice raises
    :class:`~hgq_chip.registry.DuplicateRegistrationError` (a programming error; the first rule stays).
    """

    def register(fn):
        register_once(RULES, classes, fn, "the precision rule (@rule)")
        return fn

    return register


def handler(*classes):
    """Register ``fn(layer, in_tensors, out_tensors) -> tuple[dict, ...]`` as the hls4ml handler of
    hgq_chip layer ``classes`` (subclasses need their own entry: hls4ml looks handlers up by
    exact class name). A class registered twice raises DuplicateRegistrationError."""

    def register(fn):
        register_once(HANDLERS, classes, fn, "the hls4ml handler (@handler)")
        return fn

    return register


def keras_handler(*classes):
    """Register a wrapper of hls4ml's handler for Keras classes (e.g. pooling). The wrapper gets
    hls4ml's handler as a fourth argument and runs only inside ``hls_handlers.converting``. A class
    registered twice raises DuplicateRegistrationError."""

    def register(fn):
        register_once(KERAS_HANDLERS, classes, fn, "the hls4ml handler wrapper (@keras_handler)")
        return fn

    return register


def limits(*classes, options) -> None:
    """Declare ``options`` (``option.Option`` s) as the exactness limits of ``classes``; a
    layer is checked against the options of its class and of every parent class. A class
    given limits twice raises DuplicateRegistrationError."""
    register_once(LIMITS, classes, tuple(options), "the option limits (limits())")


def trace(*classes):
    """Register ``fn(layer, record, inputs) -> FixedVariableArray`` as the RTL trace of ``classes``
    (found along the MRO like a rule). ``record`` is the layer's ``LayerRecord``; a trace reads
    weights, tables and formats from it, not from the layer's quantizers. A class registered
    twice raises DuplicateRegistrationError."""

    def register(fn):
        register_once(TRACES, classes, fn, "the RTL trace (@trace)")
        return fn

    return register


def custom_template(spec):
    """Declare ``spec`` (an ``hls_custom.CustomHLSLayer``: one hls4ml IR class on our own C++
    template) for ``hls_handlers.register_handlers`` to register with hls4ml; returns ``spec``.
    A second spec of the same IR class name raises DuplicateRegistrationError."""
    register_once(TEMPLATES, (spec.class_name,), spec, "an own HLS template (custom_template())")
    return spec


def _along_mro(table: dict, layer_class: type):
    for cls in layer_class.__mro__:
        if cls in table:
            return table[cls]
    return None


def ruled_classes() -> tuple[type, ...]:
    """The classes registered with :func:`rule` (their subclasses inherit the rule)."""
    return tuple(RULES)


def rule_for_class(layer_class: type):
    """The rule registered for ``layer_class`` or its nearest base class in the MRO (None: no rule)."""
    return _along_mro(RULES, layer_class)


def find_rule(layer):
    """The rule of ``layer``'s class or its nearest registered base class (None: no rule)."""
    return rule_for_class(type(layer))


def find_trace(layer):
    """The RTL trace of ``layer``'s class or its nearest registered base class (None: none)."""
    return _along_mro(TRACES, type(layer))


def supported_layer_names() -> list[str]:
    """Names of the ruled classes, sorted (the refusal of an unsupported layer lists them)."""
    return sorted(cls.__name__ for cls in RULES)


def own_handlers() -> dict:
    """``{layer class: handler}`` registered with :func:`handler` (import ``rules`` first)."""
    return dict(HANDLERS)


def wrapped_keras_classes() -> tuple[type, ...]:
    """The Keras classes whose hls4ml handler :func:`keras_handler` wraps."""
    return tuple(KERAS_HANDLERS)


def options_of(layer) -> list:
    """Every limit that applies to ``layer`` (its class and each parent class), each once."""
    found, seen = [], set()
    for cls in type(layer).__mro__:
        for option in LIMITS.get(cls, ()):
            if id(option) not in seen:
                seen.add(id(option))
                found.append(option)
    return found
