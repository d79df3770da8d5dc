"""ASQ: adaptive step size activation quantization (§3.2 of "Precision Neural Network
Quantization via Learnable Adaptive Modules", arXiv:2504.17263).

s' = s · β(x): an adapter of one or two linear layers maps a per-sample summary of the
activation to β, initialised so β = 1 (the last layer starts at zero, β = 1 + z). Gradients
reach s (LSQ-scaled) and the adapter through s' (paper eqs. 7–9, by autodiff).

Fixed point (ours), identical in Keras inference and firmware:
- summary u = Σ x · 2**−p over every element of the sample (features, or positions and
  channels of a feature map: one β per sample, so a convolution's accumulators share it),
  p = ⌈log2 n⌉ (the mean when n is a power of two, otherwise within 2× of it; exact);
- adapter weights have ``adapter_bits`` fractional bits (rounded half up); the summary's
  2**−p and the "1 +" fold into the firmware's constants;
- β is cast to ufixed with ``beta_bits`` fractional bits (RND, SAT) and clamped to
  [½, 2 − 2**−beta_bits];
- 1/β comes from a table indexed by the quantized β: r = round(2**R / β) / 2**R
  (R = ``reciprocal_bits``), so codes are m = clip(round(x · r · 2**−e), Q_n, Q_p);
- the consuming layer rescales its accumulator by s' = β · 2**e (one product per output).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from ..fixed.modes import Rounding
from ..fixed.quantize_ops import pow2, round_scaled
from .lsq import LSQActivationQuantizer, lsq_fake_quantize, power_of_two_ste, round_half_up_ste, scale_gradient

BETA_MIN = 0.5
BETA_INTEGER_BITS = 1  # beta_t holds [0, 2 − 2**−beta_bits]


def _sample_axes(x) -> tuple[int, ...]:
    """Every axis but the batch axis."""
    return tuple(range(1, len(x.shape)))


@keras.saving.register_keras_serializable(package="hgq_chip")
class ASQActivationQuantizer(LSQActivationQuantizer):
    """LSQ activation quantizer whose step is rescaled per sample by an adapter's β."""

    def __init__(self, bits: int = 4, signed: bool = False, init_step: float = 0.25, trainable_step: bool = True,
                 adapter_hidden: int = 0, adapter_bits: int = 8, beta_bits: int = 6, reciprocal_bits: int = 10, **kwargs):
        super().__init__(bits, signed, init_step, trainable_step, **kwargs)
        if adapter_hidden < 0:
            raise ValueError(f"{self.name}: adapter_hidden must be >= 0 (0: one linear layer), got {adapter_hidden}")
        if not 2 <= beta_bits <= 12 or not 2 <= reciprocal_bits <= 20 or not 1 <= adapter_bits <= 20:
            raise ValueError(f"{self.name}: need beta_bits in 2..12, reciprocal_bits in 2..20, adapter_bits in 1..20")
        self.adapter_hidden = int(adapter_hidden)
        self.adapter_bits = int(adapter_bits)
        self.beta_bits = int(beta_bits)
        self.reciprocal_bits = int(reciprocal_bits)

    # ---- structure -------------------------------------------------------------------------
    def build(self, input_shape):
        super().build(input_shape)
        self.n_features = int(np.prod(input_shape[1:]))
        self.summary_shift = math.ceil(math.log2(self.n_features)) if self.n_features > 1 else 0
        zeros = keras.initializers.Zeros()
        if self.adapter_hidden:
            h = self.adapter_hidden
            # Small random first layer so the hidden units differ; the zero last layer gives β = 1.
            self.a1 = self.add_weight(name="a1", shape=(h,), initializer=keras.initializers.RandomNormal(0.0, 0.5))
            self.d1 = self.add_weight(name="d1", shape=(h,), initializer=zeros)
            self.a2 = self.add_weight(name="a2", shape=(h,), initializer=zeros)
            self.d2 = self.add_weight(name="d2", shape=(1,), initializer=zeros)
        else:
            self.a1 = self.add_weight(name="a1", shape=(1,), initializer=zeros)
            self.d1 = self.add_weight(name="d1", shape=(1,), initializer=zeros)

    @property
    def beta_code_range(self) -> tuple[int, int]:
        """Raw codes B of the quantized β = B · 2**−beta_bits."""
        return int(BETA_MIN * 2**self.beta_bits), 2 ** (self.beta_bits + BETA_INTEGER_BITS) - 1

    # ---- the fixed-point constants the firmware holds ----------------------------------------
    def adapter_constants_tensors(self) -> dict:
        """Exact float64 constants: a1 (·2**−p folded in), d1, and for two layers a2, d2; the last
        bias holds the "1 +". Weights are rounded half up to ``adapter_bits`` fractional bits."""
        scale = 2.0**self.adapter_bits
        q = {}
        for name in self._adapter_names():
            value = ops.cast(getattr(self, name), "float64")
            q[name] = round_scaled(value * scale, Rounding.RND) / scale
        q["a1"] = q["a1"] * 2.0**-self.summary_shift
        last = "d2" if self.adapter_hidden else "d1"
        q[last] = q[last] + 1.0
        return q

    def adapter_constants(self) -> dict[str, np.ndarray]:
        """The same constants in NumPy (what the firmware stores)."""
        return {k: np.asarray(ops.convert_to_numpy(v), np.float64) for k, v in self.adapter_constants_tensors().items()}

    def reciprocal_table(self) -> np.ndarray:
        """r[B − B_min] = round_half_up(2**R / β) / 2**R for β = B · 2**−beta_bits (exact integer arithmetic)."""
        lo, hi = self.beta_code_range
        codes = np.arange(lo, hi + 1, dtype=object)
        numerator = 2 ** (self.reciprocal_bits + self.beta_bits)
        rounded = [(2 * numerator + b) // (2 * b) for b in codes]  # floor(numerator / b + 1/2)
        return np.array([float(r) for r in rounded]) / 2.0**self.reciprocal_bits

    def _adapter_names(self):
        return ("a1", "d1", "a2", "d2") if self.adapter_hidden else ("a1", "d1")

    # ---- training forward --------------------------------------------------------------------
    def _quantized_adapter_weight(self, variable):
        scale = 2.0**self.adapter_bits
        return ops.stop_gradient(round_scaled(variable * scale, Rounding.RND) / scale) + (variable - ops.stop_gradient(variable))

    def beta_float(self, x):
        """β per sample (batch, 1) with quantized adapter weights and quantized β (straight through)."""
        u = ops.sum(x, axis=_sample_axes(x), keepdims=True) * 2.0**-self.summary_shift
        a1, d1 = self._quantized_adapter_weight(self.a1), self._quantized_adapter_weight(self.d1)
        if self.adapter_hidden:
            hidden = ops.relu(u * a1 + d1)
            a2, d2 = self._quantized_adapter_weight(self.a2), self._quantized_adapter_weight(self.d2)
            z = ops.sum(hidden * a2, axis=-1, keepdims=True) + d2
        else:
            z = u * a1 + d1
        lo, hi = self.beta_code_range
        codes = ops.clip((1.0 + z) * 2.0**self.beta_bits, float(lo), float(hi))
        return round_half_up_ste(codes) * 2.0**-self.beta_bits

    def effective_step(self, x):
        step = power_of_two_ste(self.step) * self.beta_float(x)
        return scale_gradient(step, self._gradient_scale(self._n_elements))

    def call(self, x, training=None):
        return lsq_fake_quantize(x, self.effective_step(x), self.q_n, self.q_p)

    # ---- exact inference (float64 ops; every step is exact, the converter checks widths) -----
    def beta_exact(self, x64):
        """Quantized β per sample (batch, 1), float64, exactly as the firmware computes it."""
        c = self.adapter_constants_tensors()
        s = ops.sum(x64, axis=_sample_axes(x64), keepdims=True)
        if self.adapter_hidden:
            hidden = ops.relu(s * c["a1"] + c["d1"])
            z = ops.sum(hidden * c["a2"], axis=-1, keepdims=True) + c["d2"]
        else:
            z = s * c["a1"] + c["d1"]
        lo, hi = self.beta_code_range
        codes = ops.clip(round_scaled(z * 2.0**self.beta_bits, Rounding.RND), float(lo), float(hi))
        return codes * 2.0**-self.beta_bits

    def codes_exact(self, x64):
        """(codes m, β) for the consuming layer: m = clip(round(x · r(β) · 2**−e), Q_n, Q_p)."""
        beta = self.beta_exact(x64)
        lo, _ = self.beta_code_range
        index = ops.cast(beta * 2.0**self.beta_bits - lo, "int32")
        table = ops.convert_to_tensor(self.reciprocal_table(), "float64")
        reciprocal = ops.take(table, index)
        scaled = x64 * reciprocal * ops.cast(pow2(-self.exponent_tensor()), "float64")
        return ops.clip(round_scaled(scaled, Rounding.RND), float(self.q_n), float(self.q_p)), beta

    # ---- overhead (paper Table 1 style) -------------------------------------------------------
    def adapter_parameters(self) -> int:
        return 3 * self.adapter_hidden + 1 if self.adapter_hidden else 2

    def get_config(self):
        config = super().get_config()
        config.update(adapter_hidden=self.adapter_hidden, adapter_bits=self.adapter_bits, beta_bits=self.beta_bits,
                      reciprocal_bits=self.reciprocal_bits)
        return config
