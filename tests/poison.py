"""Poisoning a model after derivation: a handler or RTL trace that re-derives a weight table, a
table or a type from the layer (instead of reading the ``LayerRecord``) then fails or differs.

:func:`poisoned` overwrites every variable of the model with noise and makes every method that
derives such a value raise, for the duration of the ``with`` block; the variables are restored after.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np

# Methods of layers and quantizers that derive weights, tables, formats or shifts.
DERIVING = ("fixed_format", "quantized", "codes", "units", "fused_kernel", "fused_bias", "fused_depthwise_kernel",
            "kernel_units",
            "quantized_bias", "exp_table", "inverse_table", "adapter_constants", "reciprocal_table", "exponent",
            "scale_exponent", "output_exponent")


def parts(layer, seen=None) -> list:
    """``layer``, its quantizers and every layer or quantizer inside it (attributes, recursively)."""
    seen = set() if seen is None else seen
    if id(layer) in seen:
        return []
    seen.add(id(layer))
    found = [layer]
    children = list(getattr(layer, "quantizers", list)()) if isinstance(layer, keras.layers.Layer) else []
    children += [value for value in vars(layer).values() if isinstance(value, keras.layers.Layer)]
    for child in children:
        found += parts(child, seen)
    return found


def _raise(*args, **kwargs):
    raise AssertionError("re-derived a value the LayerRecord holds")


@contextlib.contextmanager
def poisoned(model, monkeypatch, seed: int = 5):
    """Within the block: ``model``'s variables hold noise and the :data:`DERIVING` methods raise."""
    saved = [variable.numpy() for variable in model.weights]
    rng = np.random.default_rng(seed)
    try:
        for variable, value in zip(model.weights, saved):
            variable.assign(rng.normal(0, 3, value.shape).astype(value.dtype))
        for layer in model.layers:
            for part in parts(layer):
                for name in DERIVING:
                    if callable(getattr(part, name, None)):
                        monkeypatch.setattr(part, name, _raise, raising=False)
        yield
    finally:
        monkeypatch.undo()
        for variable, value in zip(model.weights, saved):
            variable.assign(value)
