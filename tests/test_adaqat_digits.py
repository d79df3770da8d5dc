"""Acceptance (issue 5) on sklearn digits: AdaQAT MLPs start at 8 bits everywhere; under
λ > 0 the learned bit-widths fall, validation accuracy stays within 2 points of the same
MLP kept at 8 bits, and a larger λ ends with fewer BitOPs. Also fine-tuning from a float
model. Offline; about 40 s on one CPU core."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import pytest

from hgq_chip.data import load_split
from hgq_chip.layers.adaqat import ADense
from hgq_chip.model_walk import adaqat_layers
from hgq_chip.layers.adaqat_clone import adaqat_from_model
from hgq_chip.training.adaqat import AdaQATController, total_bitops

HIDDEN = 32
EPOCHS = 30
BATCH = 32
LAMBDAS = (2e-6, 1e-5)


@dataclass
class Run:
    accuracy: float
    bitops: int
    bits: list  # per layer (⌈N_w⌉, ⌈N_a⌉)


def _compile(model, steps):
    lr = keras.optimizers.schedules.CosineDecay(0.02, EPOCHS * steps, alpha=0.05)
    model.compile(keras.optimizers.Adam(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def _adaqat_mlp(data):
    inp = keras.Input((data.n_features,))
    x = ADense(HIDDEN, activation="relu", input_quantizer={"init_alpha": 1.0})(inp)
    x = ADense(HIDDEN, activation="relu", input_quantizer={"init_alpha": 4.0})(x)
    return keras.Model(inp, ADense(data.n_classes, input_quantizer={"init_alpha": 4.0})(x))


def _fit(model, data, lam):
    steps = int(np.ceil(len(data.x_train) / BATCH))
    _compile(model, steps)
    callbacks = [] if lam is None else [AdaQATController((data.x_train, data.y_train), lam=lam, lr=1.0, every=5)]
    model.fit(data.x_train, data.y_train, epochs=EPOCHS, batch_size=BATCH, verbose=0, callbacks=callbacks)
    accuracy = model.evaluate(data.x_val, data.y_val, verbose=0)[1]
    bits = [(layer.kq.ceil_bits(), layer.iq.ceil_bits()) for layer in adaqat_layers(model)]
    return Run(accuracy, total_bitops(model), bits)


@pytest.mark.slow
def test_learned_bit_widths_fall_with_lambda_within_2_points_of_8_bits():
    data = load_split()
    runs = {}
    for lam in (None,) + LAMBDAS:
        keras.utils.set_random_seed(0)
        runs[lam] = _fit(_adaqat_mlp(data), data, lam)
        print(f"lambda={lam}: accuracy {runs[lam].accuracy:.4f}, BitOPs {runs[lam].bitops}, bits (w, a) {runs[lam].bits}")
    eight = runs[None]
    assert eight.bits == [(8, 8)] * 3
    for lam in LAMBDAS:
        run = runs[lam]
        assert all(w <= 8 and a <= 8 for w, a in run.bits)
        assert sum(w + a for w, a in run.bits) < 48
        assert run.accuracy >= eight.accuracy - 0.02
    assert runs[LAMBDAS[1]].bitops < runs[LAMBDAS[0]].bitops < eight.bitops


@pytest.mark.slow
def test_fine_tuning_a_float_model_keeps_its_accuracy():
    data = load_split()
    keras.utils.set_random_seed(0)
    inp = keras.Input((data.n_features,))
    x = keras.layers.Dense(HIDDEN, activation="relu")(inp)
    x = keras.layers.Dense(HIDDEN, activation="relu")(x)
    float_model = keras.Model(inp, keras.layers.Dense(data.n_classes)(x))
    float_model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        metrics=["accuracy"])
    float_model.fit(data.x_train, data.y_train, epochs=EPOCHS, batch_size=BATCH, verbose=0)
    float_accuracy = float_model.evaluate(data.x_val, data.y_val, verbose=0)[1]

    model = adaqat_from_model(float_model, data.x_train, bits_w=8, bits_a=8)
    steps = int(np.ceil(len(data.x_train) / BATCH))
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(0.002, 10 * steps)),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    controller = AdaQATController((data.x_train, data.y_train), lam=LAMBDAS[1], lr=1.0, every=5)
    model.fit(data.x_train, data.y_train, epochs=10, batch_size=BATCH, verbose=0, callbacks=[controller])
    accuracy = model.evaluate(data.x_val, data.y_val, verbose=0)[1]
    bits = [(layer.kq.ceil_bits(), layer.iq.ceil_bits()) for layer in adaqat_layers(model)]
    print(f"float accuracy {float_accuracy:.4f}; fine-tuned AdaQAT {accuracy:.4f}, bits {bits}, BitOPs {total_bitops(model)}")
    assert sum(w + a for w, a in bits) < 48
    assert accuracy >= float_accuracy - 0.02
