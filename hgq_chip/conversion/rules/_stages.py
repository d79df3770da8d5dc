"""Helpers the families share: stage names, quantizer stages, weighted records, hls4ml layer dicts.

A leaf of ``conversion/``: families (``rules/*``) import it and ``family``/``records``, never a
driver (``precision``, ``hls_handlers``, ``stream``, ``project``), so the drivers can import
``rules`` at module top without an import cycle. The io_stream plan of the conversion running
now (``stream.prepare_stream``, installed by ``hls_handlers.converting``) is read here with
:func:`planned`.
"""

from __future__ import annotations

import contextvars

import keras
import numpy as np

from ...errors import UnsupportedLayerError
from ...fixed.interval import Interval
from ...fixed.minimal import minimal_format
from ...layers import HQuantize
from ...quantizers.hgq import ActivationQuantizer
from ..ops import cmvm_op, kif, relu_op
from ..records import (
    FloatValues,
    HLSLayerTypes,
    LayerRecord,
    WeightTable,
    format_of,
    quantizer_needs_mask,
    sum_bits,
)

# io_stream plan from stream.prepare_stream: {"repacks": {layer: flat size}, "zero_padded": {layer: pads}, ...}.
STREAM_PLAN = contextvars.ContextVar("hgq_chip_stream_plan", default={})
# Records of the conversion running now, by layer name (hls_handlers.converting).
RECORDS = contextvars.ContextVar("hgq_chip_records", default={})
# hls4ml's handlers that ours replace, by class key (kept to delegate to them; hls_handlers fills it).
REPLACED_HLS4ML_HANDLERS: dict = {}


# ---- stage names -------------------------------------------------------------------------------


def quantizer_name(layer, quantizer) -> str:
    """The hls4ml layer name of a quantizer that sits inside ``layer``."""
    return layer.name if isinstance(layer, HQuantize) else f"{layer.name}_{quantizer.name}"


def repack_name(layer) -> str:
    """The hls4ml layer that repacks ``layer``'s flattened input stream."""
    return f"{layer.name}_repack"


def concat_repack_name(layer, index: int) -> str:
    """The hls4ml layer that repacks input ``index`` of a Concatenate when it is a flattened stream."""
    return f"{layer.name}_repack{index}"


def reshape_repack_name(layer) -> str:
    """The Repack node hls4ml puts in place of a Flatten/Reshape that is no stream view."""
    return f"repack_{layer.name}"


def signed_cast_name(layer) -> str:
    """The cast into a signed type ahead of a max pool that pads (io_parallel)."""
    return f"{layer.name}_signed"


# ---- rule helpers ------------------------------------------------------------------------------


def quantizer_stage(name: str, quantizer: ActivationQuantizer, tensor_shape) -> tuple[HLSLayerTypes, Interval]:
    """The hls4ml stage ``name`` casting into ``quantizer``'s formats over ``tensor_shape`` (no
    batch axis), and the interval of its output."""
    fmt = quantizer.fixed_format()
    out = Interval.of_format(fmt).broadcast_to(tuple(tensor_shape))
    # A uniform quantizer becomes a plain cast to this type, so it must carry the quantizer's modes.
    # Per-element casts (a mask) round and overflow per element; the type then only holds their
    # results and must not act again: SAT_SYM would turn a 1-bit element's -1 (the type's minimum) into -max.
    modes = () if quantizer_needs_mask(fmt) else (fmt.rounding, fmt.overflow)
    return HLSLayerTypes(name, {"result": format_of(out, *modes)}), out


def require_input(layer, intervals):
    """UnsupportedLayerError unless every input has an interval (a raw model input has none)."""
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


def weighted_ops(record, in_fmt, in_shape, kernel=None, latency_template: bool = False) -> list:
    """The estimate's operations of a weighted layer after its input cast into ``in_fmt`` (over
    ``in_shape``, no batch axis): the constant products of ``kernel`` (default: the record's) at
    every output position, plus the bias, then the fused relu where the record has one.
    ``latency_template``: hls4ml builds the layer with the latency template even under
    distributed_arithmetic (its DepthwiseConv)."""
    kernel = np.asarray(record.weights["kernel"].values if kernel is None else kernel, np.float64)
    bias = record.weights["bias"].values if "bias" in record.weights else None
    op = cmvm_op(kernel, bias, kif(in_fmt, tuple(in_shape)), int(record.output.lo.size // kernel.shape[-1]),
                 latency_only=latency_template)
    relu = any(stage.name == f"{record.layer_name}_relu" for stage in record.hls_layers)
    return [op, relu_op(record.output)] if relu else [op]


# ---- handler helpers ---------------------------------------------------------------------------


def planned(kind: str, layer_name: str):
    """What the io_stream plan holds for ``layer_name`` under ``kind`` (None: nothing)."""
    return STREAM_PLAN.get().get(kind, {}).get(layer_name)


def record_of_layer(layer) -> LayerRecord:
    """The record ``precision.derive`` made for ``layer`` in the conversion running now (a handler
    renders it; UnsupportedLayerError outside ``hls_handlers.converting(records=...)``)."""
    record = RECORDS.get().get(layer.name)
    if record is None:
        raise UnsupportedLayerError(
            f"layer {layer.name!r} ({type(layer).__name__}) has no derived types in this conversion: hgq_chip layers "
            "convert exactly only through hgq_chip.convert (or `hgq_chip convert`), which derives them first; do not "
            "pass the model to hls4ml directly")
    return record


def class_key(cls) -> str:
    return f"{cls.__module__}.{cls.__name__}"


def hls4ml_handler(cls):
    """hls4ml's own handler for the Keras class ``cls`` (also where ours wraps it)."""
    from hls4ml.converters.keras_v3 import layer_handlers

    key = class_key(cls)
    return REPLACED_HLS4ML_HANDLERS[key] if key in REPLACED_HLS4ML_HANDLERS else layer_handlers[key]


def layer_dict(name, inputs, outputs, **extra) -> dict:
    """An hls4ml layer dict with hls4ml's mandatory tensor-name keys (plus ``extra``)."""
    return {"name": name, "input_keras_tensor_names": list(inputs), "output_keras_tensor_names": list(outputs), **extra}


def recorded_format(owner, quantizer):
    """The formats of ``quantizer`` (inside layer ``owner``) as ``owner``'s record holds them."""
    return record_of_layer(owner).quantizer_formats[quantizer_name(owner, quantizer)]


def quantizer_config(name: str, fmt, in_tensor, out_name: str) -> dict:
    """The hls4ml layer casting ``in_tensor`` into ``fmt`` (a quantizer's ArrayFormat, from the
    record): a linear Activation (one format) or hls4ml's FixedPointQuantizer (a per-element mask)."""
    shape = tuple(in_tensor.shape[1:])
    if not quantizer_needs_mask(fmt):
        # A linear activation with an explicit result type is a plain ap_fixed cast.
        return layer_dict(name, [in_tensor.name], [out_name], class_name="Activation", activation="linear",
                          input_shape=[list(shape)])
    width = np.broadcast_to(fmt.width, shape)
    k = np.broadcast_to(fmt.k, shape)
    integer = np.where(width > 0, np.broadcast_to(fmt.k + fmt.i, shape), 0)
    mask = tuple(a.astype(np.int16)[None] for a in (k, width, integer))
    return layer_dict(name, [in_tensor.name], [out_name], class_name="FixedPointQuantizer", mask_kbi=mask,
                      SAT=fmt.overflow.value, RND=fmt.rounding.value, fusible=None, overrides={},
                      input_shape=[list(shape)])


class RenamedTensor:
    """A Keras tensor's shape under the name of the hls4ml tensor that replaces it."""

    def __init__(self, name, shape):
        self.name, self.shape = name, shape


def repacked(layer, in_tensor) -> tuple[list[dict], object]:
    """In io_stream, a layer reading a flattened stream reads it through hls4ml's Repack layer
    (see stream.py); returns the configs to put first and the tensor the layer then reads."""
    size = planned("repacks", layer.name)
    if size is None:
        return [], in_tensor
    name = f"{in_tensor.name}_{repack_name(layer)}"
    config = layer_dict(repack_name(layer), [in_tensor.name], [name], class_name="Repack", target_shape=[size])
    return [config], RenamedTensor(name, in_tensor.shape)


def quantized_input(layer, in_tensor) -> tuple[list[dict], str]:
    """The hls4ml layers for a layer's input quantizer (behind a Repack where needed), and the
    tensor name the quantizer produces."""
    first, source = repacked(layer, in_tensor)
    q_name = f"{in_tensor.name}_{layer.name}_q"
    return [*first, quantizer_config(quantizer_name(layer, layer.iq), recorded_format(layer, layer.iq), source,
                                     q_name)], q_name


def redirect_input(config: dict, old: str, new: str) -> dict:
    """``config`` reading tensor ``new`` where it read ``old``."""
    config["input_keras_tensor_names"] = [new if t == old else t for t in config["input_keras_tensor_names"]]
    return config
