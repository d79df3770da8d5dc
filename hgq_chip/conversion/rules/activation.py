"""The HActivation family: relu/linear stay exact, other activations become tables (rule, handler, trace)."""

from __future__ import annotations

import numpy as np

from ...errors import UnsupportedLayerError
from ...fixed.format import FixedFormat
from ...fixed.interval import Interval
from ...layers import HActivation
from ...layers.activation import MAX_TABLE_INPUT_BITS, representable_values
from ..family import handler, rule, trace
from ..ops import relu_op, table_op
from ..records import HLSLayerTypes, LayerRecord, format_of, is_uniform
from . import _trace
from ._stages import layer_dict, quantized_input, quantizer_name, quantizer_stage, record_of_layer


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

    Outputs are ``oq(fl32(act(x)))`` from the NumPy function whose values the Keras layer's
    own table holds (``HActivation.table_outputs``, ``layers/tables.py``), so they equal what
    Keras computes on every backend. The Keras table is refreshed for the current formats too.
    """
    inputs = representable_values(table_input_format(layer))
    table_output_format(layer)
    layer.refresh_tables()
    return inputs, layer.table_outputs(inputs)


@rule(HActivation)
def hactivation_rule(layer, intervals):
    stage, x = quantizer_stage(quantizer_name(layer, layer.iq), layer.iq, layer.input.shape[1:])
    record = LayerRecord(layer.name, type(layer).__name__, x, [stage])
    name = layer.activation.__name__
    if not layer.uses_table:
        if name == "relu":
            record.output = x.relu()
            record.hls_layers.append(HLSLayerTypes(f"{layer.name}_relu", {"result": format_of(record.output)}))
            record.estimate_ops = [relu_op(record.output)]
        return record
    inputs, outputs = activation_table(layer)
    table_fmt = format_of(Interval.of_constants(outputs).covering())
    out_fmt = table_output_format(layer)
    record.output = Interval.of_format(out_fmt).broadcast_to(x.lo.shape)
    record.hls_layers.append(HLSLayerTypes(f"{layer.name}_table", {"result": table_fmt, "table": table_fmt}))
    # The table over every input value (increasing), and as hls4ml's unary_lut reads it (raw-bit order).
    record.tables.update(inputs=inputs, outputs=outputs, lut=table_in_index_order(layer, outputs))
    # Indexed by the input stage's result type; read once per element.
    record.estimate_ops = [table_op(stage.types["result"].width, table_fmt.width, record.output.lo.size)]
    return record


def table_in_index_order(layer, outputs: np.ndarray) -> np.ndarray:
    """The table ``outputs`` (over increasing inputs) as hls4ml's unary_lut reads it: indexed by the
    input's raw bits. Raw bits of a signed input read as unsigned put the non-negative half first."""
    if table_input_format(layer).k:
        half = len(outputs) // 2
        return np.concatenate([outputs[half:], outputs[:half]])
    return outputs


@handler(HActivation)
def handle_hactivation(layer, in_tensors, out_tensors):
    from hls4ml.model.types import FixedPrecisionType

    in_tensor, out_tensor = in_tensors[0], out_tensors[0]
    q_configs, q_name = quantized_input(layer, in_tensor)
    name = layer.activation.__name__
    if not layer.uses_table:
        if name == "linear":
            q_configs[-1]["output_keras_tensor_names"] = [out_tensor.name]
            return tuple(q_configs)
        return (*q_configs, layer_dict(f"{layer.name}_relu", [q_name], [out_tensor.name], class_name="Activation",
                                       activation="relu"))
    record = record_of_layer(layer)
    table = record.tables["lut"]
    fmt = next(stage for stage in record.hls_layers if stage.name == f"{layer.name}_table").types["table"]
    table_t = FixedPrecisionType(fmt.width, fmt.k + fmt.i, bool(fmt.k))
    lut = layer_dict(f"{layer.name}_table", [q_name], [out_tensor.name], class_name="UnaryLUT",
                     activation="unary_lut", table_data=table, table_t=table_t, input_shape=[list(in_tensor.shape[1:])])
    return (*q_configs, lut)


@trace(HActivation)
def trace_hactivation(layer, record, inputs):
    """The input cast, then relu, nothing (linear) or the record's table and the output cast."""
    x = _trace.quantized_input(layer, record, inputs[0])
    if not layer.uses_table:
        return _trace.relu(x) if layer.activation.__name__ == "relu" else x
    lookup = dict(zip(record.tables["inputs"].tolist(), record.tables["outputs"].tolist()))
    fmt = record.quantizer_formats[quantizer_name(layer, layer.oq)]  # one format (table_output_format)
    table = x.apply(lambda values: np.array([lookup[float(v)] for v in np.ravel(values)]).reshape(np.shape(values)))
    return table.quantize(*(np.broadcast_to(a, table.shape) for a in (fmt.k, fmt.i, fmt.f)))
