"""QKeras quantizers as fixed-point formats, and the builder on hand-written descriptions
(no QKeras needed: these run everywhere)."""

from __future__ import annotations

import numpy as np
import pytest

from hgq_chip.errors import UnsupportedLayerError
from hgq_chip.fixed.quantize_np import quantize
from hgq_chip.layers import HActivation, HDenseBatchNorm, HQuantize
from hgq_chip.qkeras_import import model_from_description
from hgq_chip.qkeras_import.legacy_reader import FORMAT, VERSION
from hgq_chip.qkeras_import.quantizer_formats import activation_spec, weight_fractional_bits


def bits(bits, integer, keep_negative=True, symmetric=0, alpha=None):
    config = dict(bits=bits, integer=integer, keep_negative=keep_negative, symmetric=symmetric, alpha=alpha,
                  qnoise_factor=1.0)
    return {"class": "quantized_bits", "config": config}


def relu(bits, integer, negative_slope=0.0):
    config = dict(bits=bits, integer=integer, use_sigmoid=0, negative_slope=negative_slope, qnoise_factor=1.0,
                  relu_upper_bound=None)
    return {"class": "quantized_relu", "config": config}


def qkeras_bits_reference(x, bits, integer, keep_negative=True, symmetric=False):
    """quantized_bits' inference formula (QKeras 0.9, alpha=None), written out in NumPy."""
    u = bits - keep_negative
    m, m_i = 2.0**u, 2.0**integer
    return m_i * np.clip(np.round(x * m / m_i), -keep_negative * (m - symmetric), m - 1) / m


@pytest.mark.parametrize("b, i, keep_negative, symmetric", [(6, 0, 1, 0), (8, 3, 1, 1), (5, -1, 0, 0), (4, 2, 1, 0)])
def test_quantized_bits_is_a_saturating_ties_to_even_cast(b, i, keep_negative, symmetric):
    spec = activation_spec("q", bits(b, i, keep_negative, symmetric))
    k = int(keep_negative)
    assert spec.f == b - k - i and spec.rounding == "RND_CONV"
    assert spec.overflow == ("SAT_SYM" if symmetric else "SAT")
    step = 2.0**-spec.f
    x = np.concatenate([np.arange(-2**(b + 1), 2**(b + 1)) * step / 2, np.random.default_rng(0).normal(0, 4, 500)])
    ours = quantize(x, k, i, spec.f, spec.rounding, spec.overflow)
    assert np.array_equal(ours, qkeras_bits_reference(x, b, i, keep_negative, symmetric))
    assert spec.hi == 2.0**i - step and spec.lo == (-(2.0**i) if k else 0.0)


def test_quantized_relu_is_an_unsigned_saturating_cast():
    spec = activation_spec("r", relu(6, 2))
    assert (spec.f, spec.lo, spec.hi, spec.relu) == (4, 0.0, 4.0 - 2**-4, True)
    x = np.arange(-200, 200) / 32.0  # ties at half steps of 2**-4
    reference = 4.0 * np.clip(np.round(x * 2**6 / 4.0) / 2**6, 0.0, 1.0 - 2.0**-6)
    assert np.array_equal(quantize(x, 0, 2, 4, spec.rounding, spec.overflow), reference)


@pytest.mark.parametrize("quantizer, message", [
    (bits(6, 0, alpha="auto"), "alpha=None or 1"),
    (relu(6, 0, negative_slope=0.25), "negative_slope=0"),
    ({"class": "quantized_po2", "config": {"bits": 4, "integer": 0}}, "no fixed-point equivalent"),
    (bits(1, 0), "binary"),
    ({"activation": "tanh"}, "not fixed point"),
])
def test_unsupported_activation_quantizers_say_what_to_use(quantizer, message):
    with pytest.raises(UnsupportedLayerError, match=message):
        activation_spec("layer", quantizer)


def test_weight_bits_follow_power_of_two_scales_and_reject_others():
    values = np.array([[0.25, -0.5], [0.125, 0.0625]])
    f = weight_fractional_bits("d", bits(6, 0, alpha="auto_po2"), values, np.array([[1.0, 0.25]]))
    assert np.array_equal(f, [[5, 7], [5, 7]])
    with pytest.raises(UnsupportedLayerError, match="powers of two"):
        weight_fractional_bits("d", bits(6, 0, alpha="auto"), values, np.array([[0.3, 1.0]]))
    with pytest.raises(UnsupportedLayerError, match="off its own fixed-point grid"):
        weight_fractional_bits("d", bits(4, 0), values + 2**-9, None)
    assert np.array_equal(weight_fractional_bits("d", None, np.array([0.375, 3.0]), None), [3, 0])


def description(layers, input_shape=(4,)):
    """A version-2 description; a layer without ``inbound`` reads the layer before it (a chain)."""
    chained, previous = [], "in"
    for layer in layers:
        layer = {"inbound": [previous], **layer}
        chained.append(layer)
        previous = layer["name"]
    return {"format": FORMAT, "version": VERSION, "model_name": "m", "input_shape": list(input_shape), "n_inputs": 1,
            "n_outputs": 1, "output_layer": previous,
            "layers": [{"name": "in", "class": "InputLayer", "inbound": []}] + chained}


def qdense(name, units, activation=None, bias=True):
    return {"name": name, "class": "QDense", "units": units, "use_bias": bias, "kernel_quantizer": bits(6, 0, alpha=1),
            "bias_quantizer": bits(6, 0, alpha=1) if bias else None, "activation": activation or {"activation": "linear"}}


def dense_weights(name, n_in, n_out, rng):
    kernel = np.round(rng.uniform(-1, 1, (n_in, n_out)) * 32) / 32
    return {f"{name}/kernel": kernel, f"{name}/kernel_q": kernel,
            f"{name}/bias": np.full(n_out, 0.25), f"{name}/bias_q": np.full(n_out, 0.25)}


def test_batchnorm_is_folded_and_trailing_softmax_dropped():
    rng = np.random.default_rng(0)
    bn = {"name": "bn", "class": "BatchNormalization", "axis": -1, "epsilon": 1e-3, "center": True, "scale": True}
    layers = [{"name": "q", "class": "QActivation", "quantizer": bits(8, 2, alpha=1)}, qdense("d", 3), bn,
              {"name": "r", "class": "QActivation", "quantizer": relu(6, 2)},
              {"name": "sm", "class": "Activation", "quantizer": {"activation": "softmax"}}]
    weights = dense_weights("d", 4, 3, rng)
    stats = {"gamma": [1.0, 2.0, 0.5], "beta": [0.0, 0.5, -0.5], "moving_mean": [0.1, 0.0, -0.2],
             "moving_variance": [1.0, 4.0, 0.25]}
    weights.update({f"bn/{k}": np.asarray(v) for k, v in stats.items()})
    notes = []
    model = model_from_description(description(layers), weights, log=notes.append)
    layer = model.get_layer("d")
    assert isinstance(layer, HDenseBatchNorm) and layer.activation.__name__ == "relu"
    assert np.array_equal(layer.moving_variance.numpy(), np.float32(stats["moving_variance"]))
    assert isinstance(model.layers[-1], HQuantize)  # the final quantized_relu, as a cast
    assert any("softmax" in n for n in notes) and any("folded bn" in n for n in notes)
    x = np.round(rng.uniform(-4, 4, (64, 4)) * 32).astype(np.float32) / 32
    factor = np.asarray(stats["gamma"]) / np.sqrt(np.asarray(stats["moving_variance"]) + 1e-3)
    y_float = (x @ weights["d/kernel"] + 0.25 - stats["moving_mean"]) * factor + stats["beta"]
    expected = np.clip(np.round(y_float * 16), 0, 63) / 16
    # QKeras applies BatchNorm in float; the fold re-quantizes W * gamma / std to QKeras' 5 fractional
    # bits, so this path is close to QKeras, not equal (the exact paths are tested in test_qkeras_import).
    y = np.asarray(model(x, training=False))
    assert np.mean(y == expected) > 0.9 and np.abs(y - expected).max() <= 2.0**-4  # at most one output step


def test_relu_without_a_layer_before_it_becomes_an_activation_layer():
    layers = [{"name": "r", "class": "QActivation", "quantizer": bits(8, 2, alpha=1)},
              {"name": "r2", "class": "QActivation", "quantizer": relu(4, 1)}, qdense("d", 2)]
    model = model_from_description(description(layers), dense_weights("d", 4, 2, np.random.default_rng(1)),
                                   log=lambda m: None)
    kinds = [type(layer) for layer in model.layers[1:]]
    assert kinds[:2] == [HQuantize, HActivation]
    x = np.array([[-1.0, 0.3, 1.9, 5.0]], np.float32)
    expected = np.clip(np.round(np.clip(np.round(x * 32), -256, 255) / 32 * 8), 0, 15) / 8
    assert np.array_equal(np.asarray(model.layers[2](model.layers[1](x))), expected)


def test_layers_that_cannot_be_imported_are_named():
    bn = {"name": "bn", "class": "BatchNormalization", "axis": -1, "epsilon": 1e-3, "center": True, "scale": True}
    with pytest.raises(UnsupportedLayerError, match="bn: a BatchNormalization must directly follow"):
        model_from_description(description([bn]), {}, log=lambda m: None)
    with pytest.raises(UnsupportedLayerError, match="LSTM cannot be imported"):
        model_from_description(description([{"name": "rnn", "class": "LSTM"}]), {}, log=lambda m: None)
    shared = description([qdense("d", 2)])
    shared["layers"][1]["inbound"] = None  # what the reader writes for a layer called twice
    with pytest.raises(UnsupportedLayerError, match=r"\['d'\] are called more than once"):
        model_from_description(shared, {}, log=lambda m: None)


def test_from_qkeras_wants_a_saved_file(tmp_path):
    from hgq_chip import from_qkeras
    from hgq_chip.errors import ModelFileError

    with pytest.raises(ModelFileError, match="model.save"):
        from_qkeras(object())
    with pytest.raises(ModelFileError, match="not found"):
        from_qkeras(tmp_path / "missing.h5")


def tanh(bits, symmetric=False, use_real_tanh=False, sigmoid="hard_sigmoid"):
    config = {"bits": bits, "symmetric": symmetric, "use_stochastic_rounding": False, "use_real_tanh": use_real_tanh,
              "internal_sigmoid": sigmoid}
    return {"class": "quantized_tanh", "config": config}


def qkeras_hard_tanh_reference(x, bits, symmetric=False):
    """quantized_tanh's inference formula (QKeras 0.9, hard internal sigmoid), in float32 NumPy."""
    x = np.asarray(x, np.float32)
    m = np.float32(2.0 ** (bits - 1))
    p = np.float32(2.0) * np.clip(np.float32(0.5) * x + np.float32(0.5), 0, 1) - np.float32(1.0)
    return np.clip(np.round(p * m) / m, -1.0 + float(symmetric) / m, 1.0 - 1.0 / m)


@pytest.mark.parametrize("b, symmetric", [(6, False), (4, True), (8, False)])
def test_hard_quantized_tanh_is_a_saturating_cast_to_fixed_bits_1(b, symmetric):
    spec = activation_spec("t", tanh(b, symmetric))
    assert (spec.f, spec.lo, spec.hi) == (b - 1, -1.0, 1.0 - 2.0 ** -(b - 1))
    # Values with up to 12 fractional bits, ties included, over [-3, 3].
    x = np.arange(-3 * 2**12, 3 * 2**12 + 1) / 2.0**12
    ours = quantize(x, 1, 0, spec.f, spec.rounding, spec.overflow)
    assert np.array_equal(ours, qkeras_hard_tanh_reference(x, b, symmetric))


@pytest.mark.parametrize("quantizer", [tanh(6, use_real_tanh=True), tanh(6, sigmoid="sigmoid")])
def test_float_tanh_is_refused_with_what_to_do(quantizer):
    with pytest.raises(UnsupportedLayerError, match="float tanh/sigmoid.*HActivation\\('tanh'\\)"):
        activation_spec("t", quantizer)


def test_tanh_of_the_float_input_is_refused():
    layers = [{"name": "t", "class": "QActivation", "quantizer": tanh(6)}]
    with pytest.raises(UnsupportedLayerError, match="t: quantized_tanh reads the float model input"):
        model_from_description(description(layers), {}, log=lambda m: None)


def test_non_power_of_two_average_pooling_is_refused():
    layers = [{"name": "q", "class": "QActivation", "quantizer": bits(8, 2, alpha=1)},
              {"name": "avg", "class": "AveragePooling1D", "pool_size": [3], "strides": [3], "padding": "valid",
               "data_format": "channels_last"}]
    with pytest.raises(UnsupportedLayerError, match="avg: AveragePooling1D averages 3 values"):
        model_from_description(description(layers, input_shape=(6, 2)), {}, log=lambda m: None)


def test_folded_dense_batchnorm_is_a_plain_dense_with_the_folded_weights():
    """QDenseBatchnorm (newer QKeras) arrives folded by the reader: a plain HDense, exact."""
    from hgq_chip.layers import HDense

    rng = np.random.default_rng(2)
    entry = dict(qdense("d", 3), **{"class": "QDenseBatchnorm", "folded": True})
    model = model_from_description(description([{"name": "q", "class": "QActivation", "quantizer": bits(8, 2, alpha=1)},
                                                entry]), dense_weights("d", 4, 3, rng), log=lambda m: None)
    assert type(model.get_layer("d")) is HDense
    x = np.round(rng.uniform(-4, 4, (32, 4)) * 32).astype(np.float32) / 32
    expected = x @ dense_weights("d", 4, 3, np.random.default_rng(2))["d/kernel"] + 0.25
    assert np.array_equal(np.asarray(model(x, training=False)), expected.astype(np.float32))


def test_batchnorm_after_a_depthwise_conv_names_the_folded_layer_to_use():
    bn = {"name": "bn", "class": "BatchNormalization", "axis": -1, "epsilon": 1e-3, "center": True, "scale": True}
    dw = {"name": "dw", "class": "QDepthwiseConv2D", "kernel_size": [3, 3], "use_bias": False,
          "kernel_quantizer": bits(6, 0, alpha=1), "bias_quantizer": None, "activation": {"activation": "linear"}}
    with pytest.raises(UnsupportedLayerError, match="bn: .*use QKeras' folded layer"):
        model_from_description(description([dw, bn], input_shape=(5, 5, 2)), {}, log=lambda m: None)


@pytest.mark.parametrize("size, pool, stride, expected", [
    (8, 2, 2, {2}), (7, 2, 2, {1, 2}), (6, 4, 4, {3}), (5, 3, 1, {2, 3}), (4, 4, 1, {2, 3, 4}),
])
def test_same_window_counts_follow_keras(size, pool, stride, expected):
    """Window sizes of 'same' pooling: Keras' 'same' convolution with a kernel of ones over ones
    (the same padding rule as pooling) counts the positions each window covers."""
    import keras

    from hgq_chip.qkeras_import.graph import window_counts

    count = keras.layers.Conv1D(1, pool, stride, padding="same", use_bias=False, kernel_initializer="ones")
    keras_counts = {int(c) for c in np.ravel(np.asarray(count(np.ones((1, size, 1), np.float32))))}
    assert window_counts(size, pool, stride, "same") == keras_counts == expected


def test_same_average_pooling_with_a_three_value_border_window_is_refused():
    layers = [{"name": "q", "class": "QActivation", "quantizer": bits(8, 2, alpha=1)},
              {"name": "avg", "class": "AveragePooling1D", "pool_size": [4], "strides": [1], "padding": "same",
               "data_format": "channels_last"}]
    with pytest.raises(UnsupportedLayerError, match="avg: AveragePooling1D averages 3 values"):
        model_from_description(description(layers, input_shape=(4, 2)), {}, log=lambda m: None)
