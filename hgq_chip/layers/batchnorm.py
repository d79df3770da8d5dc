"""Dense/Conv layers with a BatchNormalization folded into their quantized kernel and bias.

The firmware has no batch normalization: it multiplies by the folded kernel
W' = W * gamma / sqrt(var + eps) and adds b' = (b - mean) * gamma / sqrt(var + eps) + beta.
So the layer quantizes W' and b' (not W and b) and the bits it trains are the bits the chip
gets. In training the fold uses the batch statistics of x_q @ W + b (as HGQ v1 does) and
updates the moving statistics like ``keras.layers.BatchNormalization``; at inference it
uses the moving statistics.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from ..quantizers.dtype_policy import check_float64_available
from .conv import HConv1D, HConv2D
from .dense import HDense

# The fold runs in float64 and is rounded to float32 once, before quantization (then cast to
# the compute dtype, exactly, in a float64 model): the float32 value does not depend on how a
# backend or XLA orders the float64 operations, so NumPy (``fused_kernel``) and the compiled
# model quantize exactly the same numbers.
FOLD_DTYPE = "float64"
ROUNDED_FOLD_DTYPE = "float32"


class BatchNormFoldMixin:
    """Mixed in before HDense/HConv*: adds the BatchNormalization arguments and weights."""

    def __init__(
        self,
        *args,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        # JAX without x64 would fold in float32, where the rounded result depends on how the
        # compiled step orders the operations: Keras and the converter could disagree.
        check_float64_available(self, "folds BatchNormalization into its kernel in float64")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        if not 0.0 <= self.momentum <= 1.0:
            raise ValueError(f"{self.name}: momentum must be in [0, 1], got {momentum}")
        if self.epsilon <= 0.0:
            raise ValueError(f"{self.name}: epsilon must be > 0, got {epsilon}")
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = keras.initializers.get(beta_initializer)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.moving_mean_initializer = keras.initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = keras.initializers.get(moving_variance_initializer)
        self.beta_regularizer = keras.regularizers.get(beta_regularizer)
        self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)
        self.beta_constraint = keras.constraints.get(beta_constraint)
        self.gamma_constraint = keras.constraints.get(gamma_constraint)

    def build(self, input_shape):
        super().build(input_shape)
        channels = (int(self.kernel.shape[-1]),)
        # The folded bias exists even without a layer bias: it carries beta - mean * scale.
        if not self.bq.built:
            self.bq.build(channels)
        # ``beta`` is already the EBOPs weight of every quantized layer, hence the bn_ prefix.
        self.bn_gamma = None
        self.bn_beta = None
        if self.scale:
            self.bn_gamma = self.add_weight(
                name="bn_gamma",
                shape=channels,
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
            )
        if self.center:
            self.bn_beta = self.add_weight(
                name="bn_beta",
                shape=channels,
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
            )
        self.moving_mean = self.add_weight(
            name="moving_mean", shape=channels, initializer=self.moving_mean_initializer, trainable=False
        )
        self.moving_variance = self.add_weight(
            name="moving_variance", shape=channels, initializer=self.moving_variance_initializer, trainable=False
        )

    def _fold(self, mean, variance):
        """Folded (kernel, bias) in the compute dtype, from the given statistics."""
        mean = ops.cast(mean, FOLD_DTYPE)
        std = ops.sqrt(ops.cast(variance, FOLD_DTYPE) + self.epsilon)
        factor = (ops.cast(self.bn_gamma, FOLD_DTYPE) if self.scale else 1.0) / std
        kernel = ops.cast(self.kernel, FOLD_DTYPE) * factor
        bias = -mean if not self.use_bias else ops.cast(self.bias, FOLD_DTYPE) - mean
        bias = bias * factor
        if self.center:
            bias = bias + ops.cast(self.bn_beta, FOLD_DTYPE)
        return tuple(ops.cast(ops.cast(v, ROUNDED_FOLD_DTYPE), self.compute_dtype) for v in (kernel, bias))

    def _batch_statistics(self, x):
        y = self._apply_kernel(x, self.kernel)
        if self.use_bias:
            y = y + self.bias
        mean, variance = ops.moments(y, axes=tuple(range(len(y.shape) - 1)))
        keep = self.momentum
        self.moving_mean.assign(self.moving_mean * keep + ops.stop_gradient(mean) * (1.0 - keep))
        self.moving_variance.assign(self.moving_variance * keep + ops.stop_gradient(variance) * (1.0 - keep))
        return mean, variance

    def call(self, inputs, training=None):
        x = self.iq(inputs, training=training)
        if training:
            kernel, bias = self._fold(*self._batch_statistics(x))
            self.add_loss(self._weighted_cost(self._ebops_surrogate_for(kernel)))
        else:
            kernel, bias = self._fold(self.moving_mean, self.moving_variance)
        y = self._apply_kernel(x, self.kq(kernel)) + self.bq(bias)
        return self.activation(y)

    def fused_kernel(self) -> np.ndarray:
        """The folded float kernel (moving statistics) that ``kq`` quantizes, as ``call`` does."""
        kernel, _ = self._fold(self.moving_mean, self.moving_variance)
        return np.asarray(ops.convert_to_numpy(kernel))

    def fused_bias(self) -> np.ndarray:
        """The folded float bias (moving statistics) that ``bq`` quantizes, as ``call`` does."""
        _, bias = self._fold(self.moving_mean, self.moving_variance)
        return np.asarray(ops.convert_to_numpy(bias))

    def ebops_surrogate(self):
        kernel, _ = self._fold(self.moving_mean, self.moving_variance)
        return self._ebops_surrogate_for(kernel)

    def get_config(self):
        config = super().get_config()
        config.update(
            momentum=self.momentum,
            epsilon=self.epsilon,
            center=self.center,
            scale=self.scale,
            beta_initializer=keras.initializers.serialize(self.beta_initializer),
            gamma_initializer=keras.initializers.serialize(self.gamma_initializer),
            moving_mean_initializer=keras.initializers.serialize(self.moving_mean_initializer),
            moving_variance_initializer=keras.initializers.serialize(self.moving_variance_initializer),
            beta_regularizer=keras.regularizers.serialize(self.beta_regularizer),
            gamma_regularizer=keras.regularizers.serialize(self.gamma_regularizer),
            beta_constraint=keras.constraints.serialize(self.beta_constraint),
            gamma_constraint=keras.constraints.serialize(self.gamma_constraint),
        )
        return config


@keras.saving.register_keras_serializable(package="hgq_chip")
class HDenseBatchNorm(BatchNormFoldMixin, HDense):
    """HDense followed by a BatchNormalization, folded; takes the arguments of both."""


@keras.saving.register_keras_serializable(package="hgq_chip")
class HConv1DBatchNorm(BatchNormFoldMixin, HConv1D):
    """HConv1D followed by a BatchNormalization, folded; takes the arguments of both."""


@keras.saving.register_keras_serializable(package="hgq_chip")
class HConv2DBatchNorm(BatchNormFoldMixin, HConv2D):
    """HConv2D followed by a BatchNormalization, folded; takes the arguments of both."""
