"""HConv1D / HConv2D: keras convolutions with quantized input, kernel and bias, and their EBOPs."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from .base import QuantizedLayerMixin


CAUSAL_ADVICE = ("use 'valid' or 'same' (for causal padding put a keras.layers.ZeroPadding1D((k - 1, 0)) before a "
                 "'valid' conv)")


def refuse_causal_padding(layer_class: type, padding_position: int, args: tuple, kwargs: dict) -> None:
    """ValueError naming the layer and the fix for ``padding='causal'`` in a constructor call whose
    Keras parent refuses it itself with a generic message (DepthwiseConv1D, SeparableConv1D/2D);
    ``padding_position``: the index of ``padding`` among the positional ``args`` after the first."""
    padding = kwargs.get("padding", args[padding_position] if len(args) > padding_position else None)
    if isinstance(padding, str) and padding.lower() == "causal":
        name = kwargs.get("name") or layer_class.__name__
        raise ValueError(f"{name}: padding='causal' is not supported; {CAUSAL_ADVICE}")


class QuantizedConvMixin(QuantizedLayerMixin):
    """What HConv1D and HConv2D share; mixed in before the Keras convolution class.

    Only channels_last, ungrouped convolutions with 'valid' or 'same' padding: these are
    the ones with an exact io_parallel firmware counterpart.
    """

    def _check_conv_layout(self):
        """ValueError unless channels_last with 'valid'/'same' padding (the Keras options checked
        too): what every convolution family here (plain, depthwise, separable) requires."""
        self._check_keras_options()
        if self.data_format != "channels_last":
            raise ValueError(
                f"{self.name}: data_format={self.data_format!r} is not supported; use "
                "data_format='channels_last' (transpose the input with keras.layers.Permute if needed)"
            )
        if self.padding not in ("valid", "same"):
            raise ValueError(f"{self.name}: padding={self.padding!r} is not supported; {CAUSAL_ADVICE}")

    def _check_fixed_shape(self, input_shape) -> tuple:
        """``input_shape`` without the batch axis; ValueError unless every dimension of it is known."""
        feature_shape = tuple(input_shape[1:])
        if any(d is None for d in feature_shape):
            raise ValueError(
                f"{self.name}: needs a fixed input shape, got {tuple(input_shape)}; every non-batch "
                "dimension sets the firmware's size and the EBOPs, e.g. keras.Input(shape=(32, 32, 3))"
            )
        return feature_shape

    def _validate_conv(self, input_quantizer, kernel_quantizer, bias_quantizer, beta0):
        self._check_conv_layout()
        if self.groups != 1:
            raise ValueError(f"{self.name}: groups={self.groups} is not supported; use groups=1")
        self._make_quantizers(input_quantizer, kernel_quantizer, bias_quantizer, beta0)

    def build(self, input_shape):
        feature_shape = self._check_fixed_shape(input_shape)
        super().build(input_shape)
        self.input_feature_shape = feature_shape
        self._build_quantizers(input_shape, self.kernel.shape, self.bias.shape if self.use_bias else None)

    def _apply_kernel(self, x, kernel):
        return self.convolution_op(x, kernel)

    def fused_kernel(self) -> np.ndarray:
        """The float kernel that ``kq`` quantizes (the converter reads this, not ``kernel``)."""
        return np.asarray(self.kernel.numpy())

    def fused_bias(self) -> np.ndarray | None:
        """The float bias that ``bq`` quantizes, or None without a bias."""
        return np.asarray(self.bias.numpy()) if self.use_bias else None

    # EBOPs: in io_parallel every output position has its own multipliers, so the cost is
    # the sum over outputs and taps of bits_in[input pixel] * bits_w[tap] -- which is the
    # convolution of the input bit-width map with the kernel bit-width map, summed.
    def _bit_map(self, bits_in):
        return ops.broadcast_to(bits_in, self.input_feature_shape)[None]

    def _ebops_surrogate_for(self, kernel):
        bits_in = self._bit_map(self.iq.bits_surrogate())
        return ops.sum(self._apply_kernel(bits_in, self.kq.bits_surrogate(kernel)))

    def ebops_surrogate(self):
        return self._ebops_surrogate_for(self.kernel)

    def ebops_exact(self) -> int:
        bits_in = self.iq.fixed_format().width.astype(np.float64)
        bits_w = self.kq.fixed_format(self.fused_kernel()).width.astype(np.float64)
        # Integer bit counts in float64: every partial sum is an integer far below 2**53, so exact.
        total = ops.sum(self._apply_kernel(self._bit_map(bits_in), bits_w))
        return int(np.asarray(ops.convert_to_numpy(total)))

    def get_config(self):
        config = super().get_config()
        config.update(self._quantizer_config())
        return config


@keras.saving.register_keras_serializable(package="hgq_chip")
class HConv1D(QuantizedConvMixin, keras.layers.Conv1D):
    """``keras.layers.Conv1D`` whose input, kernel and bias carry trainable bit-widths.

    Takes every Conv1D argument (channels_last, groups=1, 'valid'/'same' padding), plus
    quantizer configs and ``beta0`` as :class:`~hgq_chip.layers.HDense` does.
    """

    def __init__(
        self, filters, kernel_size, *args, input_quantizer=None, kernel_quantizer=None, bias_quantizer=None, beta0=0.0, **kwargs
    ):
        super().__init__(filters, kernel_size, *args, **kwargs)
        self._validate_conv(input_quantizer, kernel_quantizer, bias_quantizer, beta0)


@keras.saving.register_keras_serializable(package="hgq_chip")
class HConv2D(QuantizedConvMixin, keras.layers.Conv2D):
    """``keras.layers.Conv2D`` whose input, kernel and bias carry trainable bit-widths.

    Takes every Conv2D argument (channels_last, groups=1, 'valid'/'same' padding), plus
    quantizer configs and ``beta0`` as :class:`~hgq_chip.layers.HDense` does.
    """

    def __init__(
        self, filters, kernel_size, *args, input_quantizer=None, kernel_quantizer=None, bias_quantizer=None, beta0=0.0, **kwargs
    ):
        super().__init__(filters, kernel_size, *args, **kwargs)
        self._validate_conv(input_quantizer, kernel_quantizer, bias_quantizer, beta0)
