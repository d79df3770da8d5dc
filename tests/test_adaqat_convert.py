"""AdaQAT models convert exactly: csim equals Keras bit for bit (np.array_equal), for a
trained AdaQAT MLP, a mixed AdaQAT + HGQ MLP sharing one cost, and (slow) convolutions."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from exactness import assert_bit_exact
from hgq_chip import cost
from hgq_chip.data import load_split
from hgq_chip.layers import HDense, HQuantize
from hgq_chip.layers.adaqat import AConv1D, AConv2D, ADense
from hgq_chip.training.adaqat import AdaQATController


def _compile(model):
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _train(model, data, controller, epochs=3):
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=64, verbose=0, callbacks=[controller])


def test_trained_adaqat_mlp_is_bit_exact(tmp_path):
    keras.utils.set_random_seed(1)
    data = load_split()
    inp = keras.Input((data.n_features,))
    x = ADense(16, activation="relu", input_quantizer={"init_bits": 6.0}, kernel_quantizer={"init_bits": 6.0})(inp)
    x = ADense(8, input_quantizer={"init_bits": 6.0, "init_alpha": 4.0})(x)  # linear: next input is signed
    out = ADense(data.n_classes, input_quantizer={"init_bits": 6.0, "init_alpha": 4.0, "signed": True})(x)
    model = _compile(keras.Model(inp, out))
    controller = AdaQATController((data.x_train, data.y_train), lam=2e-5, lr=1.0, every=3)
    _train(model, data, controller)
    bits = [(l.kq.ceil_bits(), l.iq.ceil_bits()) for l in model.layers[1:]]
    assert len(set(bits)) > 1 and min(min(b) for b in bits) < 6  # the controller moved them
    report = assert_bit_exact(model, data.x_train, tmp_path / "adaqat")
    assert report.ok


def test_mixed_adaqat_and_hgq_mlp_share_one_cost_and_are_bit_exact(tmp_path):
    keras.utils.set_random_seed(2)
    data = load_split()
    inp = keras.Input((data.n_features,))
    x = HQuantize()(inp)
    x = HDense(16, activation="relu", beta0=1e-5)(x)
    x = ADense(12, activation="relu", input_quantizer={"init_bits": 7.0, "init_alpha": 4.0}, beta0=1e-5)(x)
    out = HDense(data.n_classes, beta0=1e-5)(x)
    model = _compile(keras.Model(inp, out))
    adaqat = model.layers[3]
    start = adaqat.bit_widths()
    _train(model, data, AdaQATController((data.x_train, data.y_train), lam="beta", lr=1.0, every=3))
    assert adaqat.bit_widths()["w"] < start["w"] and adaqat.bit_widths()["a"] < start["a"]
    # One EBOPs total over both kinds of layers.
    assert cost.ebops(model) == sum(l.ebops_exact() for l in model.layers if hasattr(l, "ebops_exact"))
    assert_bit_exact(model, data.x_train, tmp_path / "mixed")


@pytest.mark.slow
def test_adaqat_convolutions_are_bit_exact(tmp_path):
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    inp = keras.Input((8, 8, 2))
    x = AConv2D(3, 3, padding="same", activation="relu",
                input_quantizer={"init_bits": 5.0, "init_alpha": 2.0, "signed": True}, kernel_quantizer={"init_bits": 4.0})(inp)
    x = keras.layers.Reshape((16, 12))(x)
    x = AConv1D(4, 3, input_quantizer={"init_bits": 3.3, "init_alpha": 8.0}, kernel_quantizer={"init_bits": 2.5})(x)
    x = keras.layers.Flatten()(x)
    out = ADense(3, input_quantizer={"init_bits": 4.0, "init_alpha": 4.0, "signed": True})(x)
    model = keras.Model(inp, out)
    for layer in model.layers:
        if hasattr(layer, "bias"):
            layer.bias.assign(rng.normal(0, 0.5, layer.bias.shape))
    assert_bit_exact(model, rng.normal(0, 1.0, (256, 8, 8, 2)).astype(np.float32), tmp_path / "conv")
