"""HSeparableConv1D / HSeparableConv2D: separable convolutions with per-weight bit-widths and a
trained intermediate format.

Keras' separable convolution is a depthwise convolution (``depthwise_kernel``
``(*kernel_size, channels, depth_multiplier)``, no bias) followed by a pointwise (1x1)
convolution (``pointwise_kernel`` ``(1[, 1], channels * depth_multiplier, filters)``) and the
bias. Here every phase is quantized:

    activation(pw(q_mid(dw(q_in(x), q_dw(Wd))), q_pw(Wp)) + q_b(b))

``q_mid`` is an activation quantizer with trained bit-widths (per element by default) on the
depthwise output: the firmware holds the intermediate tensor in its format, so the two phases
are two exact fixed-point convolutions (``conversion/rules/separable.py``).

EBOPs are those of both phases: the depthwise convolution of the input bit-width map with the
depthwise kernel's bit-widths, plus the 1x1 convolution of the intermediate bit-width map with
the pointwise kernel's bit-widths, each summed over outputs and taps (every output position has
its own multipliers in io_parallel).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from ..quantizers.hgq import ActivationQuantizer, WeightQuantizer
from .base import DEFAULT_INPUT_QUANTIZER, DEFAULT_KERNEL_QUANTIZER, merged_config
from .conv import QuantizedConvMixin, refuse_causal_padding
from .depthwise import block_diagonal_kernel


class QuantizedSeparableMixin(QuantizedConvMixin):
    """Quantizers ``iq`` (input), ``dq`` (depthwise kernel), ``mq`` (depthwise output: the
    intermediate), ``pq`` (pointwise kernel) and ``bq`` (bias); mixed in before Keras'
    SeparableConv1D/2D."""

    def __init__(self, filters, kernel_size, *args, input_quantizer=None, depthwise_quantizer=None,
                 intermediate_quantizer=None, pointwise_quantizer=None, bias_quantizer=None, beta0=0.0, **kwargs):
        """The Keras parent's arguments (its ``padding`` is positional argument 4) plus the five
        quantizer configs and ``beta0``; shared by HSeparableConv1D and HSeparableConv2D."""
        refuse_causal_padding(type(self), 1, args, kwargs)
        super().__init__(filters, kernel_size, *args, **kwargs)
        given = (input_quantizer, depthwise_quantizer, intermediate_quantizer, pointwise_quantizer, bias_quantizer)
        self._validate_separable(dict(zip(_QUANTIZER_ARGS, given)), beta0)

    def _validate_separable(self, quantizers: dict, beta0):
        self._check_conv_layout()
        self._make_quantizers(quantizers["input_quantizer"], quantizers["depthwise_quantizer"],
                              quantizers["bias_quantizer"], beta0)
        self.dq = self.kq  # the depthwise kernel's quantizer (kq for the shared helpers)
        self.intermediate_quantizer_config = merged_config(DEFAULT_INPUT_QUANTIZER, quantizers["intermediate_quantizer"])
        self.pointwise_quantizer_config = merged_config(DEFAULT_KERNEL_QUANTIZER, quantizers["pointwise_quantizer"])
        self.mq = ActivationQuantizer(name="mq", dtype=self.dtype_policy, **self.intermediate_quantizer_config)
        self.pq = WeightQuantizer(name="pq", dtype=self.dtype_policy, **self.pointwise_quantizer_config)

    def build(self, input_shape):
        feature_shape = self._check_fixed_shape(input_shape)
        super(QuantizedConvMixin, self).build(input_shape)  # Keras' SeparableConv: both kernels and the bias
        self.input_feature_shape = feature_shape
        self._build_quantizers(input_shape, self.depthwise_kernel.shape, self.bias.shape if self.use_bias else None)
        self.intermediate_shape = (*self.compute_output_shape(input_shape)[1:-1],
                                   feature_shape[-1] * self.depth_multiplier)
        self.mq.build((None, *self.intermediate_shape))
        self.pq.build(self.pointwise_kernel.shape)

    def depthwise_op(self, x, kernel):
        """The depthwise phase for a NumPy ``kernel`` (float64 in the converter's bounds and the
        exact EBOPs): the ordinary convolution with its block-diagonal kernel."""
        return ops.conv(x, block_diagonal_kernel(kernel), strides=self.strides, padding=self.padding,
                        dilation_rate=self.dilation_rate, data_format=self.data_format)

    def pointwise_op(self, x, kernel):
        """The pointwise (1x1, stride 1) phase."""
        return ops.conv(x, kernel, strides=1, padding="valid", data_format=self.data_format)

    def _depthwise(self, x, kernel):
        return ops.depthwise_conv(x, kernel, strides=self.strides, padding=self.padding,
                                  dilation_rate=self.dilation_rate, data_format=self.data_format)

    def call(self, inputs, training=None):
        """activation(pw(q_mid(dw(q_in(x), q_dw(Wd))), q_pw(Wp)) + q_b(b))."""
        x = self.iq(inputs, training=training)
        middle = self.mq(self._depthwise(x, self.dq(self.depthwise_kernel)), training=training)
        y = ops.conv(middle, self.pq(self.pointwise_kernel), strides=1, padding="valid", data_format=self.data_format)
        if self.use_bias:
            y = y + self.bq(self.bias)
        self._add_cost(training)
        return self.activation(y)

    def quantizers(self):
        found = [self.iq, self.dq, self.mq, self.pq]
        if self.bq.built:
            found.append(self.bq)
        return found

    def fused_kernel(self) -> np.ndarray:
        """The float pointwise kernel ``pq`` quantizes."""
        return np.asarray(self.pointwise_kernel.numpy())

    def fused_depthwise_kernel(self) -> np.ndarray:
        """The float depthwise kernel ``dq`` quantizes."""
        return np.asarray(self.depthwise_kernel.numpy())

    def ebops_surrogate(self):
        bits_in = self._bit_map(self.iq.bits_surrogate())
        depthwise = ops.sum(self._depthwise(bits_in, self.dq.bits_surrogate(self.depthwise_kernel)))
        bits_mid = ops.broadcast_to(self.mq.bits_surrogate(), self.intermediate_shape)[None]
        pointwise = ops.sum(ops.conv(bits_mid, self.pq.bits_surrogate(self.pointwise_kernel), strides=1,
                                     padding="valid", data_format=self.data_format))
        return depthwise + pointwise

    def ebops_exact(self) -> int:
        """Both phases' EBOPs (bits x bits summed over every product), an int."""
        bits_in = self.iq.fixed_format().width.astype(np.float64)
        bits_dw = self.dq.fixed_format(self.fused_depthwise_kernel()).width.astype(np.float64)
        bits_mid = np.broadcast_to(self.mq.fixed_format().width.astype(np.float64), self.intermediate_shape)[None]
        bits_pw = self.pq.fixed_format(self.fused_kernel()).width.astype(np.float64)
        # Integer bit counts in float64: every partial sum is an integer far below 2**53, so exact.
        total = ops.sum(self.depthwise_op(self._bit_map(bits_in), bits_dw)) + ops.sum(self.pointwise_op(bits_mid, bits_pw))
        return int(np.asarray(ops.convert_to_numpy(total)))

    def get_config(self):
        config = super().get_config()
        config.pop("kernel_quantizer")
        config.update(depthwise_quantizer=self.kernel_quantizer_config,
                      intermediate_quantizer=self.intermediate_quantizer_config,
                      pointwise_quantizer=self.pointwise_quantizer_config)
        return config


_QUANTIZER_ARGS = ("input_quantizer", "depthwise_quantizer", "intermediate_quantizer", "pointwise_quantizer",
                   "bias_quantizer")


@keras.saving.register_keras_serializable(package="hgq_chip")
class HSeparableConv1D(QuantizedSeparableMixin, keras.layers.SeparableConv1D):
    """``keras.layers.SeparableConv1D`` with trainable bit-widths on the input, both kernels, the
    intermediate (depthwise output) and the bias.

    Takes every SeparableConv1D argument (``depth_multiplier``, strides, channels_last,
    'valid'/'same' padding, activation 'relu' or 'linear'), plus ``input_quantizer``,
    ``depthwise_quantizer``, ``intermediate_quantizer``, ``pointwise_quantizer``,
    ``bias_quantizer`` (configs as :class:`~hgq_chip.layers.HDense`'s) and ``beta0``.
    Input ``(batch, steps, channels)``; output ``(batch, new_steps, filters)``. Raises ValueError
    for channels_first, 'causal' padding or a non-exact fused activation.
    """


@keras.saving.register_keras_serializable(package="hgq_chip")
class HSeparableConv2D(QuantizedSeparableMixin, keras.layers.SeparableConv2D):
    """``keras.layers.SeparableConv2D`` with trainable bit-widths, as :class:`HSeparableConv1D`;
    input ``(batch, rows, cols, channels)``, output ``(batch, new_rows, new_cols, filters)``."""
