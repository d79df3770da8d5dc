"""Precision rule for HActivation: relu/linear stay exact, other activations become tables."""

from __future__ import annotations

import numpy as np
from keras import ops

from ...errors import UnsupportedLayerError
from ...fixed.format import FixedFormat
from ...fixed.interval import Interval
from ...layers import HActivation
from ...layers.activation import MAX_TABLE_INPUT_BITS, representable_values
from ..precision import quantizer_name, quantizer_stage, rule
from ..records import HLSLayerTypes, LayerRecord, format_of, is_uniform


def table_output_format(layer) -> FixedFormat:
    fmt = layer.oq.fixed_format()
    if not is_uniform(fmt):
        raise UnsupportedLayerError(
            f"{layer.name}: a {layer.activation.__name__} table needs one output format for the whole "
            "tensor; give the layer output_quantizer={'granularity': 'per-layer'}"
        )
    return fmt[(0,) * fmt.k.ndim]


def table_input_format(layer) -> FixedFormat:
    """The type the table is indexed with: exactly the input quantizer stage's result type."""
    fmt = format_of(Interval.of_format(layer.iq.fixed_format()))
    if fmt.width > MAX_TABLE_INPUT_BITS:
        layer.check_table_size()  # raises with the layer's own advice
        raise UnsupportedLayerError(f"{layer.name}: table input {fmt.to_hls()} is wider than {MAX_TABLE_INPUT_BITS} bits")
    return fmt


def activation_table(layer) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, outputs) of the table over every value of the table's input type.

    Outputs come from the layer's own inference ops (activation in float64 rounded to
    float32, then the uniform output quantizer in the layer's dtype), so they equal what Keras
    computes.
    """
    inputs = representable_values(table_input_format(layer))
    table_output_format(layer)
    shape = (len(inputs),) + (1,) * len(layer.element_shape)
    y = ops.cast(layer.activation(ops.convert_to_tensor(inputs.reshape(shape))), "float32")
    y = ops.broadcast_to(y, (len(inputs),) + layer.element_shape)
    out = np.asarray(ops.convert_to_numpy(layer.oq(y, training=False)), np.float64)
    return inputs, out.reshape(len(inputs), -1)[:, 0]


def table_in_index_order(layer) -> np.ndarray:
    """The table as hls4ml's unary_lut reads it: indexed by the input's raw bits.

    Raw bits of a signed input read as unsigned put the non-negative half first.
    """
    inputs, outputs = activation_table(layer)
    if table_input_format(layer).k:
        half = len(outputs) // 2
        return np.concatenate([outputs[half:], outputs[:half]])
    return outputs


@rule(HActivation)
def hactivation_rule(layer, intervals):
    stage, x = quantizer_stage(quantizer_name(layer, layer.iq), layer.iq, layer.input.shape[1:])
    record = LayerRecord(layer.name, type(layer).__name__, x, [stage])
    name = layer.activation.__name__
    if not layer.uses_table:
        if name == "relu":
            record.output = x.relu()
            record.hls_layers.append(HLSLayerTypes(f"{layer.name}_relu", {"result": format_of(record.output)}))
        return record
    inputs, outputs = activation_table(layer)
    record.tables["activation"] = (inputs, outputs)
    table_fmt = format_of(Interval.of_constants(outputs).covering())
    out_fmt = table_output_format(layer)
    record.output = Interval.of_format(out_fmt).broadcast_to(x.lo.shape)
    record.hls_layers.append(HLSLayerTypes(f"{layer.name}_table", {"result": table_fmt, "table": table_fmt}))
    return record
