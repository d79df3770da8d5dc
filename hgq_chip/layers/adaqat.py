"""ADense / AConv1D / AConv2D: HGQ layers whose input and kernel quantizers are AdaQAT's.

Each layer has two real-valued bit-widths, N_a on its input (``iq.bits``) and N_w on its
kernel (``kq.bits``), updated by :class:`~hgq_chip.training.adaqat.AdaQATController`.
They subclass HDense/HConv*, so the converter's rules and weighted-layer handler apply
unchanged: the AdaQAT quantizers answer the same ``quantized``/``fixed_format`` calls.

Cost: the paper's BitOPs = MACs·⌈N_w⌉·⌈N_a⌉ (``bitops()``), also the differentiable
``ebops_surrogate`` (with N, so it can share one loss with HGQ layers). ``ebops_exact``
counts the firmware's multipliers like every other layer: weights that quantize to 0
cost nothing, so EBOPs ≤ BitOPs.
"""

from __future__ import annotations

import keras
import numpy as np

from ..quantizers.adaqat import AdaQATActivationQuantizer, AdaQATWeightQuantizer, ceil_ste
from ..quantizers.hgq import WeightQuantizer
from .base import merged_config
from .conv import HConv1D, HConv2D
from .dense import HDense

DEFAULT_ADAQAT_INPUT = {"init_bits": 8.0, "init_alpha": 1.0, "signed": False}
DEFAULT_ADAQAT_KERNEL = {"init_bits": 8.0}
# The paper leaves biases in high precision; here they are fixed-point with a fixed 8
# fractional bits (not trained: nothing in the loss would hold their bits down).
DEFAULT_ADAQAT_BIAS = {"granularity": "per-layer", "init_f": 8.0, "rounding": "RND", "trainable_f": False}


class AdaQATLayerMixin:
    """Mixed in before HDense/HConv*: AdaQAT input/kernel quantizers, an HGQ bias quantizer."""

    def _make_quantizers(self, input_quantizer, kernel_quantizer, bias_quantizer, beta0):
        self.input_quantizer_config = merged_config(DEFAULT_ADAQAT_INPUT, input_quantizer)
        self.kernel_quantizer_config = merged_config(DEFAULT_ADAQAT_KERNEL, kernel_quantizer)
        self.bias_quantizer_config = merged_config(DEFAULT_ADAQAT_BIAS, bias_quantizer)
        self.beta0 = float(beta0)
        self.iq = AdaQATActivationQuantizer(name="iq", dtype=self.dtype_policy, **self.input_quantizer_config)
        self.kq = AdaQATWeightQuantizer(name="kq", dtype=self.dtype_policy, **self.kernel_quantizer_config)
        self.bq = WeightQuantizer(name="bq", dtype=self.dtype_policy, **self.bias_quantizer_config)

    def bit_widths(self) -> dict:
        """The learned real-valued bit-widths: {"w": N_w, "a": N_a}."""
        return {"w": float(self.kq.bits.numpy()), "a": float(self.iq.bits.numpy())}

    def ebops_surrogate(self):
        return float(self.macs()) * ceil_ste(self.kq.bits) * ceil_ste(self.iq.bits)

    def bitops(self) -> int:
        """The paper's cost: MACs·⌈N_w⌉·⌈N_a⌉."""
        return self.macs() * self.kq.ceil_bits() * self.iq.ceil_bits()

    def bitops_gradient(self) -> dict:
        """∂BitOPs/∂N using the real-valued N (the paper's choice): {"w": MACs·N_a, "a": MACs·N_w}."""
        n = self.bit_widths()
        return {"w": self.macs() * n["a"], "a": self.macs() * n["w"]}


@keras.saving.register_keras_serializable(package="hgq_chip")
class ADense(AdaQATLayerMixin, HDense):
    """``keras.layers.Dense`` with AdaQAT bit-widths on its input and kernel.

    Takes every Dense argument; ``input_quantizer`` holds
    :class:`~hgq_chip.quantizers.adaqat.AdaQATActivationQuantizer` arguments (init_bits,
    init_alpha, signed, ...), ``kernel_quantizer`` AdaQATWeightQuantizer ones,
    ``bias_quantizer`` HGQ WeightQuantizer ones.
    """

    def build(self, input_shape):
        super().build(input_shape)
        self.input_feature_shape = tuple(input_shape[1:])

    def macs(self) -> int:
        """Multiplications per sample: one per (leading position, input, output)."""
        return int(np.prod(self.input_feature_shape[:-1], dtype=np.int64)) * int(np.prod(self.kernel.shape))

    def ebops_exact(self) -> int:
        # Every leading position (e.g. time steps) has its own multipliers, as in HDense per-element.
        bits_in = np.broadcast_to(self.iq.fixed_format().width, self.input_feature_shape)
        bits_w = self.kq.fixed_format(self.fused_kernel()).width
        return int(np.sum(bits_in @ bits_w))


def taps_in_range(length: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """(output position, tap) pairs of one spatial axis whose input index lies inside the input.

    Keras' output length and 'same' split (the smaller half of the padding before):
    out = ceil(L / s) for 'same', floor((L − (k − 1)·d − 1) / s) + 1 for 'valid'.
    Pure NumPy on Python ints, so it is safe to call while a graph is traced.
    """
    span = (kernel - 1) * dilation + 1
    if padding == "same":
        outputs = -(-length // stride)
        before = max((outputs - 1) * stride + span - length, 0) // 2
    else:
        outputs = max((length - span) // stride + 1, 0)
        before = 0
    index = (np.arange(outputs)[:, None] * stride - before) + np.arange(kernel)[None, :] * dilation
    return int(np.count_nonzero((index >= 0) & (index < length)))


class _AConvMacs:
    def macs(self) -> int:
        """Multiplications per sample, counting the taps that 'same' padding leaves out.

        The product over spatial axes of :func:`taps_in_range`, times input channels and
        filters: a Python int from the shapes alone (no tensor is evaluated), so the cost
        term stays graph-safe under ``fit`` and ``jit_compile``.
        """
        spatial = self.input_feature_shape[:-1]
        total = int(self.input_feature_shape[-1]) * int(self.filters)
        for length, kernel, stride, dilation in zip(spatial, self.kernel_size, self.strides, self.dilation_rate):
            total *= taps_in_range(int(length), int(kernel), int(stride), int(dilation), self.padding)
        return total


@keras.saving.register_keras_serializable(package="hgq_chip")
class AConv1D(AdaQATLayerMixin, _AConvMacs, HConv1D):
    """``keras.layers.Conv1D`` with AdaQAT bit-widths (arguments as HConv1D and ADense)."""


@keras.saving.register_keras_serializable(package="hgq_chip")
class AConv2D(AdaQATLayerMixin, _AConvMacs, HConv2D):
    """``keras.layers.Conv2D`` with AdaQAT bit-widths (arguments as HConv2D and ADense)."""


ADAQAT_LAYERS = (ADense, AConv1D, AConv2D)
