"""Pure functions for trainable fixed-point quantization (backend-neutral ``keras.ops``).

Gradients come from stop-gradient algebra arranged so the forward value is exactly the
quantized value: ``q + (x - sg(x))`` adds an exact zero in the forward pass but passes a
gradient of 1 to x, so no float rounding creeps into the quantized numbers.
"""

from __future__ import annotations

import math

from keras import ops

from ..fixed.modes import Rounding
from ..fixed.quantize_ops import pow2, round_scaled

LN2 = math.log(2.0)


def round_ste(f):
    """round(f) forward (half to even, as np.round), identity gradient."""
    return ops.round(f) + (f - ops.stop_gradient(f))


def ceil_log2_integer(m):
    """Exact ceil(log2(m)) for integer-valued float tensors m >= 1."""
    n = ops.ceil(ops.log2(m))
    # log2 is off by at most one step near powers of two; one pow2 serves both checks
    # (2 * 2**(n-1) == 2**n exactly, inf where 2**n overflows, as pow2 itself).
    below = pow2(n - 1.0)
    high = below >= m
    n = ops.where(high, n - 1.0, n)
    return ops.where(ops.where(high, below, below * 2.0) < m, n + 1.0, n)


def round_to_bits(x, f_rounded, rounding: Rounding):
    """x rounded to multiples of 2**-f (no overflow), exact in the forward pass."""
    scale = pow2(f_rounded)
    return round_scaled(x * scale, rounding) / scale


def fractional_bit_gradient_term(x, q, f_float):
    """A term whose value is exactly 0 and whose gradient w.r.t. f is -ln2 * (q - x).

    The rounding error halves with each extra fractional bit, so d(q)/d(f) ~ -ln2 * (q - x);
    where q == x the bit cannot matter and the gradient is 0.
    """
    delta = ops.stop_gradient(q - x)
    return (f_float - ops.stop_gradient(f_float)) * (-LN2 * delta)


def sum_to_shape(g, shape):
    """``g`` summed over the axes that broadcasting a tensor of ``shape`` against it added or
    stretched: the gradient of a broadcast operand. Static shapes; ``g`` has rank >= len(shape)."""
    lead = len(g.shape) - len(shape)
    if lead:
        g = ops.sum(g, axis=tuple(range(lead)))
    stretched = tuple(a for a, d in enumerate(shape) if d == 1 and g.shape[a] != 1)
    return ops.sum(g, axis=stretched, keepdims=True) if stretched else g


def reduce_to_shape(g, shape):
    """:func:`sum_to_shape` as one reduction over every broadcast axis, then a reshape: the sum
    a backend's own broadcasting gradient takes (TensorFlow's ``BroadcastGradientArgs`` axes), so
    shared-f gradients keep the stop-gradient algebra's float32 summation order."""
    lead = len(g.shape) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + a for a, d in enumerate(shape) if d == 1 and g.shape[lead + a] != 1)
    return ops.reshape(ops.sum(g, axis=axes), shape) if axes else g


def round_to_bits_trainable(x, f, rounding: Rounding):
    """``round_to_bits(x, round(f))`` with HGQ's gradients, as one op with a custom gradient.

    Forward: exactly ``round_to_bits`` at round(f) (half to even). Gradients: straight through
    to ``x`` (1), and -ln2 * (q - x) to ``f``, summed over the axes ``f`` is broadcast along.
    The same numbers and gradients as ``straight_through(x, q) +
    fractional_bit_gradient_term(x, q, round_ste(f))``, in about a third of the operations:
    the stop-gradient algebra costs a dozen extra full-size elementwise ops per quantizer in
    every training step, which dominated the step time of small models without XLA.
    ``x``: any shape; ``f``: a shape that broadcasts against it (the granularity's variable shape).
    """
    # Variables become tensors first (a 0 added): TensorFlow's custom gradient refuses functions
    # that read variables themselves, and the variables' gradients flow through this read.
    x, f = (ops.add(v, 0.0) if hasattr(v, "assign") else v for v in (x, f))
    f_shape = tuple(f.shape)

    @ops.custom_gradient
    def quantize(x, f):
        q = round_to_bits(x, ops.round(f), rounding)

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            return upstream, sum_to_shape((-LN2 * (q - x)) * upstream, f_shape)

        return q, grad

    return quantize(x, f)


def with_quantization_gradient(x, q, f):
    """``q`` with :func:`round_to_bits_trainable`'s gradients, for a ``q`` computed elsewhere.

    Forward: ``q + (x - x)``, the value of ``straight_through(x, q) + fractional_bit_gradient_term(x,
    q, round_ste(f))`` bit for bit (q, a -0 made +0, NaN where x is not finite). Gradients: 1 to
    ``x``, -ln2 * (q - x) to ``f`` summed over the axes ``f`` is broadcast along, none to ``q``
    (treated as a constant). One op with a custom gradient instead of the stop-gradient algebra's
    half-dozen full-size ops; an activation quantizer's inference path uses it with its
    overflow-aware ``q``. ``x``, ``q``: the same shape; ``f``: broadcasts against them.
    """
    x, f = (ops.add(v, 0.0) if hasattr(v, "assign") else v for v in (x, f))
    q = ops.stop_gradient(q)
    f_shape = tuple(f.shape)

    @ops.custom_gradient
    def attach(x, f, q):
        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            return upstream, reduce_to_shape((-LN2 * (q - x)) * upstream, f_shape), ops.zeros_like(q)

        return q + (x - x), grad

    return attach(x, f, q)


def straight_through(x, q):
    """q forward, gradient 1 w.r.t. x."""
    return ops.stop_gradient(q) + (x - ops.stop_gradient(x))


def codes_from_range(lo, hi, scale, rounding: Rounding):
    """The integer codes (m_lo, m_hi) of ``lo`` and ``hi`` rounded at ``scale`` = 2**f; computed once
    when ``hi is lo`` (a weight is its own range)."""
    m_lo = round_scaled(lo * scale, rounding)
    return m_lo, (m_lo if hi is lo else round_scaled(hi * scale, rounding))


def magnitude_bits(m_lo, m_hi):
    """n = i + f, the bits (sign excluded) holding every integer code in [m_lo, m_hi].

    Positive m needs n >= bit_length(m) = ceil(log2(m + 1)), negative m needs n >= ceil(log2(-m));
    codes of the other sign need 0 bits (both arguments clamp to 1, ceil(log2(1)) = 0), and
    ceil(log2(.)) is monotonic, so one ``ceil_log2_integer`` of the larger argument is the max
    of the two needs (``hgq_chip.fixed.minimal.integer_bits``).
    """
    return ceil_log2_integer(ops.maximum(ops.maximum(m_hi, 0.0) + 1.0, ops.maximum(-m_lo, 1.0)))


def integer_bits_from_range(lo, hi, f_rounded, rounding: Rounding, scale=None):
    """Sign k and integer bits i holding the rounded range [lo, hi] at f fractional bits.

    Mirrors ``hgq_chip.fixed.minimal.integer_bits`` exactly: positive m needs
    i + f >= bit_length(m), negative m needs i + f >= ceil(log2(-m)). ``scale``: 2**f_rounded
    if the caller already has it.
    """
    m_lo, m_hi = codes_from_range(lo, hi, pow2(f_rounded) if scale is None else scale, rounding)
    k = ops.cast(m_lo < 0, lo.dtype)
    n = magnitude_bits(m_lo, m_hi)
    width_zero = (m_lo == 0) & (m_hi == 0)
    i = ops.where(width_zero, -f_rounded, n - f_rounded)
    return k, i


def width_from_range(lo, hi, f_rounded, rounding: Rounding):
    """k + i + f of :func:`integer_bits_from_range`'s format, as one number (bits): 0 where the
    range rounds to 0 (pruned), else k + n. Equal to ``k + i + f_rounded`` (small integers, exact)
    without forming i."""
    m_lo, m_hi = codes_from_range(lo, hi, pow2(f_rounded), rounding)
    # Both codes 0 gives k = 0 and n = ceil(log2(1)) = 0: width 0 with no select.
    return ops.cast(m_lo < 0, m_lo.dtype) + magnitude_bits(m_lo, m_hi)


def width_surrogate(width, f):
    """HGQ's differentiable bit count: ``width`` (bits, >= 0) in value, gradient 1 w.r.t. ``f``
    where width > 0 and 0 where it is 0 (a pruned value gains nothing from a fractional bit).

    The value and gradient of ``relu(stop_gradient(k + i) + round_ste(f))`` (k + i + round(f) is
    the width), in four small ops. ``f`` broadcasts against ``width``; its gradient is summed
    over the broadcast axes.
    """
    return width + (f - ops.stop_gradient(f)) * ops.cast(width > 0, width.dtype)
