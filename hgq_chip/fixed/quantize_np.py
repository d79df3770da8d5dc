"""The NumPy reference quantizer: the definition every other implementation must match.

q(x; k, i, f) = overflow(round(x * 2**f)) * 2**-f, computed in float64 where every step
is exact for widths up to 52 bits.
"""

from __future__ import annotations

import numpy as np

from .format import ArrayFormat, FixedFormat
from .modes import Overflow, Rounding


def round_scaled(v: np.ndarray, rounding: Rounding) -> np.ndarray:
    floor = np.floor(v)
    if rounding is Rounding.TRN:
        return floor
    if rounding is Rounding.RND_CONV:
        fraction = v - floor
        return floor + ((fraction > 0.5) | ((fraction == 0.5) & (np.mod(floor, 2.0) == 1.0)))
    # v - floor(v) is exact, while v + 0.5 could round for large |v|.
    return floor + (v - floor >= 0.5)


def overflow_integer(m: np.ndarray, k, n, overflow: Overflow) -> np.ndarray:
    """Bring integer-valued m into [-k*2**n, 2**n - 1] as ``overflow`` says (n = i + f)."""
    k = np.asarray(k, dtype=np.float64)
    top = 2.0 ** np.asarray(n, dtype=np.float64)
    if overflow is Overflow.WRAP:
        span = top * (1.0 + k)
        # m mod span is exact; m - low would round (by a whole span) once ulp(m) == span.
        r = m - np.floor(m / span) * span
        return r - (r >= top) * span
    # AP_SAT_SYM cannot drop the lowest code of a 1-bit signed type (n = 0): it acts as AP_SAT.
    low = -k * top if overflow is Overflow.SAT else -k * np.maximum(top - 1.0, 1.0)
    return np.clip(m, low, top - 1.0)


def quantize(x, k, i, f, rounding="TRN", overflow="WRAP") -> np.ndarray:
    """Quantize ``x`` to the fixed-point format(s) (k, i, f); arrays broadcast."""
    rounding = Rounding.parse(rounding)
    overflow = Overflow.parse(overflow)
    x = np.asarray(x, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    f = np.asarray(f, dtype=np.float64)
    n = np.asarray(i, dtype=np.float64) + f
    scale = 2.0 ** f
    m = overflow_integer(round_scaled(x * scale, rounding), k, n, overflow)
    result = m / scale
    # A zero-width format holds only zero, whatever the modes say.
    return np.where(k + n <= 0, 0.0, result) + 0.0


def quantize_to(x, fmt: FixedFormat | ArrayFormat) -> np.ndarray:
    return quantize(x, fmt.k, fmt.i, fmt.f, fmt.rounding, fmt.overflow)
