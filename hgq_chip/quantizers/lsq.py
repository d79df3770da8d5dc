"""LSQ: learned step size quantization, the base of ASQ.

Sources: S. K. Esser et al., "Learned Step Size Quantization", arXiv:1902.08153; ASQ's §3.1
(arXiv:2504.17263, see asq.py). Quantizers raise UnsupportedConfigurationError for a dtype
policy that does not compute in float32/float64.

x_q = clip(round(x / s), Q_n, Q_p) * s with a trainable step s whose gradient is scaled by
g = 1 / sqrt(N * Q_p) (N: elements sharing s), exactly as LSQ prescribes.

Firmware restriction (ours): the forward pass uses s = 2**round(log2 s), a power of two,
while the float variable s keeps training (straight through the rounding of log2 s).
With a power-of-two step the quantizer *is* a fixed-point cast: codes are b-bit integers
and x_q = code * 2**e is an exact fixed-point number, so firmware and Keras agree bit for
bit. Rounding is half up (ap_fixed's AP_RND), clipping is ap_fixed's AP_SAT.
"""

from __future__ import annotations

import math
from fractions import Fraction

import keras
import numpy as np
from keras import ops

from ..fixed.format import ArrayFormat, FixedFormat
from ..fixed.modes import Overflow, Rounding
from ..fixed.quantize_ops import pow2, round_scaled
from .dtype_policy import check_exact_dtype_policy


def code_range(bits: int, signed: bool) -> tuple[int, int]:
    """(Q_n, Q_p): the integer codes of a b-bit quantizer."""
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def code_format(bits: int, signed: bool) -> FixedFormat:
    """The firmware type of the codes: b-bit integers, rounding half up, saturating."""
    return FixedFormat(int(signed), bits - int(signed), 0, Rounding.RND, Overflow.SAT)


def scale_gradient(value, scale: float):
    """``value`` forward, gradient multiplied by ``scale`` (LSQ's gradient scaling)."""
    return value * scale + ops.stop_gradient(value - value * scale)


def _sqrt_half_ceiling(dtype: str) -> float:
    """The smallest ``dtype`` value >= 1/sqrt(2) (checked exactly with fractions)."""
    kind = np.float32 if dtype == "float32" else np.float64
    t = kind(math.sqrt(0.5))
    while Fraction(float(t)) ** 2 < Fraction(1, 2):
        t = np.nextafter(t, kind(1))
    while Fraction(float(np.nextafter(t, kind(0)))) ** 2 >= Fraction(1, 2):
        t = np.nextafter(t, kind(0))
    return float(t)


SQRT_HALF_CEILING = {dtype: _sqrt_half_ceiling(dtype) for dtype in ("float32", "float64")}


def round_log2(a):
    """round(log2 a) for positive float tensors a (below 1e-30: as 1e-30), exactly on every backend.

    The backend's log2 may be off by one ulp, which flips the rounding for a within an ulp of
    2**(k - 1/2) and made the power-of-two step / α depend on the backend (issue 33). The
    estimate is corrected against the exact thresholds: log2 a >= k - 1/2 exactly when
    a >= 2**k * T, T the smallest value of a's dtype >= 1/sqrt(2) (2**(k - 1/2) is irrational,
    and scaling by 2**k is exact). Returns a float tensor holding integers, a's shape and dtype.
    """
    a = ops.maximum(a, 1e-30)
    dtype = keras.backend.standardize_dtype(a.dtype)
    t = SQRT_HALF_CEILING.get(dtype, SQRT_HALF_CEILING["float32"])
    k = ops.round(ops.log2(a))
    k = k - ops.cast(a < pow2(k) * t, a.dtype)
    return k + ops.cast(a >= pow2(k + 1.0) * t, a.dtype)


def power_of_two_ste(step):
    """2**round(log2 step) forward, gradient 1 w.r.t. ``step`` (the firmware's step)."""
    exponent = ops.stop_gradient(round_log2(step))
    return ops.stop_gradient(pow2(exponent)) + (step - ops.stop_gradient(step))


def round_half_up_ste(v):
    """floor(v + 0.5) forward (ap_fixed AP_RND), identity gradient."""
    return ops.stop_gradient(round_scaled(v, Rounding.RND)) + (v - ops.stop_gradient(v))


def lsq_fake_quantize(x, step, q_n: int, q_p: int):
    """clip(round(x / step), Q_n, Q_p) * step; autodiff gives LSQ's gradients for x and step:
    d/dx = 1 inside the clip range and 0 outside; d/dstep = round(x/s) - x/s inside, Q_n or Q_p outside."""
    v = ops.clip(x / step, float(q_n), float(q_p))
    return round_half_up_ste(v) * step


# Steps below this would make LSQ's step gradient (−x/s²) overflow float32.
MIN_STEP = 2.0**-20


@keras.saving.register_keras_serializable(package="hgq_chip")
class MinimumValue(keras.constraints.Constraint):
    """Keeps a step (or clip threshold) at least ``minimum`` after every optimizer update."""

    def __init__(self, minimum: float = MIN_STEP):
        self.minimum = float(minimum)

    def __call__(self, w):
        return ops.maximum(w, self.minimum)

    def get_config(self):
        return {"minimum": self.minimum}


class _StepQuantizer(keras.layers.Layer):
    """A b-bit quantizer with one trainable step whose forward value is a power of two."""

    def __init__(self, bits: int = 4, signed: bool = False, init_step: float = 0.25, trainable_step: bool = True, **kwargs):
        super().__init__(**kwargs)
        check_exact_dtype_policy(self)
        bits = int(bits)
        if not 1 <= bits <= 16 or (signed and bits < 2):
            raise ValueError(f"{self.name}: bits must be in 1..16 (2..16 when signed), got {bits}")
        if not init_step > 0:
            raise ValueError(f"{self.name}: init_step must be > 0, got {init_step}")
        self.bits = bits
        self.signed = bool(signed)
        self.init_step = float(init_step)
        self.trainable_step = bool(trainable_step)
        self.q_n, self.q_p = code_range(self.bits, self.signed)

    def _add_step(self):
        self.step = self.add_weight(
            name="step", shape=(), initializer=keras.initializers.Constant(self.init_step), trainable=self.trainable_step,
            constraint=MinimumValue(),
        )

    def exponent_tensor(self):
        """e with the forward step 2**e (a float tensor holding an integer; exact, ``round_log2``)."""
        return round_log2(self.step)

    def exponent(self) -> int:
        """The same e in Python, read from the tensor Keras uses (no float32/float64 disagreement)."""
        return int(ops.convert_to_numpy(self.exponent_tensor()))

    def _gradient_scale(self, n_elements: int) -> float:
        return 1.0 / math.sqrt(max(n_elements, 1) * max(self.q_p, 1))

    def code_format(self) -> FixedFormat:
        return code_format(self.bits, self.signed)

    def get_config(self):
        config = super().get_config()
        config.update(bits=self.bits, signed=self.signed, init_step=self.init_step, trainable_step=self.trainable_step)
        return config


@keras.saving.register_keras_serializable(package="hgq_chip")
class LSQActivationQuantizer(_StepQuantizer):
    """LSQ for activations: one step per tensor, gradient scale 1/sqrt(N * Q_p), N = features per sample."""

    def build(self, input_shape):
        self._add_step()
        self._n_elements = int(np.prod([d for d in input_shape[1:] if d is not None]))

    def effective_step(self, x):
        """The step used for ``x`` (per sample in ASQ; one for all samples here)."""
        return scale_gradient(power_of_two_ste(self.step), self._gradient_scale(self._n_elements))

    def call(self, x, training=None):
        return lsq_fake_quantize(x, self.effective_step(x), self.q_n, self.q_p)

    def fixed_format(self) -> ArrayFormat:
        """x_q = code * 2**e: b-bit codes with the binary point moved by e (one format per tensor)."""
        e = self.exponent()
        fmt = self.code_format()
        return ArrayFormat(np.array(fmt.k), np.array(fmt.i + e), np.array(fmt.f - e), fmt.rounding, fmt.overflow)

    def codes_exact(self, x64):
        """(codes m, None) for the consuming layer: m = clip(round(x · 2**−e), Q_n, Q_p), float64.

        None says "no per-sample factor": the layer rescales its accumulator by 2**e alone.
        """
        scaled = x64 * ops.cast(pow2(-self.exponent_tensor()), "float64")
        return ops.clip(round_scaled(scaled, Rounding.RND), float(self.q_n), float(self.q_p)), None


@keras.saving.register_keras_serializable(package="hgq_chip")
class LSQWeightQuantizer(_StepQuantizer):
    """LSQ for weights (signed): w_q = clip(round(w / s), -2**(b-1), 2**(b-1)-1) * s, s = 2**e.

    ``initialize_from(w)`` sets s to LSQ's 2 * mean|w| / sqrt(Q_p).
    """

    def __init__(self, bits: int = 4, signed: bool = True, init_step: float = 0.125, trainable_step: bool = True, **kwargs):
        if not signed:
            raise ValueError("LSQWeightQuantizer is signed (weights have both signs); leave signed=True")
        super().__init__(bits, True, init_step, trainable_step, **kwargs)

    def build(self, weight_shape):
        self._add_step()
        self._n_elements = int(np.prod(weight_shape))

    def initialize_from(self, w) -> None:
        mean = float(np.mean(np.abs(np.asarray(w, np.float64))))
        if mean > 0:
            self.step.assign(2.0 * mean / math.sqrt(self.q_p))

    def call(self, w):
        step = scale_gradient(power_of_two_ste(self.step), self._gradient_scale(self._n_elements))
        return lsq_fake_quantize(w, step, self.q_n, self.q_p)

    def scale_exponent(self) -> int:
        """w_q = unit * 2**scale_exponent with integer units (the codes)."""
        return self.exponent()

    def units(self, w) -> np.ndarray:
        """The integer codes of the quantized weights, from the same ops Keras runs."""
        w_q = np.asarray(ops.convert_to_numpy(self(ops.convert_to_tensor(np.asarray(w, self.compute_dtype)))), np.float64)
        return w_q * 2.0 ** -self.exponent()

    def get_config(self):
        config = super().get_config()
        config.pop("signed")
        return config
