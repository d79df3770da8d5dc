"""AdaQAT quantizers: one real-valued bit-width N per tensor, ⌈N⌉ bits in the forward pass.

Source: C. Gernigon et al., "AdaQAT: Adaptive Bit-Width Quantization-Aware Training",
arXiv:2404.16876. Quantizers raise UnsupportedConfigurationError for a dtype policy that does
not compute in float32/float64.

The paper quantizes weights with DoReFa (a tanh mapping) and activations with PACT
(clip to a trainable [0, α], uniform levels α·m/(2^N − 1)). Neither grid is made of
fixed-point numbers, so firmware could not reproduce it bit for bit. These quantizers
keep the paper's bit-width learning and use fixed-point equivalents instead **(ours)**:

- weights: a symmetric grid of ⌈N_w⌉ bits (sign included) whose step is a power of two,
  chosen from the weights' range so the largest magnitude just fits;
- activations: PACT with α rounded to a power of two and ⌈N_a⌉ bits, i.e. a cast to
  ``ufixed<⌈N_a⌉, log2 α>`` (or the signed form) with rounding half up and saturation.

N itself is a non-trainable variable: the optimizer never sees it; the
:class:`~hgq_chip.training.adaqat.AdaQATController` updates it from finite differences
of the loss. Both quantizers expose the interface the converter and the cost code use
(``quantized``/``fixed_format``/``bits_surrogate``, and ``record_range``/``calibrated``
for activations), so layers built on them convert like HGQ layers.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from ..fixed.format import ArrayFormat
from ..fixed.minimal import ceil_log2, integer_bits
from ..fixed.modes import Overflow, Rounding
from ..fixed.quantize_np import quantize as quantize_np
from ..fixed.quantize_np import round_scaled as round_scaled_np
from ..fixed.quantize_ops import pow2, pow2_with_gradient, round_scaled
from ..fixed.quantize_ops import quantize as quantize_ops
from .dtype_policy import check_exact_dtype_policy
from .ranges import RecordedRangeMixin
from .surrogate import ceil_log2_integer, round_ste, straight_through

# Weights get rounded half up, as activations do (one rounding mode in the whole layer).
ROUNDING = Rounding.RND


def ceil_ste(n):
    """⌈n⌉ forward, identity gradient (the paper's derivative "using N")."""
    return ops.ceil(n) + (n - ops.stop_gradient(n))


class _BitWidthQuantizer(keras.layers.Layer):
    """The real-valued bit-width N, its bounds, and a flag set when the controller froze it."""

    def __init__(self, init_bits=8.0, min_bits=1, max_bits=16, **kwargs):
        super().__init__(**kwargs)
        check_exact_dtype_policy(self)
        self.init_bits = float(init_bits)
        self.min_bits = int(min_bits)
        self.max_bits = int(max_bits)
        if not self.min_bits <= self.init_bits <= self.max_bits:
            raise ValueError(
                f"{self.name}: init_bits={init_bits} must lie in [min_bits, max_bits] = [{self.min_bits}, {self.max_bits}]"
            )

    def _add_bits(self):
        self.bits = self.add_weight(
            name="bits", shape=(), initializer=keras.initializers.Constant(self.init_bits), trainable=False
        )
        self.frozen = self.add_weight(name="frozen", shape=(), initializer="zeros", trainable=False)

    def ceil_bits(self) -> int:
        """⌈N⌉: the bit count the forward pass uses now."""
        # In the variable's own dtype, as Keras computes ⌈N⌉ (float32, or float64 in a float64 model).
        return int(np.ceil(np.asarray(self.bits.numpy())))

    def set_bits(self, value: float) -> None:
        """Assign N, clipped to [min_bits, max_bits]."""
        self.bits.assign(float(np.clip(value, self.min_bits, self.max_bits)))

    @property
    def is_frozen(self) -> bool:
        return bool(self.frozen.numpy() > 0)

    def get_config(self):
        config = super().get_config()
        config.update(init_bits=self.init_bits, min_bits=self.min_bits, max_bits=self.max_bits)
        return config


@keras.saving.register_keras_serializable(package="hgq_chip")
class AdaQATWeightQuantizer(_BitWidthQuantizer):
    """Symmetric fixed-point weights with ⌈N_w⌉ bits, sign included (replaces DoReFa).

    The step is 2^-f with f = ⌈N_w⌉ − 1 − e, where 2^(e−1) <= max|w| < 2^e: the largest
    weight lands in the top octave of the grid; codes are limited to ±(2^(⌈N_w⌉−1) − 1),
    so the grid is symmetric (a weight rounding up past the top saturates).
    Gradients reach w straight through.
    """

    def __init__(self, init_bits=8.0, min_bits=2, max_bits=16, **kwargs):
        if int(min_bits) < 2:
            raise ValueError(f"min_bits={min_bits}: a symmetric signed weight grid needs at least 2 bits")
        super().__init__(init_bits, min_bits, max_bits, **kwargs)

    def build(self, weight_shape):
        self._add_bits()

    def _fractional_bits(self, w):
        magnitude = ops.stop_gradient(ops.max(ops.abs(w)))
        # exponent = floor(log2 max|w|) + 1, so max|w| < 2^exponent and a power of two is
        # on the grid. ceil_log2_integer corrects log2's rounding against exact powers of
        # two (it is exact for any positive float), keeping the grid equal to NumPy's.
        safe = ops.maximum(magnitude, 1e-30)
        exponent = ceil_log2_integer(safe)
        exponent = ops.where(pow2(exponent) == safe, exponent + 1.0, exponent)
        return ops.ceil(self.bits) - 1.0 - exponent, magnitude

    def call(self, w):
        f, magnitude = self._fractional_bits(w)
        scale = pow2(f)
        top = pow2(ops.ceil(self.bits) - 1.0) - 1.0
        m = ops.clip(round_scaled(ops.stop_gradient(w) * scale, ROUNDING), -top, top)
        q = ops.where(magnitude > 0, m / scale, ops.zeros_like(w))
        return straight_through(w, q)

    def fractional_bits(self, w) -> int:
        """The grid's f for these weights (NumPy twin of the forward pass)."""
        magnitude = float(np.max(np.abs(np.asarray(w, np.float64)), initial=0.0))
        exponent = int(np.frexp(max(magnitude, 1e-30))[1])  # floor(log2 m) + 1, exactly
        return self.ceil_bits() - 1 - exponent

    def quantized(self, w) -> np.ndarray:
        """The quantized weights in NumPy, exactly as ``call`` computes them."""
        w = np.asarray(w, dtype=np.float64)
        if not np.any(w):
            return np.zeros_like(w)
        f = self.fractional_bits(w)
        top = 2.0 ** (self.ceil_bits() - 1) - 1.0
        return np.clip(round_scaled_np(w * 2.0**f, ROUNDING), -top, top) / 2.0**f

    def fixed_format(self, w) -> ArrayFormat:
        """Per-weight exact formats on the shared grid; zero weights get width 0 (pruned)."""
        q = self.quantized(w)
        f = np.full(q.shape, self.fractional_bits(w) if np.any(q) else 0, dtype=np.int64)
        k, i = integer_bits(q, f)
        return ArrayFormat(k, i, f, ROUNDING, Overflow.WRAP)

    def bits_surrogate(self, w):
        """⌈N_w⌉ for every weight (gradient flows to N, which only the controller reads)."""
        return ops.ones_like(w) * ceil_ste(self.bits)


@keras.saving.register_keras_serializable(package="hgq_chip")
class AdaQATActivationQuantizer(RecordedRangeMixin, _BitWidthQuantizer):
    """PACT with a power-of-two clip α = 2^e and ⌈N_a⌉ bits: a cast to fixed<⌈N_a⌉, e>.

    Unsigned (default) clips to [0, α − step], the signed form to [−α, α − step];
    rounding is half up (AP_RND) and the clip is saturation (AP_SAT), the same in
    training and inference. ``log2(α)`` is trainable through round(): PACT's gradient
    (1 where x is clipped at the top) reaches it, while x gets gradient only inside the
    clip range. Ranges are recorded for information (input ranges, α initialisation);
    the format never depends on them, so the quantizer always counts as calibrated.
    """

    def __init__(self, init_bits=8.0, min_bits=1, max_bits=16, init_alpha=1.0, signed=False, trainable_alpha=True, **kwargs):
        super().__init__(init_bits, min_bits, max_bits, **kwargs)
        if not init_alpha > 0 or not math.isfinite(init_alpha):
            raise ValueError(f"{self.name}: init_alpha must be a positive number, got {init_alpha}")
        self.init_alpha = float(init_alpha)
        self.signed = bool(signed)
        self.trainable_alpha = bool(trainable_alpha)
        if self.signed and self.min_bits < 2:
            self.min_bits = 2  # a signed 1-bit grid holds only {-α, 0}: no positive values
        self.calibrating = False

    def build(self, input_shape):
        self._add_bits()
        self.feature_rank = len(input_shape) - 1
        self.log2_alpha = self.add_weight(
            name="log2_alpha", shape=(), initializer=keras.initializers.Constant(math.log2(self.init_alpha)),
            trainable=self.trainable_alpha,
        )
        self._add_range_variables(())

    def _kif(self, exponent):
        k = 1.0 if self.signed else 0.0
        return k, exponent, ops.ceil(self.bits) - k - exponent

    def call(self, x, training=None):
        if training or self.calibrating:
            self.record_range(ops.stop_gradient(x))
        exponent = round_ste(self.log2_alpha)
        alpha = pow2_with_gradient(exponent)
        k, i, f = self._kif(ops.stop_gradient(exponent))
        q = quantize_ops(ops.stop_gradient(x), k, i, f, ROUNDING, Overflow.SAT)
        top = ops.stop_gradient(alpha) - pow2(-f)
        bottom = -ops.stop_gradient(alpha) if self.signed else ops.zeros_like(top)
        above = ops.cast(x > top, x.dtype)
        below = ops.cast(x < bottom, x.dtype)
        inside = 1.0 - above - below
        # Each added term is exactly 0 in the forward pass; they carry PACT's gradients.
        passed = straight_through(x, q) - (1.0 - inside) * (x - ops.stop_gradient(x))
        return passed + (alpha - ops.stop_gradient(alpha)) * (above - below)

    def record_range(self, x):
        self._merge_range(ops.min(x), ops.max(x))

    @property
    def calibrated(self) -> bool:
        return True

    def alpha_exponent(self) -> int:
        return int(np.round(np.asarray(self.log2_alpha.numpy())))  # the variable's dtype, as Keras rounds it

    def set_alpha_from_range(self) -> None:
        """α := the smallest power of two covering the recorded range (e.g. after ``calibrate``)."""
        if not self.range_recorded:
            return
        bound = max(abs(float(self.range_lo.numpy())), abs(float(self.range_hi.numpy())))
        if bound > 0:
            self.log2_alpha.assign(float(ceil_log2(bound)))

    def fixed_format(self) -> ArrayFormat:
        """The single format of every element, shaped (1, …, 1) like a per-layer HGQ quantizer."""
        k = int(self.signed)
        e = self.alpha_exponent()
        ones = np.ones((1,) * self.feature_rank, dtype=np.int64)
        return ArrayFormat(k * ones, e * ones, (self.ceil_bits() - k - e) * ones, ROUNDING, Overflow.SAT)

    def quantize_np(self, x) -> np.ndarray:
        """NumPy reference of the forward pass."""
        fmt = self.fixed_format()
        return quantize_np(x, fmt.k, fmt.i, fmt.f, fmt.rounding, fmt.overflow)

    def bits_surrogate(self):
        """⌈N_a⌉ with the (1, …, 1) shape of ``fixed_format`` (gradient flows to N)."""
        return ops.ones((1,) * self.feature_rank) * ceil_ste(self.bits)

    def get_config(self):
        config = super().get_config()
        config.update(init_alpha=self.init_alpha, signed=self.signed, trainable_alpha=self.trainable_alpha)
        return config
