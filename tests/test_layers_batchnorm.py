"""BatchNorm-folded layers: the fold, batch vs moving statistics, EBOPs, gradients, save/load."""

import keras
import numpy as np
import pytest
from keras import ops
from reference_conv import conv_np
from round_trip import assert_layer_round_trip

from gradients import gradients
from hgq_chip.calibration import calibrate
from hgq_chip.fixed.quantize_np import round_scaled
from hgq_chip.layers import HConv1DBatchNorm, HConv2DBatchNorm, HDenseBatchNorm

pytestmark = pytest.mark.keras_level  # also run under JAX in CI (docs/backends.md, "Backends in CI")

CASES = [
    # (class, input shape, layer arguments)
    (HDenseBatchNorm, (6,), dict(units=4, activation="relu")),
    (HDenseBatchNorm, (6,), dict(units=3, use_bias=False, center=False)),
    (HConv1DBatchNorm, (8, 2), dict(filters=3, kernel_size=3, padding="same", scale=False)),
    (HConv2DBatchNorm, (5, 5, 2), dict(filters=3, kernel_size=2, strides=2, activation="relu")),
]
# Gammas of order one keep the folded kernel well above the quantization step.
GAMMA_INIT = keras.initializers.RandomUniform(0.5, 2.0, seed=3)


def single_layer_model(cls, input_shape, **kwargs):
    inputs = keras.Input(input_shape)
    layer = cls(**kwargs)
    return keras.Model(inputs, layer(inputs)), layer


def apply_kernel_np(layer, x, kernel):
    if isinstance(layer, HDenseBatchNorm):
        return np.asarray(x, np.float64) @ np.asarray(kernel, np.float64)
    return conv_np(x, kernel, layer.strides, layer.padding, layer.dilation_rate)


def fold_np(layer, mean, variance):
    """The fold in float64, cast once to float32 (as the layer documents)."""
    as64 = lambda v: np.asarray(v, np.float64)  # noqa: E731
    factor = (as64(layer.bn_gamma.numpy()) if layer.scale else 1.0) / np.sqrt(as64(variance) + layer.epsilon)
    kernel = as64(layer.kernel.numpy()) * factor
    bias = (as64(layer.bias.numpy()) if layer.use_bias else 0.0) - as64(mean)
    bias = bias * factor + (as64(layer.bn_beta.numpy()) if layer.center else 0.0)
    return kernel.astype(np.float32), bias.astype(np.float32)


def finish(layer, y):
    if layer.get_config()["activation"] == "relu":
        y = np.maximum(y, 0.0)
    return y.astype(np.float32)


def train_a_little(model, layer, input_shape, rng):
    for q in layer.quantizers():
        q.f.assign(rng.integers(1, 5, q.f.shape).astype("float32"))
    x = rng.uniform(-2.0, 2.0, (64, *input_shape)).astype("float32")
    y = rng.normal(size=(64, *model.output.shape[1:])).astype("float32")
    model.compile(keras.optimizers.SGD(0.05), "mse")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    calibrate(model, x)
    return x


@pytest.mark.parametrize("cls,input_shape,kwargs", CASES)
def test_inference_equals_numpy_fold_after_training(cls, input_shape, kwargs):
    rng = np.random.default_rng(11)
    model, layer = single_layer_model(
        cls, input_shape, momentum=0.5, gamma_initializer=GAMMA_INIT, beta_initializer="random_normal", **kwargs
    )
    moving_before = layer.moving_mean.numpy().copy()
    x = train_a_little(model, layer, input_shape, rng)
    assert not np.array_equal(layer.moving_mean.numpy(), moving_before)

    kernel, bias = fold_np(layer, layer.moving_mean.numpy(), layer.moving_variance.numpy())
    assert np.array_equal(layer.fused_kernel(), kernel)
    assert np.array_equal(layer.fused_bias(), bias)
    y = apply_kernel_np(layer, layer.iq.quantize_np(x), layer.kq.quantized(kernel)) + layer.bq.quantized(bias)
    expected = finish(layer, y)
    assert np.array_equal(keras.ops.convert_to_numpy(model(x, training=False)), expected)
    assert np.array_equal(model.predict(x, verbose=0), expected)


@pytest.mark.parametrize("cls,input_shape,kwargs", CASES)
def test_training_folds_batch_statistics_and_updates_moving_ones(cls, input_shape, kwargs):
    rng = np.random.default_rng(12)
    model, layer = single_layer_model(
        cls, input_shape, momentum=0.75, gamma_initializer=GAMMA_INIT, bias_initializer="random_normal", **kwargs
    )
    for q in layer.quantizers():
        q.f.assign(rng.integers(1, 5, q.f.shape).astype("float32"))
    x = rng.uniform(-2.0, 2.0, (16, *input_shape)).astype("float32")
    f_in = layer.iq.rounded_f()
    x_q = (round_scaled(x * 2.0**f_in, layer.iq.rounding) / 2.0**f_in).astype("float32")
    # Batch statistics of the float pre-activation, with the same keras ops the layer uses.
    pre = layer._apply_kernel(x_q, layer.kernel)
    pre = pre + layer.bias if layer.use_bias else pre
    mean, variance = (ops.convert_to_numpy(v) for v in ops.moments(pre, axes=tuple(range(len(pre.shape) - 1))))
    moving_mean, moving_variance = layer.moving_mean.numpy(), layer.moving_variance.numpy()

    out = keras.ops.convert_to_numpy(layer(x, training=True))

    kernel, bias = fold_np(layer, mean, variance)
    y = apply_kernel_np(layer, x_q, layer.kq.quantized(kernel)) + layer.bq.quantized(bias)
    assert np.array_equal(out, finish(layer, y))
    m = np.float32(0.75)
    assert np.array_equal(layer.moving_mean.numpy(), moving_mean * m + mean * np.float32(0.25))
    assert np.array_equal(layer.moving_variance.numpy(), moving_variance * m + variance * np.float32(0.25))


def test_ebops_exact_uses_the_folded_kernel():
    # var 0.25 + eps 0.75 = 1 and gamma 4, so the folded kernel is exactly 4 * 0.5 = 2.
    model, layer = single_layer_model(
        HDenseBatchNorm, (1,), units=1, epsilon=0.75, center=False,
        gamma_initializer=keras.initializers.Constant(4.0),
        moving_variance_initializer=keras.initializers.Constant(0.25),
        input_quantizer={"init_f": 2.0}, kernel_quantizer={"init_f": 2.0},
    )
    layer.kernel.assign([[0.5]])
    calibrate(model, np.array([[1.5]], np.float32))
    assert np.array_equal(layer.fused_kernel(), [[2.0]])
    # Input 1.5 at f=2 is m=6 (3 bits); folded weight 2.0 at f=2 is m=8 (4 bits); the raw 0.5 would be 2 bits.
    assert layer.ebops_exact() == 12


@pytest.mark.parametrize("cls,input_shape,kwargs", CASES)
def test_every_trainable_weight_gets_a_finite_gradient(cls, input_shape, kwargs):
    rng = np.random.default_rng(13)
    _, layer = single_layer_model(cls, input_shape, beta0=1e-4, beta_initializer="random_normal", **kwargs)
    x = rng.uniform(-2.0, 2.0, (8, *input_shape)).astype("float32")
    wanted = [layer.kernel, layer.iq.f, layer.kq.f, layer.bq.f]
    wanted += [w for w in (layer.bn_gamma, layer.bn_beta) if w is not None]

    def loss(t):
        y = layer(t, training=True)  # the call adds the EBOPs loss to layer.losses
        return ops.sum(ops.square(y)) + ops.sum(layer.losses)

    _, grads, _ = gradients(loss, wanted, [x])
    for var, grad in zip(wanted, grads):
        assert np.all(np.isfinite(grad)) and np.any(grad != 0), var.path


@pytest.mark.parametrize("kwargs,message", [(dict(momentum=1.5), "momentum"), (dict(epsilon=0.0), "epsilon")])
def test_invalid_batchnorm_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HDenseBatchNorm(3, **kwargs)


@pytest.mark.parametrize("cls,input_shape,kwargs", CASES[1:])
def test_save_load_round_trip(cls, input_shape, kwargs, tmp_path):
    rng = np.random.default_rng(14)
    model, layer = single_layer_model(cls, input_shape, momentum=0.5, **kwargs)
    x = train_a_little(model, layer, input_shape, rng)
    twin = assert_layer_round_trip(model, layer, x, tmp_path / "model.keras")
    assert type(twin) is cls
    assert np.array_equal(twin.fused_kernel(), layer.fused_kernel())
