"""The model as da4ml combinational logic: the same arithmetic as the firmware, as RTL.

Each layer is replayed on da4ml's symbolic fixed-point arrays by its family's trace
(``family.trace``, beside its rule), with the exact formats and constants of the converter's
records (input types, quantizer formats, quantized kernels and biases, tables), so the
traced logic computes what the hls4ml firmware computes, bit for bit (``check_trace``
compares it with Keras through da4ml's interpreter). Constant matrix products go through
da4ml's CMVM solver: ``latency`` uses its ``dummy`` method (each weight's signed digits
summed column by column, no shared subexpressions: what HLS builds for constant
products), ``distributed_arithmetic`` its default optimizing method.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from ..conversion.family import find_trace
from ..conversion.graph import as_functional, graph_nodes
from ..conversion.inputs import all_input_formats
from ..conversion.precision import check_float_exact, derive
from ..errors import UnsupportedLayerError
from . import constants as C
from .arithmetic import uses_dsp

# Signed digits of each weight summed per output, no common subexpressions (da4ml "dummy").
LATENCY_SOLVER = {"method0": "dummy", "decompose_dc": -1, "search_all_decompose_dc": False}


def solver_options(strategy: str, dsp_min_product_bits: int = C.DSP_MIN_PRODUCT_BITS) -> dict:
    if strategy != "latency":
        return {}

    def offload(kernel, x):
        """The DSP rule of the estimate: these products become multipliers (DSPs in yosys)."""
        from .ops import _weight_widths

        k, i, f = x.kif
        widths = np.maximum(k + i + f, 0)[:, None] * np.ones(kernel.shape, np.int64)
        return uses_dsp(_weight_widths(kernel), widths, kernel, dsp_min_product_bits) & (kernel != 0)

    return {**LATENCY_SOLVER, "offload_fn": offload}


def _apply(layer, record, inputs):
    """The layer's family trace (``family.trace``, beside its rule in ``conversion/rules/``)."""
    layer_trace = find_trace(layer)
    if layer_trace is None:
        raise UnsupportedLayerError(f"layer {layer.name!r} ({type(layer).__name__}) has no RTL tracing")
    return layer_trace(layer, record, inputs)


def trace_model(model, strategy: str = "latency", dsp_min_product_bits: int = C.DSP_MIN_PRODUCT_BITS):
    """(inputs, outputs, comb): the model's arithmetic as da4ml combinational logic.

    ``inputs``/``outputs``: da4ml FixedVariableArrays per model input/output (no batch axis);
    ``comb``: da4ml CombLogic from the flattened inputs to the flattened outputs. The types come
    from one ``conversion.precision.derive`` over the graph (what ``convert`` derives), each
    layer traced from its record by its family's trace (``conversion/family.trace``).

    Raises what ``convert`` raises before writing (UnsupportedLayerError, and
    UnsupportedConfigurationError where Keras would round what the firmware computes exactly),
    and UnsupportedLayerError naming any layer whose firmware arithmetic has no exact trace.
    """
    from da4ml.trace import FixedVariableArray, comb_trace

    model = as_functional(model)
    nodes = graph_nodes(model)
    input_types = all_input_formats(model, nodes)
    records = derive(nodes)
    check_float_exact(records)
    options = solver_options(strategy, dsp_min_product_bits)
    values, inputs = {}, []
    for tensor in model.inputs:
        layer = next(l for l in model.layers if isinstance(l, keras.layers.InputLayer) and l.output is tensor)
        fmt, shape = input_types[layer.name], tuple(int(d) for d in tensor.shape[1:])
        x = FixedVariableArray.from_kif(np.full(shape, fmt.k), np.full(shape, fmt.i), np.full(shape, fmt.f),
                                        solver_options=options)
        values[id(tensor)] = x
        inputs.append(x)
    for node, record in zip(nodes, records):
        values[id(node.outputs[0])] = _apply(node.layer, record, [values[id(t)] for t in node.inputs])
    outputs = [values[id(t)] for t in model.outputs]
    flat_in = np.concatenate([np.ravel(x) for x in inputs])
    flat_out = np.concatenate([np.ravel(y) for y in outputs])
    return inputs, outputs, comb_trace(flat_in, flat_out)


def check_trace(model, comb, n: int = 256, seed: int = 0, inputs: list | None = None) -> int:
    """Mismatching output values between da4ml's interpreter of the traced logic and Keras
    (0 means bit-exact).

    ``inputs`` None: ``n`` random codes (``seed``) of the firmware's input type (every value it can
    hold). Otherwise one float array per model input, batch axis first, e.g.
    ``hgq_chip.api.random_inputs(model, n, seed, scale)`` (scale 4 exercises saturation and
    wrap-around): Keras reads the floats, the traced logic what the firmware reads, the floats
    cast into the input type (the bridge's cast: TRN, and SAT or WRAP as the type says).
    """
    from ..fixed.quantize_np import quantize

    model = as_functional(model)
    nodes = graph_nodes(model)
    formats = list(all_input_formats(model, nodes).values())
    if inputs is None:
        rng = np.random.default_rng(seed)
        samples = []
        for tensor, fmt in zip(model.inputs, formats):
            shape = (n, *(int(d) for d in tensor.shape[1:]))
            codes = rng.integers(-fmt.k * 2 ** (fmt.i + fmt.f), 2 ** (fmt.i + fmt.f), size=shape)
            samples.append((codes * 2.0 ** -fmt.f).astype(np.float32))
        firmware_in = samples
    else:
        samples = list(inputs)
        n = int(np.shape(samples[0])[0])
        firmware_in = [quantize(np.asarray(x, np.float64), fmt.k, fmt.i, fmt.f, fmt.rounding.value, fmt.overflow.value)
                       for x, fmt in zip(samples, formats)]
    keras_out = model.predict(samples if len(samples) > 1 else samples[0], verbose=0, batch_size=n)
    keras_out = keras_out if isinstance(keras_out, list) else [keras_out]
    flat_in = np.concatenate([np.asarray(s, np.float64).reshape(n, -1) for s in firmware_in], axis=1)
    traced = comb.predict(flat_in)
    expected = np.concatenate([np.asarray(y, np.float64).reshape(n, -1) for y in keras_out], axis=1)
    return int(np.count_nonzero(traced != expected)) if traced.shape == expected.shape else int(math.prod(expected.shape))
