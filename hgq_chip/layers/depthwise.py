"""HDepthwiseConv1D / HDepthwiseConv2D: depthwise convolutions with per-weight bit-widths.

Keras' depthwise convolution convolves each input channel ``c`` with its own
``depth_multiplier`` kernels; output channel ``c * depth_multiplier + m`` is input channel
``c`` convolved with ``kernel[..., c, m]`` (kernel shape ``(*kernel_size, channels,
depth_multiplier)``). The quantized forward pass is ``activation(dwconv(q_in(x), q_w(W)) +
q_b(b))`` as for :class:`~hgq_chip.layers.HConv1D`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from .conv import QuantizedConvMixin, refuse_causal_padding


def block_diagonal_kernel(kernel) -> np.ndarray:
    """The ordinary convolution kernel equal to a depthwise one.

    ``kernel``: shape ``(*kernel_size, channels, depth_multiplier)``; returns shape
    ``(*kernel_size, channels, channels * depth_multiplier)`` with
    ``out[..., c, c * depth_multiplier + m] = kernel[..., c, m]`` and zeros elsewhere, so a
    convolution with it computes the depthwise convolution (the zeros add exact zeros).
    """
    kernel = np.asarray(kernel)
    *taps, channels, multiplier = kernel.shape
    out = np.zeros((*taps, channels, channels * multiplier), kernel.dtype)
    for c in range(channels):
        out[..., c, c * multiplier:(c + 1) * multiplier] = kernel[..., c, :]
    return out


class QuantizedDepthwiseMixin(QuantizedConvMixin):
    """What the depthwise layers share with HConv (quantizers, EBOPs by convolving bit maps),
    with Keras' depthwise convolution as the kernel operation.

    EBOPs: every output position has its own multipliers in io_parallel, so the cost is the
    sum over outputs and taps of ``bits_in[input pixel, c] * bits_w[tap, c, m]``: the depthwise
    convolution of the input bit-width map with the kernel bit-width map, summed.
    """

    def _validate_depthwise(self, input_quantizer, kernel_quantizer, bias_quantizer, beta0):
        self._check_conv_layout()
        self._make_quantizers(input_quantizer, kernel_quantizer, bias_quantizer, beta0)

    def _apply_kernel(self, x, kernel):
        """Keras' depthwise convolution of ``x`` (batch first) with ``kernel`` (the forward pass)."""
        return ops.depthwise_conv(x, kernel, strides=self.strides, padding=self.padding,
                                  dilation_rate=self.dilation_rate, data_format=self.data_format)

    def convolution_op(self, x, kernel):
        """The same depthwise convolution for a NumPy ``kernel``, as the ordinary convolution with
        its block-diagonal kernel: used in float64 by the converter's bounds and the exact EBOPs,
        where TensorFlow's depthwise kernel refuses unequal row and column strides."""
        return ops.conv(x, block_diagonal_kernel(kernel), strides=self.strides, padding=self.padding,
                        dilation_rate=self.dilation_rate, data_format=self.data_format)

    def ebops_exact(self) -> int:
        bits_in = self.iq.fixed_format().width.astype(np.float64)
        bits_w = self.kq.fixed_format(self.fused_kernel()).width.astype(np.float64)
        # Integer bit counts in float64: every partial sum is an integer far below 2**53, so exact.
        total = ops.sum(self.convolution_op(self._bit_map(bits_in), bits_w))
        return int(np.asarray(ops.convert_to_numpy(total)))


@keras.saving.register_keras_serializable(package="hgq_chip")
class HDepthwiseConv1D(QuantizedDepthwiseMixin, keras.layers.DepthwiseConv1D):
    """``keras.layers.DepthwiseConv1D`` whose input, kernel and bias carry trainable bit-widths.

    Takes every DepthwiseConv1D argument (``depth_multiplier`` included; channels_last,
    'valid'/'same' padding), plus ``input_quantizer``, ``kernel_quantizer``,
    ``bias_quantizer`` and ``beta0`` as :class:`~hgq_chip.layers.HDense` does.
    Input ``(batch, steps, channels)``; output ``(batch, new_steps, channels * depth_multiplier)``.
    Raises ValueError for channels_first, 'causal' padding or a non-exact fused activation.
    """

    def __init__(self, kernel_size, *args, input_quantizer=None, kernel_quantizer=None, bias_quantizer=None, beta0=0.0,
                 **kwargs):
        refuse_causal_padding(type(self), 1, args, kwargs)
        super().__init__(kernel_size, *args, **kwargs)
        self._validate_depthwise(input_quantizer, kernel_quantizer, bias_quantizer, beta0)


@keras.saving.register_keras_serializable(package="hgq_chip")
class HDepthwiseConv2D(QuantizedDepthwiseMixin, keras.layers.DepthwiseConv2D):
    """``keras.layers.DepthwiseConv2D`` whose input, kernel and bias carry trainable bit-widths.

    As :class:`HDepthwiseConv1D`; input ``(batch, rows, cols, channels)``, output
    ``(batch, new_rows, new_cols, channels * depth_multiplier)``.
    """

    def __init__(self, kernel_size, *args, input_quantizer=None, kernel_quantizer=None, bias_quantizer=None, beta0=0.0,
                 **kwargs):
        refuse_causal_padding(type(self), 1, args, kwargs)
        super().__init__(kernel_size, *args, **kwargs)
        self._validate_depthwise(input_quantizer, kernel_quantizer, bias_quantizer, beta0)
