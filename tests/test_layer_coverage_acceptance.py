"""Acceptance (issue 16, layer coverage): two small models built from the newer layers train
briefly on sklearn digits, are saved as ``.keras`` files, converted with ``hgq_chip convert`` and
verified bit-exact with ``hgq_chip verify`` (io_parallel; the merge model in io_stream too: HSoftmax
is io_parallel only) on the validation set and on 1000 random inputs over
the calibrated range widened 4x (out-of-range values saturate in both Keras and the firmware).

- A trigger-style CNN: same-padded HConv2D, HDepthwiseConv2D, MaxPooling2D and AveragePooling2D
  branches joined by Concatenate, GlobalAveragePooling2D, an HSoftmax output.
- A merge model: ZeroPadding1D, HSubtract, HMultiply, HMaximum.

Each takes one to two minutes (training, conversions, C-simulation runs), hence ``slow``.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import hgq_chip
from hgq_chip.cli import main
from hgq_chip.data import load_split
from hgq_chip.layers import (
    HConv1D, HConv2D, HDense, HDepthwiseConv2D, HMaximum, HMultiply, HQuantize, HSoftmax, HSubtract,
)
from hgq_chip.training import ResetRanges

EPOCHS = 6


def trigger_cnn() -> keras.Model:
    """(8, 8, 1) -> 10 probabilities."""
    inputs = keras.Input((8, 8, 1), name="image")
    x = HQuantize(name="q")(inputs)
    x = HConv2D(4, 3, padding="same", activation="relu", name="conv1")(x)
    depthwise = HDepthwiseConv2D(3, padding="same", activation="relu", name="depthwise")(x)
    peaks = keras.layers.MaxPooling2D(2, name="max_pool")(depthwise)  # (4, 4, 4)
    means = keras.layers.AveragePooling2D(2, name="avg_pool")(x)  # (4, 4, 4)
    x = keras.layers.Concatenate(name="branches")([peaks, means])  # (4, 4, 8)
    x = HConv2D(12, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)  # 16 positions: a power of two
    logits = HDense(10, name="logits")(x)
    return keras.Model(inputs, HSoftmax(name="softmax", beta0=1e-6)(logits), name="trigger_cnn")


def merge_model() -> keras.Model:
    """(16, 4) -> 10 logits. Activation bits per layer, so io_stream converts it too."""
    per_layer = {"granularity": "per-layer"}
    inputs = keras.Input((16, 4), name="sequence")
    x = HQuantize(per_layer, name="q")(inputs)
    x = keras.layers.ZeroPadding1D(1, name="pad")(x)  # (18, 4)
    a = HConv1D(6, 3, activation="relu", input_quantizer=per_layer, name="conv_a")(x)  # (16, 6)
    b = HConv1D(6, 3, input_quantizer=per_layer, name="conv_b")(x)
    difference = HSubtract(name="subtract")([a, b])
    product = HMultiply(input_quantizer=per_layer, name="multiply")([a, b])
    x = HMaximum(name="maximum")([difference, product])
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, HDense(10, input_quantizer=per_layer, name="logits")(x), name="merges")


def train_convert_verify(model, loss, x_train, y_train, x_val, y_val, tmp_path, capsys, min_accuracy,
                         io_types=("io_parallel",)):
    model.compile(keras.optimizers.Adam(0.01), loss, metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=EPOCHS, batch_size=32, verbose=0, callbacks=[ResetRanges()])
    hgq_chip.calibrate(model, x_train)
    accuracy = float(np.mean(np.argmax(keras.ops.convert_to_numpy(model(x_val)), axis=1) == y_val))
    assert accuracy > min_accuracy, accuracy  # it learned: the comparison is not between constant outputs
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "x_val.npy", x_val)
    capsys.readouterr()
    for io_type in io_types:
        prj = str(tmp_path / io_type)
        assert main(["convert", str(tmp_path / "model.keras"), "--backend", "Vitis", "--io-type", io_type,
                     "--output-dir", prj, "--quiet"]) == 0
        assert main(["verify", str(tmp_path / "model.keras"), prj, "--data", str(tmp_path / "x_val.npy"),
                     "--quiet"]) == 0
        assert main(["verify", str(tmp_path / "model.keras"), prj, "--random", "1000", "--scale", "4",
                     "--quiet"]) == 0
    assert capsys.readouterr().out.count("bit-exact") == 2 * len(io_types)


@pytest.mark.slow
def test_trigger_style_cnn_converts_and_verifies_through_the_cli(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    split = load_split()
    x_train, x_val = (x.reshape(-1, 8, 8, 1).astype(np.float32) for x in (split.x_train, split.x_val))
    model = trigger_cnn()
    train_convert_verify(model, keras.losses.SparseCategoricalCrossentropy(), x_train, split.y_train, x_val,
                         split.y_val, tmp_path, capsys, min_accuracy=0.5)


@pytest.mark.slow
def test_merge_model_converts_and_verifies_through_the_cli(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    split = load_split()
    x_train, x_val = (x.reshape(-1, 16, 4).astype(np.float32) for x in (split.x_train, split.x_val))
    model = merge_model()
    train_convert_verify(model, keras.losses.SparseCategoricalCrossentropy(from_logits=True), x_train,
                         split.y_train, x_val, split.y_val, tmp_path, capsys, min_accuracy=0.6,
                         io_types=("io_parallel", "io_stream"))
