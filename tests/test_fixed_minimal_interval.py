"""Minimal formats of constants and exact interval arithmetic: exact, and one bit fewer fails."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hgq_chip.fixed import (
    ArrayFormat,
    FixedFormat,
    Interval,
    Overflow,
    Rounding,
    bits_of_constant,
    fractional_bits,
    minimal_format,
    minimal_format_per_element,
)
from hgq_chip.testing.ap_harness_source import default_formats

from fixed_helpers import all_values, representable

GRID = default_formats()


# --------------------------------------------------------------------------- minimal formats


def assert_minimal(values, fmt: FixedFormat):
    """fmt holds values exactly; one bit fewer of sign, integer or fraction does not."""
    values = np.asarray(values, np.float64)
    assert representable(values, fmt.k, fmt.i, fmt.f), (values, fmt)
    if not np.any(values):
        assert fmt.width == 0
        return
    for k, i, f in ((fmt.k - 1, fmt.i, fmt.f), (fmt.k, fmt.i - 1, fmt.f), (fmt.k, fmt.i, fmt.f - 1)):
        if k >= 0:
            assert not representable(values, k, i, f), (values, fmt, (k, i, f))


def test_minimal_format_examples():
    assert minimal_format([0.75, -1.5]) == FixedFormat(1, 1, 2)
    assert minimal_format([-1.0]) == FixedFormat(1, 0, 0)
    assert minimal_format([1.0]) == FixedFormat(0, 1, 0)
    assert minimal_format([4.0]) == FixedFormat(0, 3, -2)
    assert minimal_format([-4.0, 3.0]) == FixedFormat(1, 2, 0)
    assert minimal_format([0.0, 0.0]) == FixedFormat(0, 0, 0)
    assert minimal_format([], "RND", "SAT") == FixedFormat(0, 0, 0, "RND", "SAT")
    assert minimal_format([2.0**-10, 0.5], "RND", "SAT").rounding is Rounding.RND
    np.testing.assert_array_equal(fractional_bits([0.75, 3.0, 12.0, 0.0, -0.375, 2.0**-40]), [2, 0, -2, 0, 3, 40])
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError):
            minimal_format([1.0, bad])


def test_bits_of_constant_examples():
    values = [0.0, 1.0, -1.0, 0.5, 3.0, -3.0, 2.0**-10, 5 * 2.0**20, -4.0, 4.0, -0.375]
    np.testing.assert_array_equal(bits_of_constant(values), [0, 1, 1, 1, 2, 3, 1, 3, 1, 1, 3])
    assert bits_of_constant(np.ones((2, 3))).shape == (2, 3)


# Spans of at most ~51 bits: quantize_np (float64) is exact only for widths up to 52 bits.
exact_values = st.builds(lambda m, f: m * 2.0**-f, st.integers(-(2**16), 2**16), st.integers(-10, 24))


@settings(max_examples=200, deadline=None)
@given(st.lists(exact_values, min_size=1, max_size=12))
def test_minimal_format_is_exact_and_minimal(values):
    assert_minimal(values, minimal_format(values))


@settings(max_examples=100, deadline=None)
@given(st.lists(exact_values, min_size=1, max_size=12))
def test_minimal_format_per_element_is_exact_and_minimal(values):
    af = minimal_format_per_element(values, "RND", "SAT")
    assert af.shape == (len(values),) and af.rounding is Rounding.RND and af.overflow is Overflow.SAT
    for j, v in enumerate(values):
        assert_minimal([v], af[j])
    np.testing.assert_array_equal(bits_of_constant(values), af.width)
    # The single minimal format is at least as wide as every element's.
    whole = minimal_format(values)
    assert all(whole.width >= af[j].width for j in range(len(values)))


# --------------------------------------------------------------------------- intervals


small_formats = (
    st.tuples(st.integers(0, 1), st.integers(-2, 3), st.integers(-2, 3), st.sampled_from(["WRAP", "SAT_SYM"]))
    .filter(lambda t: 1 <= t[0] + t[1] + t[2] <= 5)
    .map(lambda t: FixedFormat(t[0], t[1], t[2], "TRN", t[3]))
)


def assert_interval_format_minimal(interval: Interval, brute: np.ndarray):
    """to_format holds every brute-force value; one integer (or sign) bit less overflows an endpoint."""
    fmt = interval.to_format()
    k, i, f = int(fmt.k), int(fmt.i), int(fmt.f)
    assert representable(brute, k, i, f), (brute, fmt)
    ends = [float(interval.lo), float(interval.hi)]
    if any(ends):
        assert not representable(ends, k, i - 1, f), (ends, (k, i, f))
        if k:
            assert not representable(ends, 0, i, f)
    else:
        assert k + i + f == 0


@settings(max_examples=150, deadline=None)
@given(small_formats, small_formats)
def test_interval_sum_and_product_are_tight_and_minimal(a, b):
    va, vb = all_values(a), all_values(b)
    ia, ib = Interval.of_format(a), Interval.of_format(b)
    for interval, brute in (
        (ia + ib, (va[:, None] + vb[None, :]).ravel()),
        (ia * ib, (va[:, None] * vb[None, :]).ravel()),
        (-ia, -va),
        (ia + -ib, (va[:, None] - vb[None, :]).ravel()),
    ):
        # Bounds hold every result and are attained (corners of a box).
        assert float(interval.lo) == brute.min() and float(interval.hi) == brute.max()
        assert_interval_format_minimal(interval, brute)


@settings(max_examples=100, deadline=None)
@given(st.lists(small_formats, min_size=1, max_size=3), st.lists(st.sampled_from([0, 1, 2]), max_size=2))
def test_interval_sum_over_axis(formats, zero_terms):
    """An adder tree's interval: brute force over all combinations, zero-width terms ignored."""
    formats = [t.with_modes(overflow="WRAP") for t in formats]  # ArrayFormat below is TRN/WRAP
    zero = [FixedFormat(0, -z, z) for z in zero_terms]  # constant-0 terms with any f
    terms = formats + zero
    af = ArrayFormat(*(np.array([getattr(t, name) for t in terms]) for name in "kif"))
    interval = Interval.of_format(af).sum(axis=0)
    brute = np.array([sum(c) for c in itertools.product(*(all_values(t) for t in formats))])
    assert float(interval.lo) == brute.min() and float(interval.hi) == brute.max()
    assert int(interval.f) == max(t.f for t in formats)
    assert_interval_format_minimal(interval, brute)


def test_interval_basics():
    with pytest.raises(ValueError, match="lo > hi"):
        Interval(1.0, 0.0, 0)
    zero = Interval.of_format(FixedFormat(1, -1, 0))  # a zero-width signed format holds only 0
    assert zero.is_zero and zero.to_format()[()].width == 0
    rows = Interval.of_format(ArrayFormat(1, [[0, 1], [2, 3]], 2)).sum(axis=1)
    np.testing.assert_array_equal(rows.lo, [-3.0, -12.0])
    np.testing.assert_array_equal(rows.hi, [2.5, 11.5])
    assert Interval.of_format(ArrayFormat(0, 0, [[0, 0]])).sum(axis=1).f.tolist() == [0]


def test_interval_of_format_round_trips():
    """A format's own interval needs exactly that format (negative i and f included)."""
    for fmt in GRID:
        assert Interval.of_format(fmt).to_format(fmt.rounding, fmt.overflow)[()] == fmt
    af = ArrayFormat([s.k for s in GRID], [s.i for s in GRID], [s.f for s in GRID])
    assert Interval.of_format(af).to_format() == af
