"""Precision derivation: exact interval arithmetic from the input quantizers through every layer.

Each rule takes a layer and the intervals of its inputs and returns a LayerRecord with the
explicit hls4ml types of every hls4ml layer it becomes. Explicit quantizers are the only
places where rounding or overflow happen; every other type is wide enough to be exact.
Accumulators rely on two's-complement wrap-around: partial sums may wrap, the final sum
fits, so the result is exact.

The rules themselves live in ``rules/`` (one module per family, registered in ``family.py``);
this module is the driver that runs them in model order.

Keras computes the same values in floats (float32 or float64, per layer): each rule also
records, as ``FloatValues``, how many significant bits the values Keras computes there need,
and ``check_float_exact`` refuses a model where any exceeds its layer's dtype.
"""

from __future__ import annotations

import keras
import numpy as np

from ..errors import UnsupportedConfigurationError, UnsupportedLayerError
from ..fixed.interval import Interval
from . import rules  # noqa: F401  (importing the families fills the registries of family.py)
from .family import find_rule, rule, rule_for_class, ruled_classes, supported_layer_names  # noqa: F401  (re-exported)
from .layer_hints import UNSUPPORTED_HINTS
from .records import MANTISSA_BITS, FloatValues, LayerRecord, interval_bits, quantizer_output_bits
from .rules._stages import (  # noqa: F401  (re-exported for callers of the former home)
    constant_format, quantizer_name, quantizer_stage, require_input, weight_table, weighted_layer_record,
)


def derive(nodes) -> list[LayerRecord]:
    """One record per node, in topological order."""
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
        if record.cast_stages is None:
            stages = {stage.name for stage in record.hls_layers}
            record.cast_stages = {name: 0 for name in record.quantizer_formats if name in stages}
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
