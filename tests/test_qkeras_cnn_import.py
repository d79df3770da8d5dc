"""QKeras CNN import (issue 16): models built and saved by QKeras itself in a Keras 2 child
process, imported, compared with QKeras' own outputs by ``np.array_equal`` on inputs drawn
from the grid of the model's input quantizer, then converted and verified bit-exact.

- The field case: QConv2D 6-bit, quantized_relu(6), MaxPooling2D, Flatten, QDense 6-bit.
- A coverage graph: QConv2DBatchnorm (BatchNorm statistics folded by QKeras, then quantized),
  QDepthwiseConv2D, quantized_tanh, Concatenate, AveragePooling2D, MaxPooling2D, Add,
  GlobalAveragePooling2D, QDense, and a final softmax (dropped on import).

Needs the `qkeras` extra; skipped with the reason otherwise. Each module fixture runs two Keras 2
child processes (build and predict, describe): slow.
"""

from __future__ import annotations

import numpy as np
import pytest

import hgq_chip
from hgq_chip.errors import UnsupportedLayerError
from hgq_chip.layers import HConv2D, HDepthwiseConv2D
from hgq_chip.qkeras_import import (
    describe_qkeras, model_from_description, qkeras_problem, run_legacy_python,
)

# Appended to each build script: QKeras' outputs on X.npy (argv[-2]) of every saved file, read back
# from the file as qkeras_predict does, into Y.npz (argv[-1]); one child process instead of several.
PREDICT = """
from qkeras.utils import load_qmodel
x = np.load(sys.argv[-2])
np.savez(sys.argv[-1], *[np.asarray(load_qmodel(path, compile=False)(x, training=False)) for path in sys.argv[1:-2]])
"""

BUILD_FIELD_CNN = """
import sys
import numpy as np
import tensorflow as tf
from qkeras import QActivation, QConv2D, QDense, quantized_bits, quantized_relu

tf.keras.utils.set_random_seed(0)
bias = tf.keras.initializers.RandomUniform(-1, 1, seed=1)
inputs = tf.keras.Input(shape=(8, 8, 1))
x = QActivation(quantized_bits(6, 2, alpha=1), name="input_q")(inputs)
x = QConv2D(4, 3, kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1),
            bias_initializer=bias, name="conv")(x)
x = QActivation(quantized_relu(6, 2), name="relu")(x)
x = tf.keras.layers.MaxPooling2D(2, name="pool")(x)
x = tf.keras.layers.Flatten(name="flatten")(x)
x = QDense(10, kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1),
           bias_initializer=bias, name="output")(x)
tf.keras.Model(inputs, x, name="field_cnn").save(sys.argv[1])
""" + PREDICT

BUILD_COVERAGE = """
import sys
import numpy as np
import tensorflow as tf
from qkeras import (QActivation, QConv2DBatchnorm, QDense, QDepthwiseConv2D, quantized_bits, quantized_relu,
                    quantized_tanh)

tf.keras.utils.set_random_seed(0)
bias = tf.keras.initializers.RandomUniform(-1, 1, seed=1)
layers = tf.keras.layers
inputs = tf.keras.Input(shape=(8, 8, 2))
q = QActivation(quantized_bits(7, 2, alpha=1), name="input_q")(inputs)
conv = QConv2DBatchnorm(4, 3, padding="same", kernel_quantizer=quantized_bits(8, 2, alpha=1),
                        bias_quantizer=quantized_bits(10, 4, alpha=1), name="conv_bn")
a = QActivation(quantized_relu(6, 2), name="relu")(conv(q))
b = QDepthwiseConv2D(3, padding="same", depthwise_quantizer=quantized_bits(6, 0, alpha=1),
                     bias_quantizer=quantized_bits(6, 0, alpha=1), bias_initializer=bias, name="depthwise")(q)
b = QActivation(quantized_tanh(6), name="tanh")(b)
c = layers.Concatenate(name="branches")([a, b])
s = layers.Add(name="add")([layers.AveragePooling2D(2, name="avg")(c), layers.MaxPooling2D(2, name="max")(c)])
g = layers.GlobalAveragePooling2D(name="global_avg")(s)
logits = QDense(5, kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1),
                bias_initializer=bias, name="logits")(g)
rng = np.random.default_rng(0)
bn = conv.batchnorm  # statistics as after training: folding really rescales the kernel
bn.gamma.assign(rng.uniform(0.5, 2.0, 4)); bn.beta.assign(rng.uniform(-1, 1, 4))
bn.moving_mean.assign(rng.uniform(-1, 1, 4)); bn.moving_variance.assign(rng.uniform(0.3, 3.0, 4))
tf.keras.Model(inputs, logits, name="coverage").save(sys.argv[1])
probabilities = QActivation("softmax", name="softmax")(logits)
tf.keras.Model(inputs, probabilities, name="coverage_softmax").save(sys.argv[2])
# No bias_quantizer: QKeras adds the folded float32 bias as it is.
float_bias = QConv2DBatchnorm(3, 3, kernel_quantizer=quantized_bits(8, 2, alpha=1), name="float_bias")
y = layers.Flatten(name="flatten")(QActivation(quantized_relu(6, 2), name="relu_fb")(float_bias(q)))
bn = float_bias.batchnorm
bn.gamma.assign(rng.uniform(0.5, 2.0, 3)); bn.beta.assign(rng.uniform(-1, 1, 3))
bn.moving_mean.assign(rng.uniform(-1, 1, 3)); bn.moving_variance.assign(rng.uniform(0.3, 3.0, 3))
tf.keras.Model(inputs, y, name="float_bias").save(sys.argv[3])
""" + PREDICT


def grid_inputs(shape, bits, integer, n, seed):
    """``n`` samples whose values are codes of quantized_bits(bits, integer): every code at every
    position (over the batch), plus values beyond the clip points, which saturate."""
    f = bits - 1 - integer
    rng = np.random.default_rng(seed)
    codes = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), size=(n, *shape))
    x = (codes / 2.0**f).astype(np.float32)
    x[: n // 10] *= 3.0  # beyond the range: 3 * a code is a grid point of a wider type
    return x


def build_and_predict(tmp_path_factory, script, names, x):
    """Paths of the files ``script`` saves, and QKeras' outputs on ``x`` of each."""
    problem = qkeras_problem()
    if problem is not None:
        pytest.skip(f"QKeras does not import with TF_USE_LEGACY_KERAS=1: {problem} (pip install '.[qkeras]')")
    root = tmp_path_factory.mktemp("qkeras_cnn")
    paths = [root / name for name in names]
    np.save(root / "x.npy", x)
    result = run_legacy_python(["-c", script, *map(str, paths), str(root / "x.npy"), str(root / "y.npz")])
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(root / "y.npz") as outputs:
        return paths, [outputs[f"arr_{i}"] for i in range(len(paths))]


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    x = grid_inputs((8, 8, 1), 6, 2, 3000, seed=0)
    (path,), (y,) = build_and_predict(tmp_path_factory, BUILD_FIELD_CNN, ["field.h5"], x)
    model = model_from_description(*describe_qkeras(path), log=lambda m: None)
    return {"path": path, "x": x, "y": y, "model": model}


@pytest.fixture(scope="module")
def coverage(tmp_path_factory):
    x = grid_inputs((8, 8, 2), 7, 2, 2000, seed=1)
    (path, softmax_path, float_bias_path), (y, softmax_y, float_bias_y) = build_and_predict(
        tmp_path_factory, BUILD_COVERAGE, ["coverage.h5", "softmax.h5", "float_bias.h5"], x)
    notes = []
    model = model_from_description(*describe_qkeras(path), log=notes.append)
    return {"x": x, "y": y, "model": model, "notes": notes, "softmax_y": softmax_y,
            "softmax": describe_qkeras(softmax_path), "float_bias": describe_qkeras(float_bias_path),
            "float_bias_y": float_bias_y}


@pytest.mark.slow
def test_field_cnn_equals_qkeras_on_its_input_grid(field):
    model = field["model"]
    y = np.asarray(model(field["x"], training=False))
    assert np.array_equal(y, field["y"])
    assert len(np.unique(field["y"])) > 100  # not a comparison of constant outputs
    assert isinstance(model.get_layer("conv"), HConv2D) and model.get_layer("conv").activation.__name__ == "relu"


@pytest.mark.slow
def test_coverage_graph_equals_qkeras_on_its_input_grid(coverage):
    model, notes = coverage["model"], coverage["notes"]
    y = np.asarray(model(coverage["x"], training=False))
    assert np.array_equal(y, coverage["y"])
    assert len(np.unique(coverage["y"])) > 100
    assert isinstance(model.get_layer("depthwise"), HDepthwiseConv2D)
    # QConv2DBatchnorm arrives folded: a plain HConv2D holding QKeras' quantized folded weights.
    assert type(model.get_layer("conv_bn")) is HConv2D
    assert not any("close to" in note for note in notes)


@pytest.mark.slow
def test_final_softmax_is_dropped_and_the_argmax_kept(coverage):
    notes = []
    model = model_from_description(*coverage["softmax"], log=notes.append)
    assert any("dropped the final softmax" in note for note in notes)
    logits = np.asarray(model(coverage["x"], training=False))
    assert np.array_equal(logits, coverage["y"])
    assert np.array_equal(np.argmax(logits, axis=1), np.argmax(coverage["softmax_y"], axis=1))


@pytest.mark.slow
def test_float_folded_bias_is_kept_exactly_and_convert_refuses_it_typed(coverage, tmp_path):
    """Without a bias_quantizer QKeras adds its folded float32 bias unquantized: the import keeps
    it bit for bit (equal to QKeras), and convert refuses the 25-fractional-bit sum, writing nothing."""
    from hgq_chip.errors import UnsupportedConfigurationError

    notes = []
    model = model_from_description(*coverage["float_bias"], log=notes.append)
    assert any("float_bias: QKeras adds the BatchNorm-folded bias in float" in note for note in notes)
    assert np.array_equal(np.asarray(model(coverage["x"], training=False)), coverage["float_bias_y"])
    with pytest.raises(UnsupportedConfigurationError, match="float_bias.*float32"):
        hgq_chip.convert(model, tmp_path / "prj", backend="Vitis", log=lambda m: None)
    assert not (tmp_path / "prj").exists()


@pytest.mark.slow
def test_the_cli_imports_the_field_cnn(field, tmp_path):
    from hgq_chip.cli import main

    out = tmp_path / "field.keras"
    assert main(["import-qkeras", str(field["path"]), str(out), "--quiet"]) == 0
    model = hgq_chip.load_model(out)
    assert np.array_equal(np.asarray(model(field["x"], training=False)), field["y"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["field", "coverage"])
def test_imported_cnn_firmware_is_bit_exact(request, name, tmp_path):
    case = request.getfixturevalue(name)
    model, x = case["model"], case["x"]
    hgq_chip.convert(model, tmp_path / "prj", backend="Vitis", log=lambda m: None)
    report = hgq_chip.verify(model, tmp_path / "prj", np.concatenate([x[:500], x[-500:]]), log=lambda m: None)
    assert report.ok, report.describe()


@pytest.mark.slow
def test_a_softmax_inside_the_model_is_refused_with_what_to_do(coverage):
    description, weights = coverage["softmax"]
    description = dict(description, output_layer="logits")  # the softmax is no longer the output
    with pytest.raises(UnsupportedLayerError, match="softmax: QKeras computes this softmax in float.*HSoftmax"):
        model_from_description(description, weights, log=lambda m: None)
