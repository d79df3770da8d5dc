"""Precision rules and hls4ml handlers for Keras layers that are exact at inference by nature:
the identity (``Identity``, noise, dropout, regularization and augmentation layers) and the
plain relu (``ReLU()``, ``Activation('relu')``, ``Activation('linear')``).

At inference (``training=False``, the only call ``convert``/``verify`` make) Keras returns the
input of every layer in :data:`IDENTITY_AT_INFERENCE` unchanged (``GaussianNoise``,
``GaussianDropout``, ``AlphaDropout`` and the ``Random*``/mixing augmentations add noise or
transform only when training; ``ActivityRegularization`` only adds a loss). So the output is
the input, exactly, in the input's type: the firmware is a linear hls4ml ``Activation`` (what
hls4ml 1.3's own ``NoOp`` handler writes for dropouts and augmentations, here also for the
classes it has no Keras 3 handler for), which hls4ml removes or compiles to a copy.

A relu of a fixed-point value is the value or 0: exact in the unsigned type of the input's
non-negative part (``Interval.relu``), as in HDense's fused relu. hls4ml's own ``ReLU`` handler
turns ``ReLU()`` into a ``ThresholdedReLU``; ours writes the plain ``Activation('relu')``
HDense uses. ``ReLU`` with ``max_value``, ``negative_slope`` or ``threshold`` is refused by
its limits below; ``Activation`` with any other function is refused here with the hgq_chip
layer that computes it exactly (an ``HActivation`` table, or ``HSoftmax``).
"""

from __future__ import annotations

from math import prod

import keras

from ...errors import UnsupportedLayerError
from ..family import keras_handler, limits, rule, trace
from ..ops import relu_op
from ..option import Option, attr
from ..records import HLSLayerTypes, LayerRecord, format_of
from . import _trace
from ._stages import layer_dict, require_input
from .structure import record_of

_AUGMENTATIONS = tuple(
    getattr(keras.layers, name) for name in sorted(dir(keras.layers))
    if name.startswith("Random") and name != "RandomCrop" or name in ("AugMix", "CutMix", "MixUp", "RandAugment")
)
# RandomCrop is left out: at inference it center-crops (or resizes) to its target size, not the identity.
IDENTITY_AT_INFERENCE = (
    keras.layers.Identity, keras.layers.GaussianNoise, keras.layers.GaussianDropout, keras.layers.AlphaDropout,
    keras.layers.ActivityRegularization, *_AUGMENTATIONS,
)
RELU_LIKE = (keras.layers.ReLU, keras.layers.Activation)


def relu_stage_name(layer) -> str:
    """The hls4ml layer computing ``layer``'s relu (the ``_relu`` suffix the estimate prices)."""
    return f"{layer.name}_relu"


@rule(*IDENTITY_AT_INFERENCE)
def identity_rule(layer, intervals):
    require_input(layer, intervals)
    return record_of(layer, intervals[0])


@keras_handler(*IDENTITY_AT_INFERENCE)
def handle_identity(layer, in_tensors, out_tensors, hls4ml_handler):
    return (layer_dict(layer.name, [in_tensors[0].name], [out_tensors[0].name], class_name="Activation",
                activation="linear", n_in=prod(in_tensors[0].shape[1:])),)


def activation_function_name(layer) -> str:
    """``relu`` for a ``ReLU`` layer; the function name of an ``Activation`` layer."""
    if isinstance(layer, keras.layers.ReLU):
        return "relu"
    return getattr(layer.activation, "__name__", str(layer.activation))


def _refuse_activation(layer, name: str):
    if name in ("softmax", "log_softmax"):
        remedy = ("replace it with hgq_chip.layers.HSoftmax (its exp and inverse tables are trained with the model "
                  "and converted exactly), or end the model before the softmax")
    else:
        remedy = (f"replace it with hgq_chip.layers.HActivation({name!r}) (an exact table between an input and an "
                  "output quantizer, trained with the model)")
    raise UnsupportedLayerError(
        f"layer {layer.name!r} (Activation) computes {name!r}, which is not exact in fixed point; {remedy}"
    )


@rule(*RELU_LIKE)
def relu_rule(layer, intervals):
    require_input(layer, intervals)
    name = activation_function_name(layer)
    if name == "linear":
        return record_of(layer, intervals[0])
    if name != "relu":
        _refuse_activation(layer, name)
    out = intervals[0].relu()
    record = LayerRecord(layer.name, type(layer).__name__, out,
                         [HLSLayerTypes(relu_stage_name(layer), {"result": format_of(out)})])
    record.estimate_ops = [relu_op(out)]
    return record


@keras_handler(*RELU_LIKE)
def handle_relu(layer, in_tensors, out_tensors, hls4ml_handler):
    linear = activation_function_name(layer) == "linear"
    return (layer_dict(layer.name if linear else relu_stage_name(layer), [in_tensors[0].name], [out_tensors[0].name],
                class_name="Activation", activation="linear" if linear else "relu",
                n_in=prod(in_tensors[0].shape[1:])),)


@trace(*IDENTITY_AT_INFERENCE)
def trace_identity(layer, record, inputs):
    """The input, unchanged (the firmware's linear Activation copies it in its own type)."""
    return inputs[0]


@trace(*RELU_LIKE)
def trace_relu(layer, record, inputs):
    """``linear``: the input; ``relu``: max(x, 0) in the relu stage's result type."""
    if activation_function_name(layer) == "linear":
        return inputs[0]
    return _trace.cast(_trace.relu(inputs[0]), _trace.stage_types(record)[relu_stage_name(layer)]["result"])


limits(keras.layers.ReLU, options=[
    Option("max_value", attr("max_value"), lambda v: v is None,
           "leave max_value=None, or use hgq_chip.layers.HActivation('relu6') for a relu capped at 6 (an exact "
           "table)"),
    Option("negative_slope", lambda layer, node: float(layer.negative_slope), lambda v: v == 0,
           "use hgq_chip.layers.HActivation('leaky_relu') (an exact table; Keras' function has slope 0.2), "
           "or negative_slope=0"),
    Option("threshold", lambda layer, node: float(layer.threshold), lambda v: v == 0,
           "use threshold=0 (a relu), or an hgq_chip.layers.HActivation table of the thresholded function"),
])
