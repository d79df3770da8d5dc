"""Precision rules and hls4ml handler for HSubtract, HMultiply, HMaximum and HMinimum, and for
Keras' own Subtract, Maximum and Minimum (the same computation without input quantizers).

hls4ml 1.3's ``Merge`` layer computes two inputs per layer (``nnet_merge.h``, io_parallel,
and ``nnet_merge_stream.h``, io_stream): ``res[i] = a[i] - b[i]`` / ``a[i] * b[i]`` in the
full-precision ap_fixed result of the operation (ap_fixed arithmetic never rounds), then
assigned to ``res_T``; maximum/minimum compare the two exactly and ``static_cast<res_T>``
the chosen one. So each output is exact when ``res_T`` holds every value the operation can
produce, which is the type derived here by interval arithmetic:

- difference: ``a + (-b)``, the finer grid of the two, bounds ``[lo_a - hi_b, hi_a - lo_b]``;
- product of two variables: fractional bits add (``f_a + f_b``), bounds from the four corner
  products (integer bits add, plus one for signed x signed);
- maximum/minimum: the result is one of the inputs, so the union of the formats (the finer
  grid; bounds ``max``/``min`` of the bounds).

n inputs (Multiply/Maximum/Minimum) become a left-to-right chain of two-input layers, as
Keras computes them, each partial result typed by its own interval. With input quantizers
each input is first cast by its quantizer stage ``<layer>_iq<n>``.
"""

from __future__ import annotations

import keras

from ...fixed.interval import Interval
from ...layers import HMaximum, HMinimum, HMultiply, HSubtract
from ..family import handler, keras_handler, limits, rule, trace
from ..ops import add_op, kif, minmax_op, product_ops, widths
from ..option import Option, input_shapes
from ..records import FloatValues, HLSLayerTypes, LayerRecord, format_of, interval_bits
from . import _trace
from ._stages import (
    RenamedTensor,
    hls4ml_handler,
    quantizer_config,
    quantizer_name,
    quantizer_stage,
    recorded_format,
    require_input,
)

MERGE_OPS = {HSubtract: "subtract", HMultiply: "multiply", HMaximum: "maximum", HMinimum: "minimum"}
# Keras' merges of already fixed-point tensors (keras.layers.Multiply: use HMultiply, whose EBOPs count).
KERAS_MERGE_OPS = {keras.layers.Subtract: "subtract", keras.layers.Maximum: "maximum", keras.layers.Minimum: "minimum"}
MERGE_OPS.update(KERAS_MERGE_OPS)


def merge_op(layer) -> str:
    """The hls4ml ``nnet_merge.h`` function of ``layer``: subtract, multiply, maximum or minimum."""
    return MERGE_OPS[type(layer)]


def _combine(op: str, a: Interval, b: Interval) -> Interval:
    if op == "subtract":
        return a + (-b)
    if op == "multiply":
        return a * b
    return a.maximum(b) if op == "maximum" else a.minimum(b)


def partial_name(layer, index: int) -> str:
    """The hls4ml layer combining input ``index`` with the partial result of the inputs before it."""
    return f"{layer.name}_{merge_op(layer)}{index}"


def _input_shapes(layer) -> list:
    inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
    return [tuple(t.shape[1:]) for t in inputs]


@rule(HSubtract, HMultiply, HMaximum, HMinimum, *KERAS_MERGE_OPS)
def merge_rule(layer, intervals):
    op = merge_op(layer)
    stages = []
    quantizers = getattr(layer, "input_quantizers", ())
    if quantizers:
        cast = [quantizer_stage(quantizer_name(layer, q), q, shape)
                for q, shape in zip(quantizers, _input_shapes(layer))]
        stages, intervals = [stage for stage, _ in cast], [interval for _, interval in cast]
    else:
        require_input(layer, intervals)
    out, partials = intervals[0], []
    for interval in intervals[1:]:
        out = _combine(op, out, interval)
        partials.append(out)
    chain = [HLSLayerTypes(partial_name(layer, i), {"result": format_of(p)}) for i, p in enumerate(partials[:-1], 1)]
    record = LayerRecord(layer.name, type(layer).__name__, out,
                         [*stages, *chain, HLSLayerTypes(layer.name, {"result": format_of(out)})])
    if op in ("subtract", "multiply"):
        # Keras computes each partial result in the compute dtype (maxima/minima are input values).
        for i, p in enumerate(partials, 1):
            what = "result" if len(partials) == 1 else f"partial {op} of inputs 0..{i}"
            record.float_values.append(FloatValues(what, interval_bits(p)))
    if isinstance(layer, HMultiply):
        record.ebops = layer.ebops_exact()
    # Each input quantizer casts its own input (in input order).
    record.cast_stages = {quantizer_name(layer, q): index for index, q in enumerate(quantizers)}
    if op == "multiply":
        record.estimate_ops = product_ops([widths(kif(q.fixed_format(), shape)) for q, shape in
                                           zip(quantizers, _input_shapes(layer))], out)
    else:
        n_inputs = len(quantizers) or len(intervals)
        record.estimate_ops = [(add_op if op == "subtract" else minmax_op)(out, n_inputs)]
    return record


@handler(HSubtract, HMultiply, HMaximum, HMinimum)
def handle_merge(layer, in_tensors, out_tensors):
    """hls4ml's Merge (two inputs per layer) with ``op`` set, chained for more inputs, behind
    the input quantizers' casts."""
    op, out_name = merge_op(layer), out_tensors[0].name
    configs, sources = [], list(in_tensors)
    for index, (quantizer, tensor) in enumerate(zip(getattr(layer, "input_quantizers", ()), in_tensors)):
        q_name = f"{tensor.name}_{layer.name}_q{index}"
        configs.append(quantizer_config(quantizer_name(layer, quantizer), recorded_format(layer, quantizer), tensor,
                                        q_name))
        sources[index] = RenamedTensor(q_name, tensor.shape)
    keras_class = next(cls for cls in type(layer).__mro__ if cls.__module__.startswith("keras."))
    merge_handler = hls4ml_handler(keras_class)
    template = dict(merge_handler(layer, sources[:2], [out_tensors[0]])[0], op=op)
    previous = sources[0]
    for index, tensor in enumerate(sources[1:], 1):
        last = index == len(sources) - 1
        name = layer.name if last else partial_name(layer, index)
        result = out_name if last else f"{out_name}_{name}"
        configs.append(dict(template, name=name, input_keras_tensor_names=[previous.name, tensor.name],
                            input_shape=[list(previous.shape[1:]), list(tensor.shape[1:])],
                            output_keras_tensor_names=[result]))
        previous = RenamedTensor(result, tensor.shape)
    return tuple(configs)


@keras_handler(*KERAS_MERGE_OPS)
def handle_keras_merge(layer, in_tensors, out_tensors, original):
    """Keras' Subtract/Maximum/Minimum: the same chain of two-input hls4ml Merges as HSubtract etc."""
    return handle_merge(layer, in_tensors, out_tensors)


# hls4ml's Merge layer combines inputs of equal shape (no broadcasting in io_stream, and its
# io_parallel broadcasting repeats the flat smaller input, unlike Keras).
SAME_SHAPES = Option(
    "input shapes", input_shapes, lambda shapes: len(set(shapes)) == 1,
    "inputs must have the same shape (no broadcasting): repeat or reshape the smaller input "
    "explicitly, e.g. with a convolution or UpSampling",
)
limits(keras.layers.Subtract, keras.layers.Multiply, keras.layers.Maximum, keras.layers.Minimum, options=[SAME_SHAPES])


@trace(HSubtract, HMultiply, HMaximum, HMinimum, *KERAS_MERGE_OPS)
def trace_merge(layer, record, inputs):
    """Each input through its quantizer stage ``<layer>_iq<n>`` (Keras' own merges have none), then
    the two-input merges chained left to right, each partial result cast to its type (a product
    of two variables: a multiplier)."""
    inputs = list(inputs)
    for index, quantizer in enumerate(getattr(layer, "input_quantizers", ())):
        inputs[index] = _trace.quantized_input(layer, record, inputs[index], quantizer)
    return _trace.chain(layer, record, inputs, merge_op(layer), partial_name)
