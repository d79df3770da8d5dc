"""Precision derivation: exact interval arithmetic from the input quantizers through every layer.

Each rule takes a layer and the intervals of its inputs and returns a LayerRecord with the
explicit hls4ml types of every hls4ml layer it becomes. Explicit quantizers are the only
places where rounding or overflow happen; every other type is wide enough to be exact.
Accumulators rely on two's-complement wrap-around: partial sums may wrap, the final sum
fits, so the result is exact.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from ..errors import UnsupportedLayerError
from ..fixed.interval import Interval
from ..fixed.minimal import minimal_format
from ..layers import HQuantize
from ..quantizers.hgq import ActivationQuantizer
from ..registry import register_once
from .records import HLSLayerTypes, LayerRecord, WeightTable, float32_exact_sum, format_of, quantizer_needs_mask

Rule = Callable[[keras.layers.Layer, list], LayerRecord]
_RULES: dict[type, Rule] = {}


def rule(*classes):
    """Register ``fn(layer, input_intervals) -> LayerRecord`` as the precision rule of ``classes``.

    Lookup follows the MRO (:func:`find_rule`), so subclasses inherit a rule unless they
    register their own. A class registered twice raises
    :class:`~hgq_chip.registry.DuplicateRegistrationError` (a programming error; the first rule stays).
    """

    def register(fn: Rule) -> Rule:
        register_once(_RULES, classes, fn, "the precision rule (@rule)")
        return fn

    return register


def ruled_classes() -> tuple[type, ...]:
    """The classes registered with :func:`rule` (their subclasses inherit the rule)."""
    return tuple(_RULES)


def find_rule(layer) -> Rule | None:
    """The rule of ``layer``'s class or its nearest registered base class (None: no rule)."""
    return rule_for_class(type(layer))


def rule_for_class(layer_class: type) -> Rule | None:
    """The rule registered for ``layer_class`` or its nearest base class in the MRO (None: no rule)."""
    for cls in layer_class.__mro__:
        if cls in _RULES:
            return _RULES[cls]
    return None


def supported_layer_names() -> list[str]:
    return sorted(cls.__name__ for cls in _RULES)


def quantizer_name(layer, quantizer) -> str:
    """The hls4ml layer name of a quantizer that sits inside ``layer``."""
    return layer.name if isinstance(layer, HQuantize) else f"{layer.name}_{quantizer.name}"


def quantizer_stage(name: str, quantizer: ActivationQuantizer, tensor_shape) -> tuple[HLSLayerTypes, Interval]:
    fmt = quantizer.fixed_format()
    out = Interval.of_format(fmt).broadcast_to(tuple(tensor_shape))
    # A uniform quantizer becomes a plain cast to this type, so it must carry the quantizer's modes.
    # Per-element casts (a mask) round and overflow per element; the type then only holds their
    # results and must not act again: SAT_SYM would turn a 1-bit element's -1 (the type's minimum) into -max.
    modes = () if quantizer_needs_mask(fmt) else (fmt.rounding, fmt.overflow)
    return HLSLayerTypes(name, {"result": format_of(out, *modes)}), out


def require_input(layer, intervals):
    if any(iv is None for iv in intervals):
        raise UnsupportedLayerError(
            f"layer {layer.name!r} ({type(layer).__name__}) reads the raw model input; "
            "put an HQuantize layer (or a quantized layer) first so the input has a fixed-point format"
        )


def weight_table(quantizer, values) -> WeightTable:
    return WeightTable(quantizer.quantized(values), quantizer.fixed_format(values))


def constant_format(values):
    """The weight/bias type: the narrowest one holding every constant (a 1-bit one for all zeros)."""
    fmt = minimal_format(values)
    return fmt if fmt.width > 0 else format_of(Interval(0.0, 0.0, 0))


def weighted_layer_record(layer, stage, kernel: WeightTable, products_sum: Interval, magnitudes) -> LayerRecord:
    """Record for a layer computing sum(x * w) + b, then an optional fused relu.

    ``products_sum`` and ``magnitudes`` (bound on |partial sums|) exclude the bias.
    """
    record = LayerRecord(layer.name, type(layer).__name__, products_sum, [stage], {"kernel": kernel})
    types = {"weight": constant_format(kernel.values)}
    accum = products_sum
    # Not ``use_bias``: a folded batch normalization has a bias (beta - mean * scale) without one.
    folded_bias = layer.fused_bias()
    if folded_bias is not None:
        bias = weight_table(layer.bq, folded_bias)
        record.weights["bias"] = bias
        accum = accum + Interval.of_constants(bias.values)
        magnitudes = magnitudes + np.abs(bias.values)
        types["bias"] = constant_format(bias.values)
    else:
        # hls4ml's Dense always adds a bias; the handler passes zeros, which a 1-bit type holds.
        types["bias"] = constant_format(np.zeros(1))
    record.accum = format_of(accum)
    types.update(accum=record.accum, result=record.accum)
    record.hls_layers.append(HLSLayerTypes(layer.name, types))
    record.float32_exact = float32_exact_sum(magnitudes, record.accum.f)
    record.ebops = layer.ebops_exact()
    record.output = accum
    if layer.activation is keras.activations.relu:
        record.output = accum.relu()
        record.hls_layers.append(HLSLayerTypes(f"{layer.name}_relu", {"result": format_of(record.output)}))
    return record


def derive(nodes) -> list[LayerRecord]:
    """One record per node, in topological order."""
    from . import rules  # noqa: F401  (importing registers every rule)

    intervals: dict[int, Interval | None] = {}
    records = []
    for node in nodes:
        layer_rule = find_rule(node.layer)
        if layer_rule is None:
            raise UnsupportedLayerError(
                f"layer {node.layer.name!r} of type {type(node.layer).__name__} has no exact fixed-point "
                f"conversion; supported layers: {', '.join(supported_layer_names())}"
            )
        inputs = [intervals.get(id(t)) for t in node.inputs]
        record = layer_rule(node.layer, inputs)
        record.inputs = inputs
        record.input_shapes = [tuple(int(d) for d in t.shape[1:]) for t in node.inputs]
        record.quantizer_formats = {
            quantizer_name(node.layer, q): q.fixed_format()
            for q in getattr(node.layer, "quantizers", list)() if hasattr(q, "record_range")
        }
        intervals[id(node.outputs[0])] = record.output
        records.append(record)
    return records
