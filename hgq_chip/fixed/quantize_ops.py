"""The quantizer in ``keras.ops``; it must equal the NumPy reference exactly.

This is the one Keras quantize op: ``tests/test_fixed_exact.py`` checks it against the NumPy
reference (``quantize_np``) and compiled ap_fixed C++ on a grid of ties, edges and wrap periods,
and every quantizer layer's inference path calls it (``quantizers/hgq.py``, ``quantizers/adaqat.py``).

Every step is exact in the input's float dtype: multiplying by powers of two, floor,
and the subtraction v - floor(v) never round. The overflow step is exact while its codes fit
the significand (M = 24 bits in float32, 53 in float64): WRAP needs k + i + f <= M (its
remainders reach 2**(k+i+f) - 1), SAT/SAT_SYM i + f <= M (the clip 2**(i+f) - 1);
``hgq_chip.conversion.records.quantizer_output_bits`` is that count and ``convert`` refuses
wider quantizers. Domain: abs(x) * 2**f below the dtype's largest finite value (float32:
2**128) and normal floats (see ``tests/test_fixed_exact.py``).
"""

from __future__ import annotations

import keras
from keras import ops

from .format import ArrayFormat, FixedFormat
from .modes import Overflow, Rounding

LN2 = 0.6931471805599453  # ln 2, the derivative of 2**n is ln 2 · 2**n


def pow2(n):
    """2**n for integer-valued float tensors ``n``, exactly, on every Keras backend.

    Shape and dtype of ``n`` (integer dtypes become Keras' floatx). Exact for integers n whose
    2**n is a normal float of that dtype (float32: -126 <= n <= 127; float64: -1022 <= n <= 1023).
    Computed as ``ops.ldexp(1, n)``: ``exp2`` is not exact everywhere (JAX's float32 ``exp2``
    on the CPU gives 2**13 + 2**-8 and 2**30 - 960, found by ``tests/test_fixed_exact.py``
    under JAX), while ``ldexp`` is exact by definition (JAX and PyTorch scale the exponent;
    Keras' TensorFlow ``ldexp`` is the ``pow(2, n)`` this function used before, exact there).
    No gradient flows to ``n`` (an integer); callers that train an exponent add the
    derivative ``ln 2 · 2**n`` themselves (see :func:`pow2_with_gradient`).
    """
    n = ops.convert_to_tensor(n)
    dtype = keras.backend.standardize_dtype(n.dtype)
    if "float" not in dtype:
        dtype = keras.config.floatx()
    exponent = ops.cast(ops.stop_gradient(n), "int32")
    return ops.ldexp(ops.ones_like(n, dtype=dtype), exponent)


def pow2_with_gradient(n):
    """:func:`pow2` whose gradient w.r.t. ``n`` is that of 2**n (ln 2 · 2**n).

    The added factor is exactly 1 in the forward pass (1 + ln2 · (n − n)), so the value is
    still exact; it carries d(2**n)/dn for trained exponents (AdaQAT's PACT clip α).
    """
    n = ops.convert_to_tensor(n)
    value = pow2(n)
    return value * (1.0 + LN2 * (n - ops.stop_gradient(n)))


def round_scaled(v, rounding: Rounding):
    """``v`` (already scaled by 2**f) rounded to an integer: TRN floors, RND rounds half up,
    RND_CONV rounds half to even (ap_fixed's AP_TRN, AP_RND, AP_RND_CONV). Same shape/dtype as ``v``."""
    floor = ops.floor(v)
    if rounding is Rounding.TRN:
        return floor
    if rounding is Rounding.RND_CONV:
        fraction = v - floor
        up = (fraction > 0.5) | ((fraction == 0.5) & (ops.mod(floor, 2.0) == 1.0))
        return floor + ops.cast(up, v.dtype)
    return floor + ops.cast(v - floor >= 0.5, v.dtype)


def overflow_integer(m, k, n, overflow: Overflow):
    """The integer code ``m`` brought into a signed (k=1) or unsigned (k=0) type of n = i + f
    magnitude bits: WRAP (two's complement), SAT or SAT_SYM, as ap_fixed does. Broadcasts."""
    top = ops.cast(pow2(ops.cast(n, m.dtype)), m.dtype)
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
    """``keras.ops`` twin of :func:`hgq_chip.fixed.quantize_np.quantize` (no gradients defined here).

    ``x`` of any shape; ``k`` (sign bit, 0/1), ``i`` (integer bits) and ``f`` (fractional bits)
    broadcast against it; a format of width k + i + f <= 0 gives 0. Result: ``x``'s float dtype
    (float32 for integer input), values on the grid 2**-f inside the format. Raises ValueError
    for an unknown rounding/overflow name. Formulas: Xilinx UG1399, "Arbitrary Precision
    Fixed-Point Data Types" (quantization and overflow modes).
    """
    rounding = Rounding.parse(rounding)
    overflow = Overflow.parse(overflow)
    x = ops.convert_to_tensor(x)
    dtype = x.dtype if "float" in str(x.dtype) else "float32"
    x = ops.cast(x, dtype)
    k = ops.cast(k, dtype)
    f = ops.cast(f, dtype)
    n = ops.cast(i, dtype) + f
    scale = pow2(f)
    return codes_to_values(round_scaled(x * scale, rounding), k, n, scale, overflow)


def codes_to_values(m, k, n, scale, overflow: Overflow):
    """The second half of :func:`quantize`: rounded codes ``m = round(x * scale)`` brought into
    the format (``overflow_integer``) and scaled back, 0 where the width k + n <= 0.

    ``m``: integer-valued float tensor; ``k``, ``n`` (= i + f, bits) and ``scale`` (= 2**f) in
    ``m``'s dtype, broadcasting against it. For callers that already hold ``m`` and ``scale``
    (an activation quantizer's inference path also needs the codes without overflow).
    """
    m = overflow_integer(m, k, n, overflow)
    result = m / scale
    return ops.where(k + n <= 0, ops.zeros_like(result), result)


def quantize_to(x, fmt: FixedFormat | ArrayFormat):
    return quantize(x, fmt.k, fmt.i, fmt.f, fmt.rounding, fmt.overflow)
