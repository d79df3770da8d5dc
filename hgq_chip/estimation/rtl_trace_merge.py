"""RTL traces of Add/HAdd, HSubtract, HMultiply, HMaximum and HMinimum
(``conversion/rules/structure.py`` and ``conversion/rules/merge.py``).

The firmware (hls4ml's two-input ``Merge``) chains n inputs left to right, as Keras does, and
assigns each partial result to its own type (``<layer>_sum<i>`` / ``<layer>_<op><i>``, the
last one the layer's): each is cast here exactly as there. Quantized merges first cast each
input through its quantizer stage ``<layer>_iq<n>`` (rounding and overflow included). A
product of two variables is a multiplier (da4ml's variable x variable product).
"""

from __future__ import annotations

import keras
import numpy as np

from ..conversion.precision import quantizer_name
from ..conversion.rules.merge import merge_op, partial_name
from ..conversion.rules.structure import partial_sum_name
from ..layers import HMaximum, HMinimum, HMultiply, HSubtract
from .rtl_trace_cast import cast
from .rtl_trace_registry import stage_types, traces

_COMBINE = {
    "add": lambda a, b: a + b,
    "subtract": lambda a, b: a - b,
    "multiply": lambda a, b: a * b,
    "maximum": np.maximum,
    "minimum": np.minimum,
}


def chain(layer, record, inputs, op: str, partial):
    """Inputs combined left to right, each partial result cast to its stage's result type
    (``partial(layer, i)`` names stage i; the last stage is the layer's own)."""
    types = stage_types(record)
    out = inputs[0]
    for index, other in enumerate(inputs[1:], 1):
        last = index == len(inputs) - 1
        out = cast(_COMBINE[op](out, other), types[layer.name if last else partial(layer, index)]["result"])
    return out


@traces(keras.layers.Add)
def trace_add(layer, record, inputs):
    return chain(layer, record, list(inputs), "add", partial_sum_name)


@traces(HSubtract, HMultiply, HMaximum, HMinimum)
def trace_merge(layer, record, inputs):
    inputs = list(inputs)
    for index, quantizer in enumerate(layer.input_quantizers):
        inputs[index] = cast(inputs[index], record.quantizer_formats[quantizer_name(layer, quantizer)])
    return chain(layer, record, inputs, merge_op(layer), partial_name)
