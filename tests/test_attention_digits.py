"""Issue 17's acceptance model: digits as 8 tokens x 8 features through an EinsumDense projection, a
2-head self-attention block with a residual HAdd, Flatten and a Dense head; trained with an EBOPs
beta ramp, saved and loaded exactly, converted and verified through the CLI, bit-exact on the test
set and on 4x out-of-range inputs (~60 s with the compile)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import hgq_chip
from hgq_chip.cli import main
from hgq_chip.data import load_split
from hgq_chip.layers import HAdd, HDense, HEinsumDense, HMultiHeadAttention, HQuantize
from hgq_chip.training import LogRampBeta, ResetRanges

EPOCHS = 12
TOKENS, FEATURES = 8, 8


def attention_block_model(width=8, heads=2, key_dim=4, beta0=1e-7) -> keras.Model:
    """Input (8, 8) -> HQuantize -> HEinsumDense 'btf,fo->bto' -> x + HMultiHeadAttention(x, x) -> Flatten -> HDense(10)."""
    inputs = keras.Input((TOKENS, FEATURES), name="pixels")
    x = HQuantize(name="q")(inputs)
    x = HEinsumDense("btf,fo->bto", (None, width), bias_axes="o", activation="relu", name="embed", beta0=beta0)(x)
    attended = HMultiHeadAttention(heads, key_dim, name="attention", beta0=beta0)(x, x)
    x = HAdd(name="residual")([x, attended])
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, HDense(10, name="head", beta0=beta0)(x))


@pytest.mark.slow
def test_the_attention_block_trains_on_digits_converts_through_the_cli_and_is_bit_exact(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    split = load_split()
    x_train, x_val = (a.reshape(-1, TOKENS, FEATURES) for a in (split.x_train, split.x_val))
    model = attention_block_model()
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x_train, split.y_train, epochs=EPOCHS, batch_size=32, verbose=0,
              callbacks=[ResetRanges(), LogRampBeta(1e-7, 1e-5, stop=EPOCHS - 1)])
    hgq_chip.calibrate(model, x_train)
    predictions = model.predict(x_val, verbose=0)
    accuracy = float(np.mean(np.argmax(predictions, axis=1) == split.y_val))
    assert accuracy > 0.85, accuracy
    assert hgq_chip.ebops(model) > 0

    path = tmp_path / "attention.keras"
    model.save(path)
    loaded = hgq_chip.load_model(path)
    assert np.array_equal(loaded.predict(x_val, verbose=0), predictions)

    np.save(tmp_path / "x_val.npy", x_val)
    prj = tmp_path / "prj"
    assert main(["convert", str(path), "--backend", "Vitis", "--output-dir", str(prj), "--quiet"]) == 0
    assert "HMultiHeadAttention" in capsys.readouterr().out
    assert main(["verify", str(path), str(prj), "--data", str(tmp_path / "x_val.npy"), "--quiet"]) == 0
    assert "bit-exact" in capsys.readouterr().out
    assert main(["verify", str(path), str(prj), "--random", "1000", "--scale", "4", "--quiet"]) == 0
    assert "bit-exact" in capsys.readouterr().out
