"""Regression tests for the faults the model fuzzer (tests/test_fuzz_converter.py) found.

Each is the smallest hand-written model of one kind of fault, named after it.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from exactness import assert_bit_exact
from hgq_chip.calibration import calibrate
from hgq_chip.conversion import convert
from hgq_chip.errors import UnsupportedConfigurationError, UnsupportedLayerError
from hgq_chip.layers import (
    ASQDense, HActivation, HAdd, HConv1D, HConv1DBatchNorm, HConv2D, HDense, HDenseBatchNorm, HQuantize,
)


def _randomize_batchnorm(model, rng):
    for layer in model.layers:
        if hasattr(layer, "moving_mean"):
            channels = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0.0, 0.5, channels))
            layer.moving_variance.assign(rng.uniform(0.2, 2.0, channels))
            layer.bn_gamma.assign(rng.normal(1.0, 0.5, channels))
            layer.bn_beta.assign(rng.normal(0.0, 0.5, channels))


def test_batchnorm_fold_without_use_bias_keeps_folded_bias(tmp_path):
    """use_bias=False still has a folded bias beta - mean * scale; the firmware dropped it."""
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 2))
    x = HQuantize()(inputs)
    x = HConv1DBatchNorm(3, 2, use_bias=False, name="conv_bn")(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, HDenseBatchNorm(4, use_bias=False, activation="relu", name="dense_bn")(x))
    _randomize_batchnorm(model, rng)
    x_calibration = rng.normal(0.0, 1.0, (128, 6, 2)).astype(np.float32)
    assert_bit_exact(model, x_calibration, tmp_path / "prj")


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_saturating_quantizer_before_reshape_converts_exact(tmp_path, io_type):
    """A SAT/SAT_SYM cast right before a Flatten/Reshape: hls4ml's copy (io_parallel: the same
    variable; io_stream: a repack) carries the cast's overflow mode, which convert took for a
    type it did not derive (internal error)."""
    rng = np.random.default_rng(1)
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4, 3))
    x = HQuantize({"granularity": "per-layer", "rounding": "TRN", "overflow": "SAT_SYM"})(inputs)
    flat = keras.layers.Flatten()(x)
    if io_type == "io_parallel":  # io_stream refuses an input quantizer right after a Flatten
        flat = HDense(3, input_quantizer={"granularity": "per-layer"})(flat)
    model = keras.Model(inputs, keras.layers.Reshape((-1, 1))(flat))
    x_calibration = rng.normal(0.0, 2.0, (128, 4, 3)).astype(np.float32)
    assert_bit_exact(model, x_calibration, tmp_path / "prj", io_type=io_type)


def _refused_before_writing(model, tmp_path, **options):
    calibrate(model, np.random.default_rng(0).normal(size=(32, *model.input_shape[1:])).astype(np.float32))
    with pytest.raises(UnsupportedConfigurationError) as refused:
        convert(model, tmp_path / "prj", log=lambda *_: None, **options)
    assert not (tmp_path / "prj").exists()
    return str(refused.value)


def test_distributed_arithmetic_with_reuse_factor_above_one_refused(tmp_path):
    """hls4ml's distributed arithmetic is fully parallel only; it failed with an untyped error."""
    inputs = keras.Input((4,))
    model = keras.Model(inputs, HDense(3, name="dense")(inputs))
    message = _refused_before_writing(model, tmp_path, strategy="distributed_arithmetic", reuse_factor=2)
    assert "reuse factor 1" in message


def test_distributed_arithmetic_on_asq_layer_refused(tmp_path):
    """hls4ml's DA optimizer does not take the ASQ/POST template; it failed with an untyped error."""
    inputs = keras.Input((4,))
    x = HDense(5, activation="relu", name="dense")(inputs)  # not an HQuantize: that is refused on its own
    model = keras.Model(inputs, ASQDense(3, name="asq_dense")(x))
    message = _refused_before_writing(model, tmp_path, strategy="distributed_arithmetic")
    assert "asq_dense" in message


def test_stream_conv2d_one_row_kernel_with_vertical_stride_refused(tmp_path):
    """io_stream Conv2D with a (1, k>1) kernel and vertical stride 2: hls4ml's line buffer gave
    wrong outputs (convert succeeded); refused before writing anything."""
    inputs = keras.Input((4, 4, 1))
    x = HQuantize({"granularity": "per-layer"})(inputs)
    x = HConv2D(2, (1, 2), strides=(2, 1), input_quantizer={"granularity": "per-layer"}, name="row_conv")(x)
    model = keras.Model(inputs, x)
    message = _refused_before_writing(model, tmp_path, io_type="io_stream")
    assert "row_conv" in message


def test_stream_conv2d_two_row_kernel_with_larger_stride_converts_exact(tmp_path):
    """The refusal above is narrow: a 2-row kernel with stride 3 > kernel streams exactly."""
    rng = np.random.default_rng(2)
    keras.utils.set_random_seed(2)
    inputs = keras.Input((7, 7, 1))
    x = HQuantize({"granularity": "per-layer"})(inputs)
    x = HConv2D(2, (2, 2), strides=(3, 3), input_quantizer={"granularity": "per-layer"})(x)
    model = keras.Model(inputs, x)
    assert_bit_exact(model, rng.normal(0.0, 1.0, (128, 7, 7, 1)).astype(np.float32), tmp_path / "prj", io_type="io_stream")


def test_stream_add_of_flattened_tensor_refused(tmp_path):
    """io_stream HAdd reading a Flatten output: the C simulation aborted on a packing assert
    (killing the caller); refused before writing anything."""
    inputs = keras.Input((8, 1))
    x = HQuantize({"granularity": "per-layer"})(inputs)
    flat = keras.layers.Flatten(name="flat")(x)
    model = keras.Model(inputs, HAdd(name="sum")([flat, flat]))
    message = _refused_before_writing(model, tmp_path, io_type="io_stream")
    assert "flat" in message


def test_per_element_sat_sym_keeps_minimum_of_one_bit_element(tmp_path):
    """Per-element SAT_SYM casts: a 1-bit signed element holds -1 (SAT_SYM acts as SAT there),
    but the tensor's common type carried SAT_SYM too and turned that -1 into -max on storing."""
    rng = np.random.default_rng(3)
    inputs = keras.Input((2,))
    quantize = HQuantize({"granularity": "per-element", "rounding": "RND", "overflow": "SAT_SYM"}, name="q")
    model = keras.Model(inputs, quantize(inputs))
    quantize.q.f.assign(np.array([0.0, 3.0], np.float32))  # element 0: 1 bit, element 1: 4 bits
    x_calibration = rng.uniform(-0.9, 0.0, (128, 2)).astype(np.float32)
    assert_bit_exact(model, x_calibration, tmp_path / "prj")


def test_distributed_arithmetic_after_quantizer_and_dropout_refused(tmp_path):
    """HQuantize -> Dropout -> HDense with distributed arithmetic: hls4ml drops the Dropout, the two
    quantizers meet and the project did not compile; refused like the direct case."""
    inputs = keras.Input((3,))
    x = HQuantize(name="quant")(inputs)
    x = keras.layers.Dropout(0.25)(x)
    model = keras.Model(inputs, HDense(2, name="dense")(x))
    message = _refused_before_writing(model, tmp_path, strategy="distributed_arithmetic")
    assert "quant" in message and "dense" in message


@pytest.mark.parametrize("shape", ["reshape_2d_read_twice", "flatten_output_read_by_dense"])
def test_stream_repacked_reshape_read_twice_converts_exact(tmp_path, shape):
    """io_stream: hls4ml replaces a Flatten/Reshape that is no stream view by a Repack, and a
    Clone of its stream (two readers, or a model output also read) copied the Repack's untyped
    result_t (hls4ml's default fixed<16,6>): an internal error; now the Repack has the layer's type."""
    rng = np.random.default_rng(4)
    keras.utils.set_random_seed(4)
    per_layer = {"granularity": "per-layer"}
    if shape == "reshape_2d_read_twice":
        inputs = keras.Input((6,))
        x = HQuantize({**per_layer, "overflow": "SAT"})(inputs)
        r = keras.layers.Reshape((3, 2), name="r")(x)
        a = HConv1D(2, 1, input_quantizer=per_layer, name="conv")(r)
        outputs = HAdd()([a, HActivation("relu", input_quantizer=per_layer, name="relu")(r)])
    else:
        inputs = keras.Input((3, 2))
        flat = keras.layers.Flatten(name="flat")(HQuantize({**per_layer, "overflow": "SAT"})(inputs))
        outputs = [flat, HDense(2, input_quantizer=per_layer, name="dense")(flat)]
    model = keras.Model(inputs, outputs)
    x_calibration = rng.normal(0.0, 2.0, (128, *model.input_shape[1:])).astype(np.float32)
    assert_bit_exact(model, x_calibration, tmp_path / "prj", io_type="io_stream")


def test_layer_named_like_stream_repack_refused(tmp_path):
    """A layer named repack_<reshape> would share its name with the Repack hls4ml puts in place of
    that Reshape in io_stream: refused like the other generated names."""
    inputs = keras.Input((6,))
    r = keras.layers.Reshape((3, 2), name="r")(HQuantize({"granularity": "per-layer"})(inputs))
    model = keras.Model(inputs, HActivation("relu", input_quantizer={"granularity": "per-layer"}, name="repack_r")(r))
    calibrate(model, np.random.default_rng(0).normal(size=(32, 6)).astype(np.float32))
    with pytest.raises(UnsupportedLayerError, match="repack_r"):
        convert(model, tmp_path / "prj", io_type="io_stream", log=lambda *_: None)
    assert not (tmp_path / "prj").exists()
