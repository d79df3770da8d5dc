"""AdaQATController on models with several inputs and outputs, as ``fit`` takes them.

The controller used to hold its data as two arrays (``np.asarray(x)`` of a list of inputs
fails) and to apply one loss to the whole prediction. Now x and y may be lists or dicts;
its task loss equals what Keras' own ``evaluate`` reports for the compiled losses.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from hgq_chip.errors import DataError
from hgq_chip.layers import AConv1D, ADense
from hgq_chip.model_walk import adaqat_layers
from hgq_chip.training import AdaQATController

pytestmark = pytest.mark.keras_level  # also run under JAX in CI (docs/backends.md, "Backends in CI")

SIGNED = {"signed": True, "init_alpha": 4.0}


def _two_in_two_out():
    keras.utils.set_random_seed(6)
    sequence, vector = keras.Input((8, 2), name="sequence"), keras.Input((5,), name="vector")
    a = keras.layers.Flatten()(AConv1D(2, 3, strides=2, input_quantizer=SIGNED, name="conv")(sequence))
    b = ADense(4, activation="relu", input_quantizer=SIGNED, name="dense")(vector)
    joined = keras.layers.Concatenate()([a, b])
    label = ADense(3, input_quantizer={"init_alpha": 8.0, "signed": True}, name="label")(joined)
    value = ADense(1, input_quantizer={"init_alpha": 8.0, "signed": True}, name="value")(joined)
    return keras.Model([sequence, vector], [label, value])


def _data(n=64):
    rng = np.random.default_rng(6)
    x = [rng.normal(size=(n, 8, 2)).astype(np.float32), rng.normal(size=(n, 5)).astype(np.float32)]
    y = {"label": rng.integers(0, 3, n), "value": rng.normal(size=(n, 1)).astype(np.float32)}
    return x, y


@pytest.mark.parametrize("loss_form", ["dict", "list"])
def test_multi_input_multi_output_model_trains_and_task_loss_matches_evaluate(loss_form):
    model = _two_in_two_out()
    losses = [keras.losses.SparseCategoricalCrossentropy(from_logits=True), "mse"]
    loss = dict(zip(["label", "value"], losses)) if loss_form == "dict" else losses
    model.compile(keras.optimizers.Adam(0.01), loss=loss)
    x, y = _data()
    start = {layer.name: layer.bit_widths() for layer in adaqat_layers(model)}
    controller = AdaQATController((x, y), lam=1e-4, lr=1.0, every=1, batch_size=32)
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[controller])
    assert np.all(np.isfinite(history.history["loss"]))
    assert all(layer.bit_widths() != start[layer.name] for layer in adaqat_layers(model))
    assert controller.updates == 8
    # The controller's task loss is Keras' inference loss: the sum of the compiled per-output losses.
    keras_loss = model.evaluate(x, y, batch_size=len(x[0]), verbose=0, return_dict=True)["loss"]
    assert controller.task_loss(x, y) == pytest.approx(keras_loss, rel=1e-5)


def test_controller_data_of_unequal_lengths_is_refused():
    x, y = _data()
    with pytest.raises(DataError, match="common number of samples"):
        AdaQATController(([x[0], x[1][:10]], y))
    with pytest.raises(DataError, match="x has 64 samples but y has 10"):
        AdaQATController((x, {"label": y["label"][:10], "value": y["value"][:10]}))
