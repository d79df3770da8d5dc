"""RTL traces (``family.trace``) replay the records, not the layers: derive once.

``estimation/rtl.trace_model`` derives the records, then each family's trace reads weights,
tables and formats from its layer's record. Here the model is poisoned right after derivation
(tests/poison.py: variables overwritten with noise, deriving methods raise); the traced logic must
still match the unpoisoned Keras model bit for bit.
"""

from __future__ import annotations

import contextlib
import importlib.util

import keras
import numpy as np
import pytest
from poison import poisoned

import hgq_chip
from hgq_chip.conversion import family
from hgq_chip.errors import UnsupportedLayerError
from hgq_chip.layers import HActivation, HConv2D, HDense, HQuantize

needs_da4ml = pytest.mark.skipif(importlib.util.find_spec("da4ml") is None,
                                 reason="da4ml is not installed (pip install 'hgq_chip[rtl]')")


def _model():
    keras.utils.set_random_seed(2)
    inputs = keras.Input((5, 5, 2))
    x = HQuantize()(inputs)
    x = HConv2D(2, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = HDense(3)(x)
    x = HActivation("tanh", input_quantizer={"granularity": "per-layer"},
                    output_quantizer={"granularity": "per-layer"})(x)
    model = keras.Model(inputs, x)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        for q in getattr(layer, "quantizers", list)():
            lo, hi = (2, 4) if hasattr(q, "record_range") else (0, 4)
            q.f.assign(rng.integers(lo, hi + 1, size=q.f.shape).astype("float32"))
    hgq_chip.calibrate(model, rng.normal(0, 1, (128, 5, 5, 2)).astype("float32"))
    return model


@needs_da4ml
def test_traces_read_the_records_not_the_layers(monkeypatch):
    from hgq_chip.estimation import rtl

    model = _model()
    derive = rtl.derive
    derived = []

    with contextlib.ExitStack() as stack:
        def derive_then_poison(nodes):
            derived.append(derive(nodes))
            stack.enter_context(poisoned(model, monkeypatch))
            return derived[-1]

        monkeypatch.setattr(rtl, "derive", derive_then_poison)
        _, _, comb = rtl.trace_model(model, "latency")
    assert len(derived) == 1  # the traces ran on a poisoned model, restored now
    assert rtl.check_trace(model, comb, n=128) == 0


def test_a_layer_without_a_trace_is_refused_by_name():
    from hgq_chip.estimation import rtl

    layer = keras.layers.LayerNormalization(name="norm")  # no family: convert refuses it too
    assert family.find_trace(layer) is None
    with pytest.raises(UnsupportedLayerError, match="'norm' \\(LayerNormalization\\) has no RTL tracing"):
        rtl._apply(layer, None, [])
