"""RTL traces of layers computing sum(x * w) + b: HDense (HDenseBatchNorm, ADense), HConv1D/2D
(their BatchNorm forms, AConv1D/2D), HDepthwiseConv1D/2D and HEinsumDense
(``conversion/rules/dense.py``, ``conv.py``, ``einsum_dense.py``).

The input is cast by the layer's input quantizer stage (rounding and overflow included), the
products of the record's quantized kernel are summed with its bias by da4ml's constant
matrix-vector solver (what HLS builds for constant products), the sum is assigned to
``accum_t`` = ``result_t`` (the rule's type, wide enough to be exact: the cast changes no
value) and an optional fused relu follows in its own stage. A convolution is one product per
output position over the window's real input positions (Keras' 'same' zero padding adds
nothing; the smaller half of the padding first); a depthwise one is one small product per
channel (``depth_multiplier`` outputs each, output channel ``c * multiplier + m``), the same
sums as hls4ml's DepthwiseConv or its block-diagonal Conv. HEinsumDense is a Dense on the
flattened ``(lead, contract)`` view, as the firmware computes it.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from ..conversion.precision import quantizer_name
from ..errors import UnsupportedLayerError
from ..layers import HConv1D, HConv2D, HDense, HDepthwiseConv1D, HDepthwiseConv2D
from ..layers.einsum_dense import HEinsumDense
from .rtl_trace_cast import cast
from .rtl_trace_registry import stage_types, traces

_DEPTHWISE = (HDepthwiseConv1D, HDepthwiseConv2D)


def quantized_input(layer, record, x):
    """``x`` through the layer's input quantizer stage."""
    return cast(x, record.quantizer_formats[quantizer_name(layer, layer.iq)])


def finish(layer, record, y, hls_name=None):
    """``y`` (products + bias) assigned to the accumulator type, then the fused relu stage."""
    hls_name = hls_name or layer.name
    types = stage_types(record)
    y = cast(y, types[hls_name]["result"])
    if layer.activation is keras.activations.relu:
        from da4ml.trace.ops import relu

        y = cast(relu(y), types[f"{hls_name}_relu"]["result"])
    return y


def affine(x2d, kernel, bias):
    """Rows of ``x2d`` (``(L, C)``) times ``kernel`` (``(C, O)``) plus ``bias`` (``(O,)`` or None)."""
    y = x2d @ kernel
    return y + bias if bias is not None else y


def _bias(record):
    table = record.weights.get("bias")
    return None if table is None else np.asarray(table.values, np.float64)


@traces(HDense)
def trace_dense(layer, record, inputs):
    x = quantized_input(layer, record, inputs[0])
    kernel = np.asarray(record.weights["kernel"].values, np.float64)
    lead = tuple(x.shape[:-1])
    y = affine(x.reshape(-1, x.shape[-1]), kernel, _bias(record))
    return finish(layer, record, y.reshape(*lead, kernel.shape[-1]))


def _windows(layer, in_spatial, out_spatial, sizes):
    if layer.data_format != "channels_last" or any(d != 1 for d in layer.dilation_rate):
        raise UnsupportedLayerError(f"layer {layer.name!r}: RTL tracing supports channels_last, undilated "
                                    "convolutions (as convert does); use dilation_rate=1")
    pads = []
    for n, k, s, o in zip(in_spatial, sizes, layer.strides, out_spatial):
        total = max((o - 1) * s + k - n, 0) if layer.padding == "same" else 0
        pads.append(total // 2)
    for position in np.ndindex(*out_spatial):
        taps = []
        for tap in np.ndindex(*sizes):
            source = tuple(p * s + t - pad for p, s, t, pad in zip(position, layer.strides, tap, pads))
            if all(0 <= c < n for c, n in zip(source, in_spatial)):
                taps.append((tap, source))
        yield position, taps


def _stack(cells: dict, out_spatial):
    return np.stack([cells[p] for p in np.ndindex(*out_spatial)]).reshape(*out_spatial, -1)


@traces(HConv1D, HConv2D)
def trace_conv(layer, record, inputs):
    x = quantized_input(layer, record, inputs[0])
    kernel = np.asarray(record.weights["kernel"].values, np.float64)
    bias = _bias(record)
    out_spatial = tuple(int(d) for d in layer.output.shape[1:-1])
    cells = {}
    for position, taps in _windows(layer, x.shape[:-1], out_spatial, kernel.shape[:-2]):
        if not taps:
            raise UnsupportedLayerError(f"layer {layer.name!r}: an output position sees only padding")
        rows = np.concatenate([x[source] for _, source in taps])
        weights = np.concatenate([kernel[tap] for tap, _ in taps])
        cells[position] = affine(rows[None], weights, bias)[0]
    return finish(layer, record, _stack(cells, out_spatial))


@traces(*_DEPTHWISE)
def trace_depthwise(layer, record, inputs):
    x = quantized_input(layer, record, inputs[0])
    kernel = np.asarray(record.weights["kernel"].values, np.float64)  # (*taps, channels, multiplier)
    channels = kernel.shape[-2]
    bias = _bias(record)
    out_spatial = tuple(int(d) for d in layer.output.shape[1:-1])
    cells = {}
    for position, taps in _windows(layer, x.shape[:-1], out_spatial, kernel.shape[:-2]):
        outputs = []
        for c in range(channels):
            rows = np.concatenate([x[(*source, slice(c, c + 1))] for _, source in taps])  # (taps,)
            weights = np.stack([kernel[tap][c] for tap, _ in taps])  # (taps, multiplier)
            outputs.append(affine(rows[None], weights, None)[0])
        y = np.concatenate(outputs)
        cells[position] = y + bias if bias is not None else y
    return finish(layer, record, _stack(cells, out_spatial))


@traces(HEinsumDense)
def trace_einsum_dense(layer, record, inputs):
    x = quantized_input(layer, record, inputs[0])
    lead, contract = math.prod(layer.lead_shape), math.prod(layer.contract_shape)
    kernel = np.asarray(record.weights["kernel"].values, np.float64)  # flattened (C, O)
    y = affine(x.reshape(lead, contract), kernel, _bias(record))
    return finish(layer, record, y).reshape(*layer.lead_shape, *layer.free_shape)
