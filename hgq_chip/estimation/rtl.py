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
from ..conversion.precision import derive
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

    Each layer is replayed by its family's trace (``conversion/family.trace``) from the
    ``LayerRecord`` of ``precision.derive``. Raises UnsupportedLayerError for a layer without
    one (and what ``derive`` raises)."""
    from da4ml.trace import FixedVariableArray, comb_trace

    model = as_functional(model)
    nodes = graph_nodes(model)
    options = solver_options(strategy, dsp_min_product_bits)
    values, inputs = {}, []
    input_types = all_input_formats(model, nodes)
    for tensor in model.inputs:
        layer = next(l for l in model.layers if isinstance(l, keras.layers.InputLayer) and l.output is tensor)
        fmt, shape = input_types[layer.name], tuple(int(d) for d in tensor.shape[1:])
        x = FixedVariableArray.from_kif(np.full(shape, fmt.k), np.full(shape, fmt.i), np.full(shape, fmt.f),
                                        solver_options=options)
        values[id(tensor)] = x
        inputs.append(x)
    for node, record in zip(nodes, derive(nodes)):
        values[id(node.outputs[0])] = _apply(node.layer, record, [values[id(t)] for t in node.inputs])
    outputs = [values[id(t)] for t in model.outputs]
    flat_in = np.concatenate([np.ravel(x) for x in inputs])
    flat_out = np.concatenate([np.ravel(y) for y in outputs])
    return inputs, outputs, comb_trace(flat_in, flat_out)


def check_trace(model, comb, n: int = 256, seed: int = 0) -> int:
    """Mismatching output values between da4ml's interpreter of the traced logic and Keras,
    on random inputs of the firmware's input type (0 means bit-exact)."""
    model = as_functional(model)
    nodes = graph_nodes(model)
    rng = np.random.default_rng(seed)
    samples = []
    for tensor, fmt in zip(model.inputs, all_input_formats(model, nodes).values()):
        shape = (n, *(int(d) for d in tensor.shape[1:]))
        codes = rng.integers(-fmt.k * 2 ** (fmt.i + fmt.f), 2 ** (fmt.i + fmt.f), size=shape)
        samples.append((codes * 2.0 ** -fmt.f).astype(np.float32))
    keras_out = model.predict(samples if len(samples) > 1 else samples[0], verbose=0, batch_size=n)
    keras_out = keras_out if isinstance(keras_out, list) else [keras_out]
    flat_in = np.concatenate([s.reshape(n, -1) for s in samples], axis=1)
    traced = comb.predict(flat_in.astype(np.float64))
    expected = np.concatenate([np.asarray(y, np.float64).reshape(n, -1) for y in keras_out], axis=1)
    return int(np.count_nonzero(traced != expected)) if traced.shape == expected.shape else int(math.prod(expected.shape))
