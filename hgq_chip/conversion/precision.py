"""Precision derivation: exact interval arithmetic from the input quantizers through every layer.

Each rule takes a layer and the intervals of its inputs and returns a LayerRecord with the
explicit hls4ml types of every hls4ml layer it becomes. Explicit quantizers are the only
places where rounding or overflow happen; every other type is wide enough to be exact.
Accumulators rely on two's-complement wrap-around: partial sums may wrap, the final sum
fits, so the result is exact.

Keras computes the same values in floats (float32 or float64, per layer): each rule also
records, as ``FloatValues``, how many significant bits the values Keras computes there need,
and ``check_float_exact`` refuses a model where any exceeds its layer's dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from ..errors import UnsupportedConfigurationError, UnsupportedLayerError
from ..fixed.interval import Interval
from ..fixed.minimal import minimal_format
from ..layers import HQuantize
from ..quantizers.hgq import ActivationQuantizer
from ..registry import register_once
from .layer_hints import UNSUPPORTED_HINTS
from .records import (
    MANTISSA_BITS, FloatValues, HLSLayerTypes, LayerRecord, WeightTable, format_of, interval_bits,
    quantizer_needs_mask, quantizer_output_bits, sum_bits,
)

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
    record.float_values.append(FloatValues("accumulator (every product and partial sum of inputs x weights + bias)",
                                           sum_bits(magnitudes, accum.f)))
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
    dtypes: dict[int, str] = {}
    records = []
    for node in nodes:
        layer_rule = find_rule(node.layer)
        if layer_rule is None and is_plain_softmax(node.layer):
            raise UnsupportedLayerError(
                f"layer {node.layer.name!r} ({type(node.layer).__name__}) computes a softmax, which hls4ml's generic "
                "tables do not reproduce bit for bit; replace it with hgq_chip.layers.HSoftmax (its exp and inverse "
                "tables are trained with the model and converted exactly), or end the model before the softmax"
            )
        if layer_rule is None:
            # The way forward for a Keras class (layer_hints.py); the supported list for any other.
            hint = UNSUPPORTED_HINTS.get(type(node.layer).__name__)
            raise UnsupportedLayerError(
                f"layer {node.layer.name!r} of type {type(node.layer).__name__} has no exact fixed-point "
                f"conversion; {hint or 'supported layers: ' + ', '.join(supported_layer_names())}"
            )
        inputs = [intervals.get(id(t)) for t in node.inputs]
        record = layer_rule(node.layer, inputs)
        record.inputs = inputs
        record.input_shapes = [tuple(int(d) for d in t.shape[1:]) for t in node.inputs]
        record.quantizer_formats = {
            quantizer_name(node.layer, q): q.fixed_format()
            for q in getattr(node.layer, "quantizers", list)() if hasattr(q, "record_range")
        }
        record.compute_dtype = str(node.layer.compute_dtype)
        record.float_values[:0] = _inputs_cast(node, inputs, dtypes, record.compute_dtype) + [
            _quantizer_values(name, fmt) for name, fmt in record.quantizer_formats.items()
        ]
        intervals[id(node.outputs[0])] = record.output
        dtypes[id(node.outputs[0])] = record.compute_dtype
        records.append(record)
    return records


def is_plain_softmax(layer) -> bool:
    """A Keras layer that computes a softmax: ``keras.layers.Softmax``, or any layer whose
    ``activation`` is softmax (``Activation('softmax')``, ``Dense(..., activation='softmax')``)."""
    if isinstance(layer, keras.layers.Softmax):
        return True
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) in ("softmax", "log_softmax")


def _quantizer_values(name: str, fmt) -> FloatValues:
    """What Keras computes in quantizer ``name``, with the hls type of its widest element."""
    bits = quantizer_output_bits(fmt)
    width = np.where(fmt.width > 0, fmt.width, -1)
    widest = np.unravel_index(int(np.argmax(width)), width.shape) if width.size else ()
    shown = fmt[widest].to_hls() if width.size and width[widest] > 0 else "zero width"
    return FloatValues(f"output of quantizer {name!r} ({shown})", bits)


def _inputs_cast(node, inputs, dtypes: dict, compute_dtype: str) -> list[FloatValues]:
    """Keras casts a float input to the layer's compute dtype: where a wider dtype produced it,
    its values must fit the narrower one. (Same-dtype inputs were checked by their producer;
    raw model inputs are rounded to the input's dtype before anything quantizes them.)"""
    found = []
    for index, (tensor, interval) in enumerate(zip(node.inputs, inputs)):
        produced = dtypes.get(id(tensor))
        if interval is None or produced is None or MANTISSA_BITS.get(produced, 0) <= MANTISSA_BITS.get(compute_dtype, 0):
            continue
        found.append(FloatValues(f"input {index} (computed in {produced}, cast to {compute_dtype})", interval_bits(interval)))
    return found


def float_exactness_problems(records) -> list[tuple[LayerRecord, FloatValues]]:
    """Every (record, values) whose values Keras cannot hold exactly in the layer's compute dtype."""
    return [
        (record, values)
        for record in records if record.compute_dtype in MANTISSA_BITS  # layer_options refuses others first
        for values in record.float_values if not values.fits(record.compute_dtype)
    ]


def check_float_exact(records) -> None:
    """Raise UnsupportedConfigurationError unless every value Keras computes is exact in the
    compute dtype of its layer (else Keras rounds where the firmware is exact). Called by
    ``convert`` before anything is written."""
    problems = float_exactness_problems(records)
    if not problems:
        return
    lines = [
        f"layer {record.layer_name!r} ({record.layer_class}): {values.what} needs {values.bits} significant bits, "
        f"{record.compute_dtype} holds {MANTISSA_BITS[record.compute_dtype]}"
        for record, values in problems
    ]
    advice = (
        "narrow those bits: fewer integer bits (calibrate on data without outliers, or scale the inputs down), "
        "fewer fractional bits (a lower init_f, or a higher beta so training drops them), or fewer inputs per sum"
    )
    if any(record.compute_dtype != "float64" for record, _ in problems):
        advice += (
            "; or build and run the model in float64 (call keras.config.set_floatx('float64') and "
            "keras.config.set_dtype_policy('float64') before building it, then train or load the weights and "
            "calibrate): float64 holds 53 bits"
        )
    raise UnsupportedConfigurationError(
        "Keras would round values that the firmware computes exactly, so its C simulation could differ from "
        "Keras: " + "; ".join(lines) + ". To convert, " + advice
    )
