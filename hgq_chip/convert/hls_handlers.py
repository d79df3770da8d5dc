"""hls4ml layer handlers for hgq_chip layers: the only place that knows hls4ml's layer dicts.

hls4ml's Keras 3 front end looks handlers up in ``hls4ml.converters.keras_v3.layer_handlers``
by the layer's fully qualified class name; registering there is its public extension point.
A handler returns hls4ml layer dicts (structure and weight data); the types come from the
records in ``precision.py`` through the hls4ml configuration.
"""

from __future__ import annotations

import numpy as np

from ..fixed.format import ArrayFormat
from ..layers import HDense, HQuantize
from .precision import quantizer_name
from .records import is_uniform


def class_key(cls) -> str:
    return f"{cls.__module__}.{cls.__name__}"


def _io(name, inputs, outputs, **extra) -> dict:
    return {"name": name, "input_keras_tensor_names": list(inputs), "output_keras_tensor_names": list(outputs), **extra}


def quantizer_needs_mask(fmt: ArrayFormat) -> bool:
    """Per-element formats (or constant-zero elements) need hls4ml's FixedPointQuantizer."""
    return not is_uniform(fmt) or bool(np.any(fmt.width == 0))


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


def handle_hquantize(layer: HQuantize, in_tensors, out_tensors):
    return (quantizer_config(layer.name, layer.q, in_tensors[0], out_tensors[0].name),)


def handle_hdense(layer: HDense, in_tensors, out_tensors):
    from keras import activations

    in_tensor, out_tensor = in_tensors[0], out_tensors[0]
    q_name = f"{in_tensor.name}_{layer.name}_q"
    configs = [quantizer_config(quantizer_name(layer, layer.iq), layer.iq, in_tensor, q_name)]
    has_relu = layer.activation is activations.relu
    dense_out = f"{out_tensor.name}_pre_relu" if has_relu else out_tensor.name
    kernel = layer.kq.quantized(layer.kernel.numpy())
    bias = layer.bq.quantized(layer.bias.numpy()) if layer.use_bias else np.zeros(kernel.shape[1])
    configs.append(
        _io(layer.name, [q_name], [dense_out], class_name="Dense", module=type(layer).__module__,
            input_shape=[list(in_tensor.shape[1:])], weight_data=kernel, bias_data=bias,
            n_in=int(kernel.shape[0]), n_out=int(kernel.shape[1]), data_format="channels_last", use_bias=True)
    )
    if has_relu:
        configs.append(_io(f"{layer.name}_relu", [dense_out], [out_tensor.name], class_name="Activation",
                           activation="relu"))
    return tuple(configs)


HANDLERS = {
    HQuantize: handle_hquantize,
    HDense: handle_hdense,
}


def register_handlers() -> None:
    """Make hls4ml's Keras 3 converter dispatch our layers to our handlers (idempotent)."""
    from hls4ml.converters.keras_v3 import layer_handlers

    for cls, handler in HANDLERS.items():
        layer_handlers[class_key(cls)] = handler
