"""A digits classifier ending in HSoftmax trains on probabilities (its surrogate gradient), converts
and verifies bit-exact on the test set and on 4x out-of-range inputs (~40 s with the compile)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import hgq_chip
from hgq_chip.data import load_split
from hgq_chip.layers import HDense, HQuantize, HSoftmax
from hgq_chip.training import ResetRanges

EPOCHS = 12


@pytest.mark.slow
def test_digits_with_a_softmax_output_trains_converts_and_is_bit_exact(tmp_path):
    keras.utils.set_random_seed(0)
    split = load_split()
    inputs = keras.Input((64,))
    x = HQuantize(name="q")(inputs)
    x = HDense(24, activation="relu", name="hidden")(x)
    logits = HDense(10, name="logits")(x)
    probabilities = HSoftmax(name="softmax", beta0=1e-6)(logits)
    model = keras.Model(inputs, probabilities)
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    history = model.fit(split.x_train, split.y_train, epochs=EPOCHS, batch_size=32, verbose=0,
                        callbacks=[ResetRanges()])
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0], losses  # the surrogate gradient trains through the tables

    hgq_chip.calibrate(model, split.x_train)
    accuracy = float(np.mean(np.argmax(model.predict(split.x_val, verbose=0), axis=1) == split.y_val))
    assert accuracy > 0.85, accuracy

    model.save(tmp_path / "digits.keras")
    model = hgq_chip.load_model(tmp_path / "digits.keras")
    hgq_chip.convert(model, tmp_path / "prj")
    assert hgq_chip.verify(model, tmp_path / "prj", split.x_val, strict=True).ok
    assert hgq_chip.verify(model, tmp_path / "prj", random=1000, scale=4.0, strict=True).ok
