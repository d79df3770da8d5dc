"""Training and inference compiled (XLA on TensorFlow, jit on JAX): same quantized numbers, cost still trained.

Runs under every backend CI runs (TensorFlow, and JAX: ``keras_level``). Keras' default
``jit_compile="auto"`` compiles the step on JAX (and on TensorFlow with a GPU) unless a layer
says it cannot (``supports_jit``): ours never do, so there a user gets the fused step without
asking; a user who predicts with such a model must get exactly what the firmware computes.
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

import hgq_chip
from hgq_chip.layers import HConv2D, HDense, HQuantize
from hgq_chip.model_walk import iter_quantizers
from hgq_chip.training import EBOPsMetric, ResetRanges
from mlp_models import GRANULARITIES, OVERFLOWS, ROUNDINGS, MLPSpec, build_model, calibration_data

pytestmark = pytest.mark.keras_level  # also run under JAX in CI (docs/backends.md, "Backends in CI")


def _predict(model, x, jit_compile):
    model.compile(jit_compile=jit_compile)
    return model.predict(x, batch_size=128, verbose=0)


def _assert_same_under_xla(model, x):
    plain = _predict(model, x, False)
    fused = _predict(model, x, True)
    for a, b in zip(plain if isinstance(plain, list) else [plain], fused if isinstance(fused, list) else [fused]):
        assert np.array_equal(a, b), f"{np.sum(a != b)} of {a.size} values differ under XLA"


def test_our_layers_leave_keras_default_compilation_on():
    """No hgq_chip layer opts out of XLA/jit, so ``compile()``'s default picks it wherever Keras
    would for a float model (always on JAX; on TensorFlow only with a GPU, Keras' own rule)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    x = HQuantize()(inputs)
    x = HConv2D(2, 1)(keras.layers.Reshape((2, 3, 1))(x))
    model = keras.Model(inputs, HDense(3)(keras.layers.Flatten()(x)))
    assert all(layer.supports_jit for layer in [*model.layers, *iter_quantizers(model)])
    reference = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    model.compile("adam", "mse")
    reference.compile("adam", "mse")
    assert model.jit_compile == reference.jit_compile
    if keras.backend.backend() == "jax":
        assert model.jit_compile is True
    model.compile("adam", "mse", jit_compile=True)
    assert model.jit_compile is True
    model.compile("adam", "mse", jit_compile=False)  # the way to turn it off
    assert model.jit_compile is False


def test_xla_predictions_equal_plain_ones_for_every_mode():
    specs = [MLPSpec(n_in=5, widths=(7, 3), granularity=g, rounding=r, overflow=o, seed=i)
             for i, (g, r, o) in enumerate(itertools.product(GRANULARITIES, ROUNDINGS, OVERFLOWS))]
    keras.utils.set_random_seed(0)
    model = build_model(specs)
    calibration = calibration_data(specs, 256, 0)
    hgq_chip.calibrate(model, calibration)
    rng = np.random.default_rng(1)
    # Inside the calibrated range and 4x outside it (wrap and saturation both taken).
    x = [np.concatenate([c, 4.0 * rng.uniform(c.min(0), c.max(0), c.shape).astype(np.float32)]) for c in calibration]
    _assert_same_under_xla(model, x)


def test_xla_predictions_equal_plain_ones_for_a_conv_model():
    keras.utils.set_random_seed(2)
    inputs = keras.Input((8, 8, 2))
    x = HQuantize()(inputs)
    x = HConv2D(3, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, HDense(4)(x))
    data = np.random.default_rng(2).normal(0, 1, (256, 8, 8, 2)).astype(np.float32)
    hgq_chip.calibrate(model, data)
    _assert_same_under_xla(model, np.concatenate([data, 3.0 * data]))


def test_xla_training_records_ranges_and_lowers_ebops():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6,))
    x = HQuantize()(inputs)
    x = HDense(16, activation="relu", beta0=1e-3)(x)
    model = keras.Model(inputs, HDense(3, beta0=1e-3)(x))
    rng = np.random.default_rng(3)
    x_train = rng.normal(0, 1, (512, 6)).astype(np.float32)
    y_train = rng.integers(0, 3, 512)
    hgq_chip.calibrate(model, x_train)
    before = hgq_chip.ebops(model)
    model.compile(keras.optimizers.Adam(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=True)
    history = model.fit(x_train, y_train, epochs=4, batch_size=32, verbose=0, callbacks=[ResetRanges(), EBOPsMetric()])
    assert np.all(np.isfinite(history.history["loss"]))
    # Every sample passes once per epoch: the input range recorded in the last epoch is the data's.
    q = model.layers[1].q
    assert np.array_equal(q.range_lo.numpy(), x_train.min(axis=0)) and np.array_equal(q.range_hi.numpy(), x_train.max(axis=0))
    # Without the cost term (beta = 0) EBOPs end above the start here; with it they fall by more than half.
    assert history.history["ebops"][-1] < before / 2
