"""Cost of constant multiplications and adder trees, from canonical signed digits.

A constant weight m * 2**-f (m an integer) times an activation x is a sum of shifted
copies of x, one per nonzero digit of m written in canonical signed-digit (non-adjacent)
form, the representation with the fewest nonzero digits. Summing a column of a kernel is
then one adder tree over every digit of every weight in the column: an adder per term
beyond the first. Each adder is about as wide as the terms it adds plus the bits the sum
has grown by, and never wider than the accumulator the converter derived.
"""

from __future__ import annotations

import numpy as np

from . import constants as C


def integer_mantissas(values) -> np.ndarray:
    """|m| for each value m * 2**-f written with its minimal f (0 for zeros)."""
    from ..fixed.minimal import fractional_bits

    v = np.asarray(values, np.float64)
    return np.rint(np.abs(v) * 2.0 ** fractional_bits(v)).astype(np.int64)


def csd_digits(values) -> np.ndarray:
    """Number of nonzero canonical signed digits of each constant (0 for zeros, 1 for +-2**n)."""
    n = integer_mantissas(values)
    half = n >> 1
    three_halves = n + half
    carries = half ^ three_halves
    positive, negative = three_halves & carries, half & carries
    return _popcount(positive) + _popcount(negative)


def _popcount(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.uint64)
    count = np.zeros(a.shape, np.int64)
    while np.any(a):
        count += (a & np.uint64(1)).astype(np.int64)
        a = a >> np.uint64(1)
    return count


def _bit_length(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.int64)
    return np.where(a > 0, np.floor(np.log2(np.maximum(a, 1))).astype(np.int64) + 1, 0)


def uses_dsp(weight_widths, activation_widths, values, dsp_min_product_bits: int) -> np.ndarray:
    """The DSP mapping rule (constants.DSP_MIN_PRODUCT_BITS): wide, non-trivial products."""
    digits = csd_digits(values)
    return (np.asarray(weight_widths) * np.asarray(activation_widths) >= dsp_min_product_bits) & (digits > 1)


def column_adder_bits(term_widths, n_terms, accum_widths) -> np.ndarray:
    """LUT bits of the adder trees summing ``n_terms`` terms of mean width ``term_widths`` per column.

    A balanced tree over n terms has n - 1 adders; the adders of level l (about n / 2**l of
    them) add operands grown by l bits, but never wider than the accumulator. Each adder
    costs its operand width, GROWTH_BITS_PER_LEVEL per bit grown, and one bit of carry out.
    """
    n = np.asarray(n_terms, np.float64)
    width = np.asarray(term_widths, np.float64)
    base = np.minimum(width, np.asarray(accum_widths, np.float64))
    room = np.maximum(np.asarray(accum_widths, np.float64) - base, 0)
    total = np.zeros(n.shape)
    remaining = n.copy()
    level = 0
    while np.any(remaining > 1):
        adders = np.floor(remaining / 2)
        total += adders * (base + C.GROWTH_BITS_PER_LEVEL * np.minimum(level, room) + 1)
        remaining = remaining - adders
        level += 1
    return total * C.LUT_PER_TREE_BIT


def column_depth(n_terms) -> np.ndarray:
    """Adder levels of a balanced tree over n terms."""
    n = np.maximum(np.asarray(n_terms, np.float64), 1)
    return np.ceil(np.log2(n)).astype(np.int64)
