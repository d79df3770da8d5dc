"""HAdd and the pass-through layers (pooling, Flatten, Reshape, Dropout) on fixed-point values."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest

from hgq_chip.calibration import calibrate
from hgq_chip.errors import UnsupportedLayerError
from hgq_chip.layers import HAdd, HDense, HQuantize, check_exact_average_pooling

pytestmark = pytest.mark.keras_level  # also run under JAX in CI (docs/backends.md, "Backends in CI")


def normal(seed, shape, scale=2.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(np.float32)


def randomize_f(quantizer, low, high, seed):
    shape = quantizer.f.shape
    quantizer.f.assign(np.random.default_rng(seed).integers(low, high + 1, size=shape).astype(np.float32))


def add_model(n_inputs):
    inputs = [keras.Input((5,)) for _ in range(n_inputs)]
    quantized = [HQuantize(name=f"q{j}")(x) for j, x in enumerate(inputs)]
    return keras.Model(inputs, HAdd(name="add")(quantized))


@pytest.mark.parametrize("n_inputs", [2, 3])
def test_add_is_exact_sum_of_quantized_inputs(n_inputs):
    model = add_model(n_inputs)
    quantizers = [model.get_layer(f"q{j}").q for j in range(n_inputs)]
    for j, q in enumerate(quantizers):
        randomize_f(q, 0, 7, seed=j)
    calibrate(model, [normal(10 + j, (128, 5)) for j in range(n_inputs)])
    x = [normal(20 + j, (512, 5), scale=3.0) for j in range(n_inputs)]
    reference = sum(q.quantize_np(xj) for q, xj in zip(quantizers, x))
    assert np.array_equal(model.predict(x, verbose=0).astype(np.float64), reference)
    assert model.get_layer("add").weights == []


def test_add_save_load_round_trip(tmp_path):
    model = add_model(2)
    randomize_f(model.get_layer("q0").q, 1, 6, seed=30)
    calibrate(model, [normal(31, (128, 5)), normal(32, (128, 5))])
    path = tmp_path / "add.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.get_layer("add"), HAdd)
    x = [normal(33, (256, 5), scale=3.0), normal(34, (256, 5), scale=3.0)]
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def max_pool_2x2(x):
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def average_pool_2x2(x):
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).sum(axis=(2, 4)) / 4.0


def test_pass_through_model_equals_numpy_reference():
    inputs = keras.Input((8, 8, 3))
    x = HQuantize(name="quantize")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.AveragePooling2D(2, name="average")(x)
    x = keras.layers.Reshape((4, 3))(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.5)(x)
    outputs = HDense(5, name="dense")(x)
    model = keras.Model(inputs, outputs)
    quantize, dense = model.get_layer("quantize"), model.get_layer("dense")
    randomize_f(quantize.q, 1, 5, seed=40)
    randomize_f(dense.iq, 2, 7, seed=41)
    calibrate(model, normal(42, (256, 8, 8, 3)))
    check_exact_average_pooling(model.get_layer("average"))

    x = normal(43, (512, 8, 8, 3), scale=3.0)
    pooled = average_pool_2x2(max_pool_2x2(quantize.q.quantize_np(x))).reshape(len(x), -1)
    kernel = dense.kq.quantized(dense.kernel.numpy())
    bias = dense.bq.quantized(dense.bias.numpy())
    reference = dense.iq.quantize_np(pooled) @ kernel + bias
    assert np.array_equal(model.predict(x, verbose=0).astype(np.float64), reference)
    assert np.array_equal(keras.ops.convert_to_numpy(model(x, training=False)).astype(np.float64), reference)


@pytest.mark.parametrize(
    "layer",
    [
        keras.layers.AveragePooling2D(3),
        keras.layers.AveragePooling2D((2, 3)),
        keras.layers.AveragePooling1D(6),
        keras.layers.AveragePooling3D((2, 2, 3)),
    ],
)
def test_non_power_of_two_pool_is_rejected(layer):
    with pytest.raises(UnsupportedLayerError, match="not a power of two"):
        check_exact_average_pooling(layer)


@pytest.mark.parametrize(
    "layer", [keras.layers.AveragePooling2D(2), keras.layers.AveragePooling1D(8), keras.layers.AveragePooling2D((1, 4))]
)
def test_power_of_two_valid_pool_is_accepted(layer):
    assert check_exact_average_pooling(layer) is None


def test_same_padding_needs_power_of_two_valid_counts():
    layer = keras.layers.AveragePooling2D(2, padding="same")
    with pytest.raises(UnsupportedLayerError, match="input shape"):
        check_exact_average_pooling(layer)
    # Border windows of 2 or 1 valid elements: still exact shifts (firmware divides by the count).
    check_exact_average_pooling(layer, input_shape=(None, 7, 8, 3))
    check_exact_average_pooling(layer, input_shape=(None, 8, 8, 3))
    check_exact_average_pooling(keras.layers.AveragePooling2D(2, strides=1, padding="same"), (None, 8, 8, 3))
    # A 4-wide pool on 5 values: windows of 3 (padding 1 before) and 2 valid elements.
    with pytest.raises(UnsupportedLayerError, match="partial"):
        check_exact_average_pooling(keras.layers.AveragePooling1D(4, strides=4, padding="same"), (None, 5, 3))
    with pytest.raises(UnsupportedLayerError, match="partial"):
        check_exact_average_pooling(keras.layers.AveragePooling2D(4, strides=2, padding="same"), (None, 6, 6, 1))

    # Why: Keras divides a partial border window by its valid count, not by the pool area.
    x = np.arange(7 * 7, dtype=np.float32).reshape(1, 7, 7, 1)
    y = keras.ops.convert_to_numpy(keras.layers.AveragePooling2D(2, padding="same")(x))
    assert y[0, 3, 3, 0] == x[0, 6, 6, 0]
    # With full windows 'same' equals 'valid', which the check accepts.
    x8 = normal(50, (2, 8, 8, 3))
    same = keras.ops.convert_to_numpy(keras.layers.AveragePooling2D(2, padding="same")(x8))
    assert np.array_equal(same, keras.ops.convert_to_numpy(keras.layers.AveragePooling2D(2)(x8)))


def test_same_padding_checked_against_recorded_input_shape():
    inputs = keras.Input((6, 4))
    layer = keras.layers.AveragePooling1D(4, padding="same")
    keras.Model(inputs, layer(inputs))
    with pytest.raises(UnsupportedLayerError, match="partial"):
        check_exact_average_pooling(layer)


def test_global_average_needs_power_of_two_positions():
    inputs = keras.Input((4, 4, 2))
    layer = keras.layers.GlobalAveragePooling2D()
    keras.Model(inputs, layer(inputs))
    check_exact_average_pooling(layer)
    with pytest.raises(UnsupportedLayerError, match="12 positions"):
        check_exact_average_pooling(keras.layers.GlobalAveragePooling2D(), input_shape=(None, 3, 4, 2))
    with pytest.raises(UnsupportedLayerError, match="build the model"):
        check_exact_average_pooling(keras.layers.GlobalAveragePooling1D())


def test_other_layers_pass_unchecked():
    for layer in (keras.layers.MaxPooling2D(3), keras.layers.Flatten(), keras.layers.Dropout(0.1)):
        assert check_exact_average_pooling(layer) is None
