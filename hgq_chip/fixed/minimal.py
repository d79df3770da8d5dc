"""The narrowest formats that hold given constants exactly."""

from __future__ import annotations

import numpy as np

from .format import ArrayFormat, FixedFormat

# Beyond this many fractional bits a float64 is not a fixed-point constant we can type.
_MAX_FRACTIONAL_BITS = 1074


def fractional_bits(values) -> np.ndarray:
    """Per element, the least f (possibly negative) with value * 2**f an integer; 0 for zeros."""
    v = np.abs(np.asarray(values, dtype=np.float64))
    if not np.all(np.isfinite(v)):
        raise ValueError("cannot find a fixed-point format for NaN or infinite values")
    mantissa, exponent = np.frexp(v)  # v = mantissa * 2**exponent, mantissa in [0.5, 1)
    # The mantissa has at most 53 significant bits; count its trailing zeros.
    m_int = (mantissa * 2.0**53).astype(np.int64)
    trailing = np.zeros(v.shape, dtype=np.int64)
    nonzero = m_int != 0
    low_bit = m_int & -m_int
    trailing[nonzero] = np.log2(low_bit[nonzero].astype(np.float64)).astype(np.int64)
    f = 53 - exponent - trailing
    return np.where(nonzero, f, 0).astype(np.int64)


def integer_bits(values, f) -> tuple[np.ndarray, np.ndarray]:
    """Sign bits k and integer bits i so that values (multiples of 2**-f) fit without overflow."""
    v = np.asarray(values, dtype=np.float64)
    f = np.asarray(f, dtype=np.int64)
    m = v * 2.0 ** f.astype(np.float64)
    k = (v < 0).astype(np.int64)
    # Positive m needs i + f >= bit_length(m); negative needs i + f >= ceil(log2(-m)).
    magnitude = np.where(v < 0, -m, m + 1.0)
    n = ceil_log2(np.where(v == 0, 1.0, magnitude))
    return k, n - f


def ceil_log2(x) -> np.ndarray:
    """Exact ceil(log2(x)) for positive finite x (log2 itself may round near powers of two)."""
    mantissa, exponent = np.frexp(np.asarray(x, dtype=np.float64))
    return np.where(mantissa == 0.5, exponent - 1, exponent).astype(np.int64)


def minimal_format_per_element(values, rounding="TRN", overflow="WRAP") -> ArrayFormat:
    """Each element's narrowest exact format; zeros get width 0 (they are pruned)."""
    f = fractional_bits(values)
    k, i = integer_bits(values, f)
    zero = np.asarray(values) == 0
    return ArrayFormat(np.where(zero, 0, k), np.where(zero, -f, i), f, rounding, overflow)


def minimal_format(values, rounding="TRN", overflow="WRAP") -> FixedFormat:
    """The narrowest single format that holds every one of ``values`` exactly."""
    v = np.asarray(values, dtype=np.float64).ravel()
    nonzero = v[v != 0]
    if nonzero.size == 0:
        return FixedFormat(0, 0, 0, rounding, overflow)
    f = int(fractional_bits(nonzero).max())
    lo, hi = float(nonzero.min()), float(nonzero.max())
    k, i = integer_bits(np.array([lo, hi]), f)
    return FixedFormat(int(k.max()), int(i.max()), f, rounding, overflow)


def bits_of_constant(values) -> np.ndarray:
    """Width (sign included) of each constant's narrowest exact format; 0 for zero."""
    return minimal_format_per_element(values).width
