"""HDense: keras Dense with quantized input, kernel and bias, and its EBOPs."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from .base import QuantizedLayerMixin


@keras.saving.register_keras_serializable(package="hgq_chip")
class HDense(QuantizedLayerMixin, keras.layers.Dense):
    """``keras.layers.Dense`` whose input, kernel and bias carry trainable bit-widths.

    Takes every Dense argument, plus quantizer configs (dicts of
    :class:`~hgq_chip.quantizers.ActivationQuantizer` / ``WeightQuantizer`` arguments)
    and ``beta0``, the initial weight of this layer's EBOPs in the loss.

    Input shape: ``(batch, ..., in_features)``; output: ``(batch, ..., units)``. In training it
    adds one loss, ``beta * ebops_surrogate()`` (EBOPs: sum over multiplications of input bits x
    weight bits, HGQ arXiv:2405.00645); ``ebops_exact()`` is the integer count from the formats.
    Raises ValueError for a non-exact fused activation, LoRA or ``quantization_config``, and
    :class:`~hgq_chip.errors.UnsupportedConfigurationError` for a dtype policy that does not
    compute in float32/float64 (``mixed_float16``, ``mixed_bfloat16``, ...).
    """

    def __init__(self, units, *args, input_quantizer=None, kernel_quantizer=None, bias_quantizer=None, beta0=0.0, **kwargs):
        super().__init__(units, *args, **kwargs)
        self._check_keras_options()
        self._make_quantizers(input_quantizer, kernel_quantizer, bias_quantizer, beta0)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_quantizers(input_shape, self.kernel.shape, self.bias.shape if self.use_bias else None)

    def _apply_kernel(self, x, kernel):
        return ops.matmul(x, kernel)

    def fused_kernel(self) -> np.ndarray:
        """The float kernel that ``kq`` quantizes (the converter reads this, not ``kernel``)."""
        return np.asarray(self.kernel.numpy())

    def fused_bias(self) -> np.ndarray | None:
        """The float bias that ``bq`` quantizes, or None without a bias."""
        return np.asarray(self.bias.numpy()) if self.use_bias else None

    def ebops_surrogate(self):
        return self._ebops_surrogate_for(self.kernel)

    def _ebops_surrogate_for(self, kernel):
        bits_in = self.iq.bits_surrogate()
        bits_in = ops.broadcast_to(bits_in, self.iq.f.shape[:-1] + (kernel.shape[0],)) if len(self.iq.f.shape) else bits_in
        return ops.sum(ops.matmul(bits_in, self.kq.bits_surrogate(kernel)))

    def ebops_exact(self) -> int:
        bits_in = self.iq.fixed_format().width
        bits_in = np.broadcast_to(bits_in, bits_in.shape[:-1] + (self.kernel.shape[0],))
        bits_w = self.kq.fixed_format(self.fused_kernel()).width
        return int(np.sum(bits_in @ bits_w))

    def get_config(self):
        config = super().get_config()
        config.update(self._quantizer_config())
        return config
