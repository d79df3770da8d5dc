"""Exact interval arithmetic on fixed-point values, to derive types that cannot overflow.

An interval is (lo, hi, f): every value is a multiple of 2**-f in [lo, hi]. Arrays
broadcast, so one call types a whole tensor of per-element formats. Bounds are float64,
exact while they stay within 53 significant bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .format import ArrayFormat, FixedFormat
from .minimal import integer_bits


@dataclass(frozen=True, eq=False)
class Interval:
    lo: np.ndarray
    hi: np.ndarray
    f: np.ndarray

    def __post_init__(self):
        lo, hi, f = np.broadcast_arrays(
            np.asarray(self.lo, np.float64), np.asarray(self.hi, np.float64), np.asarray(self.f, np.int64)
        )
        if np.any(lo > hi):
            raise ValueError("interval with lo > hi")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)
        object.__setattr__(self, "f", f)

    @classmethod
    def of_format(cls, fmt: FixedFormat | ArrayFormat) -> "Interval":
        return cls(fmt.min, fmt.max, fmt.f)

    @classmethod
    def of_values(cls, values, f) -> "Interval":
        v = np.asarray(values, dtype=np.float64)
        return cls(v, v, f)

    @classmethod
    def of_constants(cls, values) -> "Interval":
        """Exact constants, each with its own minimal fractional bits."""
        from .minimal import fractional_bits

        v = np.asarray(values, dtype=np.float64)
        return cls(v, v, fractional_bits(v))

    def covering(self) -> "Interval":
        """One scalar interval holding every element (zero elements add no fractional bits)."""
        nonzero = ~self.is_zero
        f = int(self.f[nonzero].max()) if nonzero.any() else 0
        return Interval(self.lo.min(initial=0.0), self.hi.max(initial=0.0), f)

    def reshape(self, shape) -> "Interval":
        return Interval(self.lo.reshape(shape), self.hi.reshape(shape), self.f.reshape(shape))

    def broadcast_to(self, shape) -> "Interval":
        return Interval(*(np.broadcast_to(a, shape) for a in (self.lo, self.hi, self.f)))

    def relu(self) -> "Interval":
        return Interval(np.maximum(self.lo, 0.0), np.maximum(self.hi, 0.0), self.f)

    @property
    def is_zero(self) -> np.ndarray:
        return (self.lo == 0) & (self.hi == 0)

    def __add__(self, other: "Interval") -> "Interval":
        # A constant-zero term adds no fractional bits.
        f = np.where(self.is_zero, other.f, np.where(other.is_zero, self.f, np.maximum(self.f, other.f)))
        return Interval(self.lo + other.lo, self.hi + other.hi, f)

    def __neg__(self) -> "Interval":
        return Interval(-self.hi, -self.lo, self.f)

    def __mul__(self, other: "Interval") -> "Interval":
        corners = np.stack(np.broadcast_arrays(
            self.lo * other.lo, self.lo * other.hi, self.hi * other.lo, self.hi * other.hi
        ))
        return Interval(corners.min(axis=0), corners.max(axis=0), self.f + other.f)

    def _union_f(self, other: "Interval") -> np.ndarray:
        """The grid of a value that is one of the two (a constant zero fits any grid)."""
        return np.where(self.is_zero, other.f, np.where(other.is_zero, self.f, np.maximum(self.f, other.f)))

    def maximum(self, other: "Interval") -> "Interval":
        """The interval of ``max(a, b)``: one of the two values, so the union of their grids."""
        return Interval(np.maximum(self.lo, other.lo), np.maximum(self.hi, other.hi), self._union_f(other))

    def minimum(self, other: "Interval") -> "Interval":
        """The interval of ``min(a, b)`` (as :meth:`maximum`)."""
        return Interval(np.minimum(self.lo, other.lo), np.minimum(self.hi, other.hi), self._union_f(other))

    def sum(self, axis) -> "Interval":
        """The interval of a sum over ``axis`` (an adder tree over those terms)."""
        zero = self.is_zero
        f = np.where(zero, np.iinfo(np.int64).min, self.f).max(axis=axis)
        any_term = (~zero).any(axis=axis)
        return Interval(self.lo.sum(axis=axis), self.hi.sum(axis=axis), np.where(any_term, f, 0))

    def to_format(self, rounding="TRN", overflow="WRAP") -> ArrayFormat:
        """The narrowest per-element formats holding every value of the interval exactly."""
        # integer_bits gives a zero endpoint width 0, so it never widens the other one.
        k_lo, i_lo = integer_bits(self.lo, self.f)
        k_hi, i_hi = integer_bits(self.hi, self.f)
        return ArrayFormat(np.maximum(k_lo, k_hi), np.maximum(i_lo, i_hi), self.f, rounding, overflow)
