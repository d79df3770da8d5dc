"""POST (power of √2) and POT (power of two) weight quantizers (§3.1 and §3.3 of "Precision
Neural Network Quantization via Learnable Adaptive Modules", arXiv:2504.17263).

Levels for b bits: {0} ∪ {±α·u_j : j = 0 … 2**(b-1) − 2}, with u_j = 2**−j for POT and
u_j = (√2)**−j for POST. α (the clip threshold) is trainable.

Exactness (ours): √2 is irrational, so POST's odd levels use one fixed-point constant
c = round(2**−½ · 2**F) / 2**F (F = ``sqrt2_bits``): u_j = 2**−(j/2) for even j and
c · 2**−((j−1)/2) for odd j. Every level is then an exact fixed-point number and a weight
multiplication is a shift of x (even j) or of x·c (odd j); the firmware forms x·c once per
input and shares it across all outputs. For the same reason α is a power of two in the
forward pass (the float variable trains straight through the rounding of log2 α).

A weight's code is σ·(j+1) (σ its sign, 0 for the zero level): a b-bit signed integer.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from ..errors import UnsupportedConfigurationError
from .dtype_policy import check_exact_dtype_policy
from .lsq import MinimumValue, power_of_two_ste, round_log2, scale_gradient

KINDS = ("pot", "post")
SIGNIFICAND_BITS = {"float32": 24, "float64": 53}  # IEEE 754 binary32/binary64, hidden bit included
DEFAULT_SQRT2_BITS = 8


def sqrt_half_constant(fraction_bits: int = DEFAULT_SQRT2_BITS) -> float:
    """c = round(2**−½ · 2**F) / 2**F, the declared fixed-point stand-in for 1/√2."""
    if not 1 <= fraction_bits <= 30:
        raise ValueError(f"sqrt2_bits must be in 1..30, got {fraction_bits}")
    return float(np.round(2.0 ** (fraction_bits - 0.5))) / 2.0**fraction_bits


def unit_levels(bits: int, kind: str, sqrt2_bits: int = DEFAULT_SQRT2_BITS) -> np.ndarray:
    """The nonzero level magnitudes u_0 > u_1 > … (α = 1), each an exact fixed-point value."""
    if kind not in KINDS:
        raise ValueError(f"unknown log quantizer kind {kind!r}; use one of {KINDS}")
    if not 2 <= bits <= 8:
        raise ValueError(f"log weight quantizers need 2..8 bits, got {bits}")
    j = np.arange(2 ** (bits - 1) - 1)
    if kind == "pot":
        return 2.0 ** -j.astype(np.float64)
    c = sqrt_half_constant(sqrt2_bits)
    return np.where(j % 2 == 0, 2.0 ** -(j // 2).astype(np.float64), c * 2.0 ** -(j // 2).astype(np.float64))


def level_shift_and_odd(codes: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """For nonzero codes σ(j+1): the right shift e and whether the level uses c (odd j of POST)."""
    j = np.abs(np.asarray(codes, np.int64)) - 1
    if kind == "pot":
        return j, np.zeros(j.shape, bool)
    return j // 2, (j % 2) == 1


@keras.saving.register_keras_serializable(package="hgq_chip")
class LogWeightQuantizer(keras.layers.Layer):
    """POT or POST weights: nearest level to clip(w, −α, α); STE for w, LSQ-style gradient for α.

    d(w_q)/dα = u_sel·σ − w/α inside the clip range, ±1 outside (as LSQ's step gradient),
    scaled by 1/sqrt(N) (N weights; the level set is normalised so its Q_p is 1).
    """

    def __init__(self, kind: str = "post", bits: int = 4, sqrt2_bits: int = DEFAULT_SQRT2_BITS, init_alpha: float = 1.0,
                 trainable_alpha: bool = True, **kwargs):
        super().__init__(**kwargs)
        check_exact_dtype_policy(self)
        self.kind = str(kind).lower()
        self.bits = int(bits)
        self.sqrt2_bits = int(sqrt2_bits)
        self.levels = unit_levels(self.bits, self.kind, self.sqrt2_bits)  # validates kind and bits
        self._check_levels_exact()
        if not init_alpha > 0:
            raise ValueError(f"{self.name}: init_alpha must be > 0, got {init_alpha}")
        self.init_alpha = float(init_alpha)
        self.trainable_alpha = bool(trainable_alpha)

    def _check_levels_exact(self) -> None:
        """POST levels c·2**−k carry ``sqrt2_bits`` significant bits (c = m / 2**F with m < 2**F):
        more than the compute dtype's significand (24 bits in float32, 53 in float64) and Keras
        would round the levels the firmware keeps exact. Raises
        :class:`~hgq_chip.errors.UnsupportedConfigurationError` (exit 5) naming the fix."""
        significand = SIGNIFICAND_BITS.get(self.dtype_policy.compute_dtype)
        if self.kind == "post" and significand is not None and self.sqrt2_bits > significand:
            raise UnsupportedConfigurationError(
                f"{self.name}: sqrt2_bits={self.sqrt2_bits} gives levels of {self.sqrt2_bits} significant bits, "
                f"but {self.dtype_policy.compute_dtype} holds {significand}; use sqrt2_bits <= {significand}"
                + (" or build the model in float64" if significand < 53 else "")
            )

    @property
    def sqrt_half(self) -> float:
        return sqrt_half_constant(self.sqrt2_bits)

    def build(self, weight_shape):
        self.alpha = self.add_weight(
            name="alpha", shape=(), initializer=keras.initializers.Constant(self.init_alpha), trainable=self.trainable_alpha,
            constraint=MinimumValue(),
        )
        self._n_elements = int(np.prod(weight_shape))

    def initialize_from(self, w) -> None:
        """α = max|w|: every weight starts inside the clip range."""
        peak = float(np.max(np.abs(np.asarray(w, np.float64)), initial=0.0))
        if peak > 0:
            self.alpha.assign(peak)

    def call(self, w):
        alpha = scale_gradient(power_of_two_ste(self.alpha), 1.0 / math.sqrt(max(self._n_elements, 1)))
        t = ops.clip(w / alpha, -1.0, 1.0)
        candidates = ops.convert_to_tensor(np.concatenate([[0.0], self.levels]), dtype=t.dtype)
        magnitude = ops.stop_gradient(ops.abs(t))
        nearest = ops.argmin(ops.abs(magnitude[..., None] - candidates), axis=-1)
        unit = ops.sign(ops.stop_gradient(t)) * ops.take(candidates, nearest)
        return alpha * (ops.stop_gradient(unit) + (t - ops.stop_gradient(t)))

    def exponent_tensor(self):
        return round_log2(self.alpha)

    def scale_exponent(self) -> int:
        """α = 2**scale_exponent in the forward pass."""
        return int(ops.convert_to_numpy(self.exponent_tensor()))

    def units(self, w) -> np.ndarray:
        """w_q / α (levels ±u_j or 0), from the same ops Keras runs."""
        w_q = np.asarray(ops.convert_to_numpy(self(ops.convert_to_tensor(np.asarray(w, self.compute_dtype)))), np.float64)
        return w_q * 2.0 ** -self.scale_exponent()

    def codes(self, w) -> np.ndarray:
        """σ·(j+1) per weight (0 for the zero level): the b-bit integers the firmware stores."""
        units = self.units(w)
        magnitude = np.abs(units)
        index = np.searchsorted(-self.levels, -magnitude)  # levels descend
        index = np.minimum(index, len(self.levels) - 1)
        found = self.levels[index] == magnitude
        if not np.all(found | (magnitude == 0)):
            raise AssertionError(f"{self.name}: a quantized weight is not one of the declared levels")
        return np.where(magnitude == 0, 0, np.sign(units) * (index + 1)).astype(np.int64)

    def get_config(self):
        config = super().get_config()
        config.update(kind=self.kind, bits=self.bits, sqrt2_bits=self.sqrt2_bits, init_alpha=self.init_alpha,
                      trainable_alpha=self.trainable_alpha)
        return config
