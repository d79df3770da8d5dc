"""QKeras import: a jet-tagging-sized QKeras model (16-64-32-5, 6-bit weights, quantized_relu)
built and saved by QKeras itself in a Keras 2 child process, imported, compared bit for bit.

Needs the `qkeras` extra (qkeras, tf-keras, pyparsing); skipped with the reason otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest

import hgq_chip
from hgq_chip.cli import main
from hgq_chip.errors import CalibrationError
from hgq_chip.fixed.modes import Rounding
from hgq_chip.layers import HDense
from hgq_chip.qkeras_import import (
    describe_qkeras, model_from_description, qkeras_predict, qkeras_problem, run_legacy_python,
)

BUILD_JET_TAGGER = """
import sys
import tensorflow as tf
from qkeras import QActivation, QDense, quantized_bits, quantized_relu

# Seeds Python, NumPy and TF: tf_keras draws unseeded initializer seeds from Python's random.
tf.keras.utils.set_random_seed(0)
bias = tf.keras.initializers.RandomUniform(-1, 1, seed=1)
inputs = tf.keras.Input(shape=(16,))
x = QActivation(quantized_bits(10, 3, alpha=1), name="input_q")(inputs)
x = QDense(64, kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1),
           bias_initializer=bias, name="fc1")(x)
x = QActivation(quantized_relu(6, 2), name="relu1")(x)
# No alpha: QKeras then scales this kernel per output channel by powers of two ('auto_po2').
x = QDense(32, kernel_quantizer=quantized_bits(6, 0), bias_quantizer=quantized_bits(6, 0, alpha=1),
           bias_initializer=bias, name="fc2")(x)
x = QActivation(quantized_relu(6, 2), name="relu2")(x)
x = QDense(5, kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1),
           bias_initializer=bias, name="output")(x)
tf.keras.Model(inputs, x, name="jet_tagger").save(sys.argv[1])
"""


@pytest.fixture(scope="module")
def jet(tmp_path_factory):
    problem = qkeras_problem()
    if problem is not None:
        pytest.skip(f"QKeras does not import with TF_USE_LEGACY_KERAS=1: {problem} (pip install '.[qkeras]')")
    path = tmp_path_factory.mktemp("qkeras") / "jet.h5"
    result = run_legacy_python(["-c", BUILD_JET_TAGGER, str(path)])
    assert result.returncode == 0, result.stderr[-3000:]
    description, weights = describe_qkeras(path)
    rng = np.random.default_rng(0)
    # Representable in the input type quantized_bits(10, 3): multiples of 2**-6 in [-8, 8).
    representable = rng.integers(-512, 512, size=(3000, 16)).astype(np.float32) / 64
    # Arbitrary floats, beyond the input range too, but no exact ties of the input cast (see below).
    wide = rng.uniform(-12.0, 12.0, size=(1000, 16)).astype(np.float32)
    wide = np.where((wide * 64) % 1 == 0.5, 0.0, wide).astype(np.float32)
    # Exact input ties (m + 1/2) * 2**-6 and the value our input cast rounds them to, (m + 1) * 2**-6.
    m = rng.integers(-512, 511, size=(200, 16))
    ties, up = ((m + 0.5) / 64).astype(np.float32), ((m + 1) / 64).astype(np.float32)
    y = qkeras_predict(path, np.concatenate([representable, wide, ties, up]))
    return {"path": path, "description": description, "weights": weights, "x": np.concatenate([representable, wide]),
            "y": y[:4000], "ties": ties, "y_ties": y[4000:4200], "y_up": y[4200:],
            "model": model_from_description(description, weights, log=lambda m: None)}


def test_outputs_equal_qkeras_bit_for_bit(jet):
    y = np.asarray(jet["model"](jet["x"], training=False))
    assert y.shape == jet["y"].shape == (4000, 5)
    assert np.array_equal(y, jet["y"])
    assert len(np.unique(jet["y"])) > 100  # the comparison is not between constant outputs


def test_ties_round_to_even_as_qkeras(jet):
    """QKeras rounds with tf.round (ties to even). The same model with AP_RND (ties up)
    hidden quantizers differs: the accumulators really hit ties, and RND_CONV is what matches."""
    model = model_from_description(jet["description"], jet["weights"], log=lambda m: None)
    for layer in model.layers[2:]:
        assert layer.iq.rounding is Rounding.RND_CONV
        layer.iq.rounding = Rounding.RND
    y = np.asarray(model(jet["x"], training=False))
    assert not np.array_equal(y, jet["y"])


def test_input_ties_round_up_the_one_stated_difference(jet):
    """The model input's cast rounds ties up (firmware can only do that exactly for float
    inputs), QKeras to even: an exact input tie gives QKeras' output for the next value up."""
    model = jet["model"]
    assert model.layers[1].iq.rounding is Rounding.RND
    y = np.asarray(model(jet["ties"], training=False))
    assert np.array_equal(y, jet["y_up"])
    assert not np.array_equal(y, jet["y_ties"])


def test_initial_bits_are_the_qkeras_quantizers(jet):
    model, weights = jet["model"], jet["weights"]
    fc1, fc2, out = (model.get_layer(name) for name in ("fc1", "fc2", "output"))
    assert all(isinstance(layer, HDense) for layer in (fc1, fc2, out))
    assert fc1.activation.__name__ == fc2.activation.__name__ == "relu" and out.activation.__name__ == "linear"
    # quantized_bits(6, 0, alpha=1): f = 6 - 1 - 0 = 5 for every weight and bias.
    assert np.array_equal(fc1.kq.f.numpy(), np.full((16, 64), 5.0)) and np.all(out.bq.f.numpy() == 5.0)
    # auto_po2: each output channel's power-of-two scale 2**-s adds s fractional bits.
    scale = weights["fc2/kernel_scale"]
    expected = np.broadcast_to(5.0 - np.log2(scale), (64, 32))
    assert np.array_equal(fc2.kq.f.numpy(), expected) and len(np.unique(expected)) > 1
    # Activation formats: quantized_bits(10, 3) -> fixed<10,4>; quantized_relu(6, 2) -> ufixed<6,2>;
    # all saturating, per element.
    for layer, (k, i, f) in ((fc1, (1, 3, 6)), (fc2, (0, 2, 4)), (out, (0, 2, 4))):
        fmt = layer.iq.fixed_format()
        assert fmt.overflow.value == "SAT"
        assert (np.unique(fmt.k), np.unique(fmt.i), np.unique(fmt.f)) == ([k], [i], [f]), layer.name
    # The kernels are QKeras' quantized kernels, unchanged by our weight quantizer.
    for layer in (fc1, fc2, out):
        assert np.array_equal(layer.kq.quantized(layer.fused_kernel()), weights[f"{layer.name}/kernel_q"])


def test_float_input_takes_its_format_from_data(jet):
    """Without the input QActivation, x sets the input range and input_f its fractional bits;
    on inputs representable in the removed quantizer's type the outputs stay equal."""
    description = dict(jet["description"])
    removed = next(e for e in description["layers"] if e["name"] == "input_q")
    description["layers"] = [dict(e, inbound=removed["inbound"] if e.get("inbound") == ["input_q"] else e["inbound"])
                             for e in description["layers"] if e is not removed]
    with pytest.raises(CalibrationError, match="pass x"):
        model_from_description(description, jet["weights"], log=lambda m: None)
    x = jet["x"][:3000]
    model = model_from_description(description, jet["weights"], x=x, input_f=6, log=lambda m: None)
    assert np.array_equal(np.asarray(model(x, training=False)), jet["y"][:3000])


def test_fine_tuning_lowers_ebops(jet):
    """Distil the QKeras model into its import with an EBOPs penalty: bits drop, labels stay.

    Inputs are standardised-feature-like (normal, sigma 1.5, on the input grid). Ranges are
    re-recorded each epoch (HGQ's policy), so integer bits follow the data, not QKeras' clip points.
    """
    import keras

    rng = np.random.default_rng(1)
    x = np.clip(np.round(rng.normal(0.0, 1.5, size=(3000, 16)) * 64), -512, 511).astype(np.float32) / 64
    model = model_from_description(jet["description"], jet["weights"], log=lambda m: None)
    labels = np.argmax(np.asarray(model(x, training=False)), axis=1)
    before = hgq_chip.ebops(model)
    hgq_chip.cost.set_beta(model, 1e-5)
    keras.utils.set_random_seed(0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, labels, epochs=10, batch_size=64, verbose=0, callbacks=[hgq_chip.training.ResetRanges()])
    after = hgq_chip.ebops(model)
    agreement = np.mean(np.argmax(np.asarray(model(x, training=False)), axis=1) == labels)
    assert after < 0.9 * before, (before, after)
    assert agreement > 0.9, agreement


def test_cli_import_writes_a_loadable_model(jet, tmp_path, capsys):
    out = tmp_path / "jet.keras"
    assert main(["import-qkeras", str(jet["path"]), str(out), "--quiet"]) == 0
    stdout = capsys.readouterr().out
    model = hgq_chip.load_model(out)
    assert f"{hgq_chip.ebops(model):>10} EBOPs" in stdout and "saved" in stdout
    assert np.array_equal(np.asarray(model(jet["x"], training=False)), jet["y"])
    assert main(["import-qkeras", str(jet["path"]), str(out), "--quiet"]) == 8  # exists, no --force


@pytest.mark.slow
def test_imported_model_firmware_is_bit_exact(jet, tmp_path):
    """The RND_CONV casts reach the firmware as AP_RND_CONV and C simulation equals the model."""
    model = jet["model"]
    hgq_chip.convert(model, tmp_path / "prj", backend="Vitis", log=lambda m: None)
    defines = (tmp_path / "prj" / "firmware" / "defines.h").read_text()
    assert "AP_RND_CONV" in defines
    x = np.concatenate([jet["x"], hgq_chip.random_inputs(model, 1000, seed=2)[0]])
    report = hgq_chip.verify(model, tmp_path / "prj", x, log=lambda m: None)
    assert report.ok, report.describe()
