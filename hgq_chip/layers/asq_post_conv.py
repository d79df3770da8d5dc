"""ASQConv1D / ASQConv2D: convolutions with LSQ/ASQ input codes and LSQ/POT/POST weights.

The arithmetic is ASQDense's (``asq_post.py``) with the matrix product replaced by the
convolution: one β per sample (from the whole input map), codes for every input element,
each output position accumulates its patch of codes with shifts and adds, then the
rescale by β · 2**E and the bias. The firmware (``firmware_templates/nnet_asq_post.h``)
computes x·c once per input element and shares it between every patch that reads it.
"""

from __future__ import annotations

import keras
import numpy as np

from .asq_post import ASQPostMixin


class _ASQConvMixin(ASQPostMixin):
    """Validation and sizes shared by the 1D and 2D forms (channels_last, 'valid', no dilation)."""

    def _validate_asq_conv(self, input_quantizer, kernel_quantizer, bias_quantizer, beta0):
        self._check_keras_options()
        unsupported = {
            "data_format": (self.data_format, "channels_last"),
            "padding": (self.padding, "valid"),
            "groups": (self.groups, 1),
            "dilation_rate": (tuple(self.dilation_rate), (1,) * len(self.kernel_size)),
        }
        for option, (value, supported) in unsupported.items():
            if value != supported:
                raise ValueError(
                    f"{self.name}: {option}={value!r} has no ASQ/POST firmware; use {option}={supported!r} "
                    "(pad with keras.layers.ZeroPadding1D/2D before the layer for 'same')"
                )
        self._make_quantizers(input_quantizer, kernel_quantizer, bias_quantizer, beta0)

    def build(self, input_shape):
        feature_shape = tuple(input_shape[1:])
        if any(d is None for d in feature_shape):
            raise ValueError(f"{self.name}: needs a fixed input shape, got {tuple(input_shape)}")
        super().build(input_shape)
        self.input_feature_shape = feature_shape
        self.output_feature_shape = tuple(self.compute_output_shape(input_shape)[1:])
        self._build_asq_post(input_shape)

    def _apply_kernel(self, x, kernel):
        return self.convolution_op(x, kernel)

    def n_input_elements(self) -> int:
        return int(np.prod(self.input_feature_shape))

    def n_output_elements(self) -> int:
        return int(np.prod(self.output_feature_shape))


@keras.saving.register_keras_serializable(package="hgq_chip")
class ASQConv1D(_ASQConvMixin, keras.layers.Conv1D):
    """``keras.layers.Conv1D`` with ASQDense's quantizers (see :class:`~hgq_chip.layers.ASQDense`)."""

    def __init__(self, filters, kernel_size, *args, input_quantizer=None, kernel_quantizer=None, bias_quantizer=None,
                 beta0=0.0, **kwargs):
        super().__init__(filters, kernel_size, *args, **kwargs)
        self._validate_asq_conv(input_quantizer, kernel_quantizer, bias_quantizer, beta0)


@keras.saving.register_keras_serializable(package="hgq_chip")
class ASQConv2D(_ASQConvMixin, keras.layers.Conv2D):
    """``keras.layers.Conv2D`` with ASQDense's quantizers (see :class:`~hgq_chip.layers.ASQDense`)."""

    def __init__(self, filters, kernel_size, *args, input_quantizer=None, kernel_quantizer=None, bias_quantizer=None,
                 beta0=0.0, **kwargs):
        super().__init__(filters, kernel_size, *args, **kwargs)
        self._validate_asq_conv(input_quantizer, kernel_quantizer, bias_quantizer, beta0)
