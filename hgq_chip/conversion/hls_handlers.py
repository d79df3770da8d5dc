"""hls4ml layer handlers for hgq_chip layers: the only place that knows hls4ml's layer dicts.

hls4ml's Keras 3 front end looks handlers up in ``hls4ml.converters.keras_v3.layer_handlers``
by the layer's fully qualified class name; registering there is its public extension point.
A handler returns hls4ml layer dicts (structure and weight data); the types come from the
records in ``precision.py`` through the hls4ml configuration.
"""

from __future__ import annotations

import numpy as np

from ..fixed.interval import Interval
from ..layers import (
    HActivation,
    HAdd,
    HConv1D,
    HConv1DBatchNorm,
    HConv2D,
    HConv2DBatchNorm,
    HDense,
    HDenseBatchNorm,
    HQuantize,
)
from .precision import quantizer_name
from .records import format_of, quantizer_needs_mask


_HANDLERS: dict = {}


def handler(*classes):
    """Register an hls4ml handler for hgq_chip layer classes (subclasses need their own entry:
    hls4ml looks handlers up by exact class name)."""

    def register(fn):
        for cls in classes:
            _HANDLERS[cls] = fn
        return fn

    return register


def class_key(cls) -> str:
    return f"{cls.__module__}.{cls.__name__}"


def _io(name, inputs, outputs, **extra) -> dict:
    return {"name": name, "input_keras_tensor_names": list(inputs), "output_keras_tensor_names": list(outputs), **extra}


def quantizer_config(name: str, quantizer, in_tensor, out_name: str) -> dict:
    shape = tuple(in_tensor.shape[1:])
    fmt = quantizer.fixed_format()
    if not quantizer_needs_mask(fmt):
        # A linear activation with an explicit result type is a plain ap_fixed cast.
        return _io(name, [in_tensor.name], [out_name], class_name="Activation", activation="linear",
                   input_shape=[list(shape)])
    width = np.broadcast_to(fmt.width, shape)
    k = np.broadcast_to(fmt.k, shape)
    integer = np.where(width > 0, np.broadcast_to(fmt.k + fmt.i, shape), 0)
    mask = tuple(a.astype(np.int16)[None] for a in (k, width, integer))
    return _io(name, [in_tensor.name], [out_name], class_name="FixedPointQuantizer", mask_kbi=mask,
               SAT=fmt.overflow.value, RND=fmt.rounding.value, fusible=None, overrides={},
               input_shape=[list(shape)])


@handler(HQuantize)
def handle_hquantize(layer: HQuantize, in_tensors, out_tensors):
    return (quantizer_config(layer.name, layer.q, in_tensors[0], out_tensors[0].name),)


def _quantized_input(layer, in_tensor) -> tuple[dict, str]:
    """The hls4ml quantizer for a layer's input quantizer, and the tensor name it produces."""
    q_name = f"{in_tensor.name}_{layer.name}_q"
    return quantizer_config(quantizer_name(layer, layer.iq), layer.iq, in_tensor, q_name), q_name


def _redirect_input(config: dict, old: str, new: str) -> dict:
    config["input_keras_tensor_names"] = [new if t == old else t for t in config["input_keras_tensor_names"]]
    return config


@handler(HDense, HDenseBatchNorm, HConv1D, HConv2D, HConv1DBatchNorm, HConv2DBatchNorm)
def handle_weighted(layer, in_tensors, out_tensors):
    """HDense/HConv (and BatchNorm-fused forms): hls4ml's own handler for the Keras parent
    builds the layer dicts; we quantize its input and swap in the quantized weights."""
    from hls4ml.converters.keras_v3 import layer_handlers

    in_tensor = in_tensors[0]
    q_config, q_name = _quantized_input(layer, in_tensor)
    parent = next(cls for cls in type(layer).__mro__ if class_key(cls) in layer_handlers and cls.__module__.startswith("keras."))
    configs = list(layer_handlers[class_key(parent)](layer, in_tensors, out_tensors))
    main = _redirect_input(configs[0], in_tensor.name, q_name)
    kernel = layer.kq.quantized(layer.fused_kernel())
    main["weight_data"] = kernel
    bias = layer.fused_bias()  # also without use_bias when a batch normalization is folded in
    main["bias_data"] = layer.bq.quantized(bias) if bias is not None else np.zeros(kernel.shape[-1])
    main["use_bias"] = True
    main["class_name"] = parent.__name__
    return (q_config, *configs)


@handler(HActivation)
def handle_hactivation(layer, in_tensors, out_tensors):
    from hls4ml.model.types import FixedPrecisionType

    from .rules.activation import table_in_index_order

    in_tensor, out_tensor = in_tensors[0], out_tensors[0]
    q_config, q_name = _quantized_input(layer, in_tensor)
    name = layer.activation.__name__
    if not layer.uses_table:
        if name == "linear":
            q_config["output_keras_tensor_names"] = [out_tensor.name]
            return (q_config,)
        return (q_config, _io(f"{layer.name}_relu", [q_name], [out_tensor.name], class_name="Activation",
                              activation="relu"))
    table = table_in_index_order(layer)
    fmt = format_of(Interval.of_constants(table).covering())
    table_t = FixedPrecisionType(fmt.width, fmt.k + fmt.i, bool(fmt.k))
    lut = _io(f"{layer.name}_table", [q_name], [out_tensor.name], class_name="UnaryLUT", activation="unary_lut",
              table_data=table, table_t=table_t, input_shape=[list(in_tensor.shape[1:])])
    return (q_config, lut)


@handler(HAdd)
def handle_hadd(layer, in_tensors, out_tensors):
    import keras
    from hls4ml.converters.keras_v3 import layer_handlers

    configs = layer_handlers[class_key(keras.layers.Add)](layer, in_tensors, out_tensors)
    for config in configs:
        config["op"] = "add"  # hls4ml derives the op from the class name, which is ours
    return configs


def register_handlers() -> None:
    """Make hls4ml's Keras 3 converter dispatch our layers to our handlers (idempotent)."""
    from hls4ml.converters.keras_v3 import layer_handlers

    from . import rules  # noqa: F401  (rule modules may register handlers for their layers)

    for cls, fn in _HANDLERS.items():
        layer_handlers[class_key(cls)] = fn
