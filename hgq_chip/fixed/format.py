"""Fixed-point formats: one (k, i, f) for a scalar type, or one per element.

A format has a sign bit k in {0, 1}, i integer bits (sign excluded) and f
fractional bits; it represents m * 2**-f for integers m in
[-k * 2**(i+f), 2**(i+f) - 1]. Either i or f may be negative, as long as the
width k + i + f is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .hls import parse_ap_fields, render_ap_type
from .modes import Overflow, Rounding


@dataclass(frozen=True)
class FixedFormat:
    """One fixed-point type, with the modes applied when a value is cast into it."""

    k: int
    i: int
    f: int
    rounding: Rounding = Rounding.TRN
    overflow: Overflow = Overflow.WRAP

    def __post_init__(self):
        if self.k not in (0, 1):
            raise ValueError(f"sign bit k must be 0 or 1, got {self.k!r}")
        for name in ("i", "f"):
            value = getattr(self, name)
            if int(value) != value:
                raise ValueError(f"{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        object.__setattr__(self, "k", int(self.k))
        object.__setattr__(self, "rounding", Rounding.parse(self.rounding))
        object.__setattr__(self, "overflow", Overflow.parse(self.overflow))
        if self.width < 0:
            raise ValueError(f"width k+i+f must be >= 0, got {self.k}+{self.i}+{self.f}")

    @property
    def width(self) -> int:
        return self.k + self.i + self.f

    @property
    def signed(self) -> bool:
        return bool(self.k)

    @property
    def step(self) -> float:
        return 2.0 ** -self.f

    @property
    def max(self) -> float:
        if self.width == 0:  # holds only 0; for k=1 the formula below would give -2**i
            return 0.0
        return (2.0 ** (self.i + self.f) - 1) * self.step

    @property
    def min(self) -> float:
        if not self.k or self.width == 0:
            return 0.0
        if self.overflow is Overflow.SAT_SYM and self.width > 1:
            # A 1-bit signed AP_SAT_SYM type keeps its lowest code, like AP_SAT.
            return -self.max
        return -(2.0 ** self.i)

    def with_modes(self, rounding=None, overflow=None) -> "FixedFormat":
        return FixedFormat(
            self.k,
            self.i,
            self.f,
            self.rounding if rounding is None else rounding,
            self.overflow if overflow is None else overflow,
        )

    def to_hls(self) -> str:
        """The ap_fixed C++ type, e.g. ``ap_fixed<8,3,AP_RND,AP_SAT>``."""
        return render_ap_type(self)

    @classmethod
    def from_hls(cls, text: str) -> "FixedFormat":
        """Parse ``ap_fixed<..>``, ``fixed<..>``, ``ap_int<..>`` and the unsigned forms."""
        return cls(*parse_ap_fields(text))


@dataclass(frozen=True, eq=False)
class ArrayFormat:
    """One (k, i, f) per element of a tensor, with modes shared by all elements.

    Arrays broadcast against each other; ``shape`` is their broadcast shape.
    """

    k: np.ndarray
    i: np.ndarray
    f: np.ndarray
    rounding: Rounding = Rounding.TRN
    overflow: Overflow = Overflow.WRAP
    shape: tuple = field(init=False)

    def __post_init__(self):
        arrays = [np.asarray(a) for a in (self.k, self.i, self.f)]
        for name, arr in zip("kif", arrays):
            if arr.size and not np.array_equal(arr, np.round(arr)):
                raise ValueError(f"{name} must hold integers")
        k, i, f = np.broadcast_arrays(*(a.astype(np.int64) for a in arrays))
        if np.any((k != 0) & (k != 1)):
            raise ValueError("sign bits k must be 0 or 1")
        if np.any(k + i + f < 0):
            raise ValueError("every width k+i+f must be >= 0")
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "i", i)
        object.__setattr__(self, "f", f)
        object.__setattr__(self, "rounding", Rounding.parse(self.rounding))
        object.__setattr__(self, "overflow", Overflow.parse(self.overflow))
        object.__setattr__(self, "shape", k.shape)

    @classmethod
    def uniform(cls, fmt: FixedFormat, shape) -> "ArrayFormat":
        ones = np.ones(shape, dtype=np.int64)
        return cls(fmt.k * ones, fmt.i * ones, fmt.f * ones, fmt.rounding, fmt.overflow)

    @property
    def width(self) -> np.ndarray:
        return self.k + self.i + self.f

    @property
    def step(self) -> np.ndarray:
        return 2.0 ** -self.f.astype(np.float64)

    @property
    def max(self) -> np.ndarray:
        # Zero-width elements hold only 0 (for k=1 the formula would give -2**i).
        return np.where(self.width == 0, 0.0, (2.0 ** (self.i + self.f).astype(np.float64) - 1) * self.step)

    @property
    def min(self) -> np.ndarray:
        low = -self.k * 2.0 ** self.i.astype(np.float64)
        if self.overflow is Overflow.SAT_SYM:
            # A 1-bit signed AP_SAT_SYM type keeps its lowest code, like AP_SAT.
            low = np.where(self.width > 1, -self.k * self.max, low)
        return np.where(self.width == 0, 0.0, low)

    def __getitem__(self, index) -> FixedFormat:
        return FixedFormat(
            int(self.k[index]), int(self.i[index]), int(self.f[index]), self.rounding, self.overflow
        )

    def __eq__(self, other) -> bool:
        if not isinstance(other, ArrayFormat):
            return NotImplemented
        return (
            self.rounding == other.rounding
            and self.overflow == other.overflow
            and self.shape == other.shape
            and all(np.array_equal(a, b) for a, b in zip((self.k, self.i, self.f), (other.k, other.i, other.f)))
        )

    def covering(self) -> FixedFormat:
        """The narrowest single format that holds every element's values."""
        nonzero = self.width > 0
        if not np.any(nonzero):
            return FixedFormat(0, 0, 0, self.rounding, self.overflow)
        k = int(self.k[nonzero].max())
        f = int(self.f[nonzero].max())
        i = int(self.i[nonzero].max())
        return FixedFormat(k, i, f, self.rounding, self.overflow)


def parse_ap_type(text: str) -> FixedFormat:
    """The FixedFormat of ``ap_fixed<..>``, ``fixed<..>``, ``ap_int<..>`` or an unsigned form
    (ValueError for anything else)."""
    return FixedFormat.from_hls(text)
