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
    n = ops.where(pow2(n - 1.0) >= m, n - 1.0, n)
    return ops.where(pow2(n) < m, n + 1.0, n)


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


def straight_through(x, q):
    """q forward, gradient 1 w.r.t. x."""
    return ops.stop_gradient(q) + (x - ops.stop_gradient(x))


def integer_bits_from_range(lo, hi, f_rounded, rounding: Rounding):
    """Sign k and integer bits i holding the rounded range [lo, hi] at f fractional bits.

    Mirrors ``hgq_chip.fixed.minimal.integer_bits`` exactly: positive m needs
    i + f >= bit_length(m), negative m needs i + f >= ceil(log2(-m)).
    """
    scale = pow2(f_rounded)
    m_lo = round_scaled(lo * scale, rounding)
    m_hi = round_scaled(hi * scale, rounding)
    k = ops.cast(m_lo < 0, lo.dtype)
    need_hi = ops.where(m_hi > 0, ceil_log2_integer(ops.maximum(m_hi, 0.0) + 1.0), 0.0)
    need_lo = ops.where(m_lo < 0, ceil_log2_integer(ops.maximum(-m_lo, 1.0)), 0.0)
    n = ops.maximum(need_hi, need_lo)
    width_zero = (m_lo == 0) & (m_hi == 0)
    i = ops.where(width_zero, -f_rounded, n - f_rounded)
    return k, i
