"""The quantizer in ``keras.ops``, for training; it must equal the NumPy reference exactly.

Every step is exact in the input's float dtype: multiplying by powers of two, floor,
and the subtraction v - floor(v) never round (for widths the float mantissa holds).
"""

from __future__ import annotations

from keras import ops

from .format import ArrayFormat, FixedFormat
from .modes import Overflow, Rounding


def round_scaled(v, rounding: Rounding):
    floor = ops.floor(v)
    if rounding is Rounding.TRN:
        return floor
    if rounding is Rounding.RND_CONV:
        fraction = v - floor
        up = (fraction > 0.5) | ((fraction == 0.5) & (ops.mod(floor, 2.0) == 1.0))
        return floor + ops.cast(up, v.dtype)
    return floor + ops.cast(v - floor >= 0.5, v.dtype)


def overflow_integer(m, k, n, overflow: Overflow):
    top = ops.power(2.0, n)
    top = ops.cast(top, m.dtype)
    k = ops.cast(k, m.dtype)
    if overflow is Overflow.WRAP:
        span = top * (1.0 + k)
        # m mod span is exact; m - low would round (by a whole span) once ulp(m) == span.
        r = m - ops.floor(m / span) * span
        return r - ops.cast(r >= top, m.dtype) * span
    # AP_SAT_SYM cannot drop the lowest code of a 1-bit signed type (n = 0): it acts as AP_SAT.
    low = -k * top if overflow is Overflow.SAT else -k * ops.maximum(top - 1.0, 1.0)
    return ops.minimum(ops.maximum(m, low), top - 1.0)


def quantize(x, k, i, f, rounding="TRN", overflow="WRAP"):
    """``keras.ops`` twin of :func:`hgq_chip.fixed.quantize_np.quantize` (no gradients defined here)."""
    rounding = Rounding.parse(rounding)
    overflow = Overflow.parse(overflow)
    x = ops.convert_to_tensor(x)
    dtype = x.dtype if "float" in str(x.dtype) else "float32"
    x = ops.cast(x, dtype)
    k = ops.cast(k, dtype)
    f = ops.cast(f, dtype)
    n = ops.cast(i, dtype) + f
    scale = ops.power(ops.cast(2.0, dtype), f)
    m = overflow_integer(round_scaled(x * scale, rounding), k, n, overflow)
    result = m / scale
    return ops.where(k + n <= 0, ops.zeros_like(result), result)


def quantize_to(x, fmt: FixedFormat | ArrayFormat):
    return quantize(x, fmt.k, fmt.i, fmt.f, fmt.rounding, fmt.overflow)
