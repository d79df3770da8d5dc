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
from ..layers import HDense, HQuantize
from ..quantizers.hgq import ActivationQuantizer
from .records import HLSLayerTypes, LayerRecord, WeightTable, float32_exact_sum, format_of

Rule = Callable[[keras.layers.Layer, list], LayerRecord]
_RULES: dict[type, Rule] = {}


def rule(*classes):
    def register(fn: Rule) -> Rule:
        for cls in classes:
            _RULES[cls] = fn
        return fn

    return register


def find_rule(layer) -> Rule | None:
    for cls in type(layer).__mro__:
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
    return HLSLayerTypes(name, {"result": format_of(out)}), out


def _require_input(layer, intervals):
    if any(iv is None for iv in intervals):
        raise UnsupportedLayerError(
            f"layer {layer.name!r} ({type(layer).__name__}) reads the raw model input; "
            "put an HQuantize layer (or a quantized layer) first so the input has a fixed-point format"
        )


def weight_table(quantizer, values) -> WeightTable:
    return WeightTable(quantizer.quantized(values), quantizer.fixed_format(values))


@rule(HQuantize)
def _hquantize(layer, intervals):
    stage, out = quantizer_stage(layer.name, layer.q, layer.output.shape[1:])
    return LayerRecord(layer.name, type(layer).__name__, out, [stage])


@rule(HDense)
def _hdense(layer, intervals):
    in_shape = tuple(layer.input.shape[1:])
    stage, x = quantizer_stage(quantizer_name(layer, layer.iq), layer.iq, in_shape)
    kernel = weight_table(layer.kq, layer.kernel.numpy())
    products = Interval(x.lo[..., None], x.hi[..., None], x.f[..., None]) * Interval.of_constants(kernel.values)
    accum = products.sum(axis=-2)
    record = LayerRecord(layer.name, type(layer).__name__, accum, [stage], {"kernel": kernel})
    types = {"weight": minimal_format(kernel.values)}
    magnitudes = np.maximum(np.abs(products.lo), np.abs(products.hi)).sum(axis=-2)
    if layer.use_bias:
        bias = weight_table(layer.bq, layer.bias.numpy())
        record.weights["bias"] = bias
        accum = accum + Interval.of_constants(bias.values)
        magnitudes = magnitudes + np.abs(bias.values)
        types["bias"] = minimal_format(bias.values)
    record.accum = format_of(accum)
    types.update(accum=record.accum, result=record.accum)
    for key in ("weight", "bias"):
        if key in types and types[key].width == 0:
            types[key] = format_of(Interval(0.0, 0.0, 0))
    record.hls_layers.append(HLSLayerTypes(layer.name, types))
    record.float32_exact = float32_exact_sum(magnitudes, record.accum.f)
    record.ebops = layer.ebops_exact()
    record.output = accum
    if layer.activation is keras.activations.relu:
        record.output = accum.relu()
        record.hls_layers.append(HLSLayerTypes(f"{layer.name}_relu", {"result": format_of(record.output)}))
    return record


@rule(keras.layers.Flatten, keras.layers.Reshape)
def _reshape(layer, intervals):
    _require_input(layer, intervals)
    shape = tuple(layer.output.shape[1:])
    out = intervals[0].reshape(shape)
    return LayerRecord(layer.name, type(layer).__name__, out, [HLSLayerTypes(layer.name, {"result": format_of(out)})])


@rule(keras.layers.Dropout)
def _dropout(layer, intervals):
    _require_input(layer, intervals)
    out = intervals[0]
    return LayerRecord(layer.name, type(layer).__name__, out, [HLSLayerTypes(layer.name, {"result": format_of(out)})])


@rule(keras.layers.MaxPooling1D, keras.layers.MaxPooling2D)
def _max_pooling(layer, intervals):
    """Max pooling is monotone: pooling the bounds bounds the pooled values."""
    _require_input(layer, intervals)
    iv = intervals[0]
    pooled = [np.asarray(layer(a[None].astype(np.float32)))[0].astype(np.float64) for a in (iv.lo, iv.hi, iv.f)]
    out = Interval(pooled[0], pooled[1], pooled[2].astype(np.int64))
    return LayerRecord(layer.name, type(layer).__name__, out, [HLSLayerTypes(layer.name, {"result": format_of(out)})])


@rule(keras.layers.Add)
def _add(layer, intervals):
    _require_input(layer, intervals)
    out = intervals[0]
    for iv in intervals[1:]:
        out = out + iv
    types = {"result": format_of(out)}
    return LayerRecord(layer.name, type(layer).__name__, out, [HLSLayerTypes(layer.name, types)])


def derive(nodes) -> list[LayerRecord]:
    """One record per node, in topological order."""
    intervals: dict[int, Interval | None] = {}
    records = []
    for node in nodes:
        layer_rule = find_rule(node.layer)
        if layer_rule is None:
            raise UnsupportedLayerError(
                f"layer {node.layer.name!r} of type {type(node.layer).__name__} has no exact fixed-point "
                f"conversion; supported layers: {', '.join(supported_layer_names())}"
            )
        record = layer_rule(node.layer, [intervals.get(id(t)) for t in node.inputs])
        intervals[id(node.outputs[0])] = record.output
        records.append(record)
    return records
