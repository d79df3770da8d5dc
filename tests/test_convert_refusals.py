"""Layer options, io_stream limits and graph shapes the firmware cannot reproduce: refused up front.

Each case converts a small calibrated model and expects the typed error naming the layer
(and the option), with nothing written. Nothing here compiles C++.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import hgq_chip
from hgq_chip.errors import UnsupportedConfigurationError, UnsupportedLayerError
from hgq_chip.layers import AConv2D, HConv1D, HConv2D, HConv2DBatchNorm, HDense, HQuantize

PL = {"granularity": "per-layer"}
Q = {"input_quantizer": PL, "kernel_quantizer": PL, "bias_quantizer": PL}


def _calibrated(inputs, outputs, seed=0):
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(seed)
    shapes = [tuple(t.shape[1:]) for t in model.inputs]
    x = [rng.normal(0, 2, (32,) + s).astype("float32") for s in shapes]
    hgq_chip.calibrate(model, x if len(x) > 1 else x[0])
    return model


def assert_refused(model, tmp_path, error, *words, io_type="io_parallel"):
    """convert raises ``error`` whose message holds every word, and writes nothing."""
    with pytest.raises(error) as caught:
        hgq_chip.convert(model, tmp_path / "out", io_type=io_type, log=lambda *_: None)
    message = str(caught.value)
    for word in words:
        assert word in message, message
    assert list(tmp_path.iterdir()) == [], "a refused conversion wrote something"
    return message


# ---- kind: convolution options hls4ml ignores (dilation), on every conv family -------------

@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
@pytest.mark.parametrize("conv", [
    lambda: HConv1D(2, 3, dilation_rate=2, name="dilated", **Q),
    lambda: HConv2D(2, 3, dilation_rate=(1, 2), name="dilated", **Q),
    lambda: HConv2DBatchNorm(2, 3, dilation_rate=2, name="dilated", **Q),
    lambda: AConv2D(2, 3, dilation_rate=2, name="dilated"),
], ids=["HConv1D", "HConv2D", "HConv2DBatchNorm", "AConv2D"])
def test_dilated_convolution_is_refused(tmp_path, conv, io_type):
    layer = conv()
    inp = keras.Input((9, 2) if isinstance(layer, keras.layers.Conv1D) else (9, 9, 2))
    model = _calibrated(inp, layer(HQuantize(PL)(inp)))
    assert_refused(model, tmp_path, UnsupportedLayerError, "'dilated'", "dilation_rate", io_type=io_type)


# ---- kind: io_stream pooling that hls4ml's stream templates assert against ---------------

@pytest.mark.parametrize("pooling, shape, option", [
    (lambda: keras.layers.AveragePooling2D(pool_size=1, strides=2, name="pool"), (8, 8, 2), "pool_size"),
    (lambda: keras.layers.MaxPooling2D(2, padding="same", name="pool"), (5, 5, 2), "signed"),
    (lambda: keras.layers.MaxPooling1D(3, strides=2, name="pool"), (9, 2), "pool_size"),
    (lambda: keras.layers.MaxPooling1D(2, padding="same", name="pool"), (7, 2), "signed"),
    (lambda: keras.layers.AveragePooling1D(2, padding="same", name="pool"), (7, 2), "padding"),
    (lambda: keras.layers.AveragePooling2D((2, 1), strides=(2, 2), name="pool"), (8, 8, 2), "pool_size"),
], ids=["avg2d-pool1-stride2", "max2d-same-odd-signed", "max1d-pool3-stride2", "max1d-same-odd-signed",
        "avg1d-same-odd", "avg2d-2x1-stride2"])
def test_stream_pooling_the_templates_cannot_do_is_refused(tmp_path, pooling, shape, option):
    inp = keras.Input(shape)
    model = _calibrated(inp, pooling()(HQuantize(PL)(inp)))
    assert_refused(model, tmp_path, UnsupportedConfigurationError, "'pool'", option, "io_parallel",
                   io_type="io_stream")


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_average_pooling_same_that_pads_is_refused(tmp_path, io_type):
    inp = keras.Input((6, 6, 1))
    pool = keras.layers.AveragePooling2D(4, strides=2, padding="same", name="avg")
    model = _calibrated(inp, pool(HQuantize(PL)(inp)))
    assert_refused(model, tmp_path, (UnsupportedLayerError, UnsupportedConfigurationError), "avg", io_type=io_type)


def test_stream_row_kernel_with_row_stride_is_refused(tmp_path):
    inp = keras.Input((6, 6, 2))
    model = _calibrated(inp, HConv2D(2, (1, 3), strides=2, name="rows", **Q)(HQuantize(PL)(inp)))
    assert_refused(model, tmp_path, UnsupportedConfigurationError, "'rows'", "strides", io_type="io_stream")


def test_stream_read_by_more_than_seven_layers_is_refused(tmp_path):
    inp = keras.Input((4,))
    x = HQuantize(PL, name="fanout")(inp)
    model = _calibrated(inp, [HDense(1, **Q)(keras.layers.Dropout(0.1)(x)) for _ in range(8)])
    assert_refused(model, tmp_path, UnsupportedConfigurationError, "'fanout'", "8 layers", io_type="io_stream")


# ---- kind: io_stream layers that would read a flattened stream wrongly ---------------------

def test_stream_add_after_flatten_is_refused(tmp_path):
    inp = keras.Input((4, 4, 2))
    x = HQuantize(PL)(inp)
    a = keras.layers.Flatten()(HConv2D(2, 3, **Q)(x))
    b = keras.layers.Flatten()(HConv2D(2, 3, **Q)(x))
    model = _calibrated(inp, keras.layers.Add(name="sum")([a, b]))
    assert_refused(model, tmp_path, UnsupportedConfigurationError, "'sum'", "Flatten", io_type="io_stream")


def test_stream_reshape_whose_words_do_not_divide_is_refused(tmp_path):
    inp = keras.Input((4, 6, 3))
    x = keras.layers.Reshape((9, 8), name="regroup")(HQuantize(PL)(inp))
    model = _calibrated(inp, HConv1D(2, 3, **Q)(x))
    assert_refused(model, tmp_path, UnsupportedConfigurationError, "'regroup'", "3", "8", io_type="io_stream")


# ---- kind: Keras layer options the rules do not reproduce ---------------------------------

def _flatten_channels_first():
    inp = keras.Input((3, 4, 2))
    return inp, keras.layers.Flatten(data_format="channels_first", name="opt")(HQuantize(PL)(inp))


def _pooling_channels_first():
    inp = keras.Input((2, 4, 4))
    return inp, keras.layers.MaxPooling2D(2, data_format="channels_first", name="opt")(HQuantize(PL)(inp))


def _add_broadcast():
    inp = keras.Input((4, 3))
    x = HQuantize(PL)(inp)
    return inp, keras.layers.Add(name="opt")([x, HConv1D(1, 1, **Q)(x)])


def _dense_on_rank4():
    inp = keras.Input((2, 2, 2, 3))
    return inp, HDense(2, name="opt", **Q)(HQuantize(PL)(inp))


def _float16_layer():
    # hgq_chip's own layers refuse float16 when built (test below); Keras layers reach convert.
    inp = keras.Input((4,))
    return inp, keras.layers.Reshape((2, 2), name="opt", dtype="float16")(HQuantize(PL)(inp))


@pytest.mark.parametrize("build, option", [
    (_flatten_channels_first, "data_format"),
    (_pooling_channels_first, "data_format"),
    (_add_broadcast, "input shapes"),
    (_dense_on_rank4, "input rank"),
    (_float16_layer, "dtype"),
], ids=["flatten-channels-first", "pool-channels-first", "add-broadcast", "dense-rank4", "float16"])
def test_layer_option_not_reproduced_is_refused(tmp_path, build, option):
    model = _calibrated(*build())
    assert_refused(model, tmp_path, UnsupportedLayerError, "'opt'", option)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "mixed_float16", "mixed_bfloat16"])
def test_our_layers_refuse_a_non_float32_dtype_when_constructed(dtype):
    with pytest.raises(UnsupportedConfigurationError, match=f"layer 'opt' \\(HDense\\) has dtype policy '{dtype}'"):
        HDense(2, name="opt", dtype=dtype, **Q)


def test_fused_activation_changed_after_construction_is_refused(tmp_path):
    inp = keras.Input((4,))
    dense = HDense(2, name="opt", **Q)
    model = _calibrated(inp, dense(HQuantize(PL)(inp)))
    dense.activation = keras.activations.get("tanh")
    assert_refused(model, tmp_path, UnsupportedLayerError, "'opt'", "activation", "HActivation")


def test_layer_without_rule_is_refused_with_its_way_forward(tmp_path):
    # (GaussianNoise, refused here before issue 33, is the identity at inference and converts now.)
    inp = keras.Input((4, 2))
    model = _calibrated(inp, keras.layers.Masking(name="mask")(HQuantize(PL)(inp)))
    assert_refused(model, tmp_path, UnsupportedLayerError, "'mask'", "Masking", "zero the padded steps")


# ---- kind: shared (reused) layers and nested models ---------------------------------------

def test_layer_called_twice_is_refused(tmp_path):
    inp = keras.Input((4,))
    shared = HDense(4, name="shared", **Q)
    x = HQuantize(PL)(inp)
    model = _calibrated(inp, shared(shared(x)))
    assert_refused(model, tmp_path, UnsupportedLayerError, "'shared'", "called 2 times")


def test_layer_shared_by_two_branches_is_refused(tmp_path):
    inp = keras.Input((4,))
    x = HQuantize(PL)(inp)
    a, b = HDense(4, **Q)(x), HDense(4, **Q)(x)
    shared = HDense(2, name="shared", **Q)
    model = _calibrated(inp, [shared(a), shared(b)])
    assert_refused(model, tmp_path, UnsupportedLayerError, "'shared'")


def test_layer_also_called_outside_the_model_is_refused(tmp_path):
    inp = keras.Input((4,))
    shared = HDense(2, name="shared", **Q)
    model = _calibrated(inp, shared(HQuantize(PL)(inp)))
    shared(keras.Input((4,)))  # a second, outside call (e.g. building another model)
    assert_refused(model, tmp_path, UnsupportedLayerError, "'shared'")


def test_nested_model_is_refused_even_uncalibrated(tmp_path):
    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, HDense(3, **Q)(HQuantize(PL)(inner_in)), name="inner")
    inp = keras.Input((4,))
    model = keras.Model(inp, HDense(2, **Q)(inner(inp)))
    assert_refused(model, tmp_path, UnsupportedLayerError, "'inner'", "nested")


def test_nested_model_called_twice_is_refused(tmp_path):
    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, HDense(4, **Q)(HQuantize(PL)(inner_in)), name="inner")
    inp = keras.Input((4,))
    model = _calibrated(inp, inner(inner(inp)))
    assert_refused(model, tmp_path, UnsupportedLayerError, "'inner'")
