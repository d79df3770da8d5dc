"""Start AdaQAT from a trained model: float Keras or HGQ Dense/Conv layers become AdaQAT ones.

The weights are copied; every new layer starts at ``bits_w``/``bits_a`` bits. With
calibration data, each input quantizer's α is the smallest power of two covering the
values that layer saw, and it is signed exactly when those values go below zero (without
data: α = ``alpha`` and unsigned, which suits inputs in [0, 1) and ReLU outputs).
Layers named in ``keep`` stay as they are (with their weights), e.g. HGQ layers of a
mixed model.
"""

from __future__ import annotations

import keras
import numpy as np

from ..errors import UnsupportedLayerError
from ..fixed.minimal import ceil_log2
from .adaqat import AConv1D, AConv2D, ADense, AdaQATLayerMixin
from .batchnorm import BatchNormFoldMixin

# Most specific first: HDense is a Dense, so the Keras parents cover the HGQ layers too.
_TARGETS = ((keras.layers.Dense, ADense), (keras.layers.Conv1D, AConv1D), (keras.layers.Conv2D, AConv2D))
_QUANTIZER_KEYS = ("input_quantizer", "kernel_quantizer", "bias_quantizer", "beta0")


def adaqat_class_for(layer):
    if isinstance(layer, AdaQATLayerMixin):
        return None
    for parent, target in _TARGETS:
        if isinstance(layer, parent):
            if isinstance(layer, BatchNormFoldMixin):
                raise UnsupportedLayerError(
                    f"layer {layer.name!r} ({type(layer).__name__}) folds a BatchNorm; AdaQAT layers do not. "
                    f"Keep it as HGQ with keep=({layer.name!r},) or train the float model without the fold"
                )
            return target
    return None


def _input_ranges(model, layers, x) -> dict[str, tuple[float, float]]:
    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    outputs = probe.predict(x, verbose=0, batch_size=1024)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return {layer.name: (float(np.min(o)), float(np.max(o))) for layer, o in zip(layers, outputs)}


def _input_quantizer(bits_a, alpha, value_range) -> dict:
    if value_range is None:
        return {"init_bits": float(bits_a), "init_alpha": float(alpha), "signed": False}
    lo, hi = value_range
    bound = max(abs(lo), abs(hi))
    exponent = int(ceil_log2(bound)) if bound > 0 else 0
    return {"init_bits": float(bits_a), "init_alpha": 2.0**exponent, "signed": bool(lo < 0)}


def adaqat_from_model(model, x_calibration=None, bits_w=8.0, bits_a=8.0, alpha=1.0, keep=()) -> keras.Model:
    """A new functional/Sequential model with AdaQAT layers in place of Dense/Conv1D/Conv2D."""
    keep = set(keep)
    targets = [l for l in model.layers if l.name not in keep and adaqat_class_for(l) is not None]
    if not targets:
        raise UnsupportedLayerError("the model has no Dense, Conv1D or Conv2D layer to turn into an AdaQAT layer")
    ranges = _input_ranges(model, targets, x_calibration) if x_calibration is not None else {}
    target_names = {l.name for l in targets}

    def clone(layer):
        if layer.name not in target_names:
            return layer.__class__.from_config(layer.get_config())
        config = {k: v for k, v in layer.get_config().items() if k not in _QUANTIZER_KEYS}
        config["input_quantizer"] = _input_quantizer(bits_a, alpha, ranges.get(layer.name))
        config["kernel_quantizer"] = {"init_bits": float(bits_w)}
        return adaqat_class_for(layer).from_config(config)

    new = keras.models.clone_model(model, clone_function=clone)
    for old in model.layers:
        if not old.weights:
            continue
        layer = new.get_layer(old.name)
        if old.name in target_names:
            layer.kernel.assign(old.kernel)
            if old.use_bias:
                layer.bias.assign(old.bias)
        else:
            layer.set_weights(old.get_weights())
    return new
