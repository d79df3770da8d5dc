"""Three-way exactness: NumPy reference == Keras op (float32) == ap_fixed/ap_ufixed in C++.

The C++ side casts a double to the ap types hls4ml ships and reads it back with
``to_double()`` (hgq_chip.testing.ap_harness). Every input is a float32 value, because the
Keras op runs in float32; the comparisons are bit-exact (np.array_equal).

Domain of the Keras op (documented limits of float32 arithmetic, tested in
test_keras_op_domain_limits): |x| * 2**f must stay below 2**128 (no float32 overflow) and
nonzero |x| and |x| * 2**f must be normal floats (TensorFlow flushes subnormals to zero).
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grid_values import format_values, in_keras_domain, to_float32
from hgq_chip.fixed import FixedFormat, Overflow, Rounding, parse_ap_type
from hgq_chip.fixed.quantize_np import quantize as quantize_np
from hgq_chip.fixed.quantize_ops import quantize as quantize_ops
from hgq_chip.testing.ap_harness import get_harness
from hgq_chip.testing.ap_harness_source import (
    DEFAULT_F,
    DEFAULT_I,
    DEFAULT_K,
    MODE_COMBINATIONS,
    default_formats,
    render_harness_type,
)

pytestmark = pytest.mark.keras_level  # also run under JAX in CI (docs/backends.md, "Backends in CI")

GRID = default_formats()
KIF = sorted({(fmt.k, fmt.i, fmt.f) for fmt in GRID})
MODE_IDS = [f"{r.value}-{o.value}" for r, o in MODE_COMBINATIONS]
MIN_VALUES_PER_MODE = 100_000


# --------------------------------------------------------------------------- helpers


def keras_quantize(x32, k, i, f, rounding, overflow) -> np.ndarray:
    return keras.ops.convert_to_numpy(quantize_ops(x32, k, i, f, rounding, overflow))


def mismatch_report(x, fmt_of, results: dict[str, np.ndarray]) -> str | None:
    """None when all results are identical, else where and how they first differ.

    ``fmt_of(index)`` names the format of element ``index``.
    """
    names = list(results)
    base = results[names[0]]
    bad = np.zeros(np.shape(x), dtype=bool)
    for name in names[1:]:
        bad |= ~(results[name] == base)  # NaN compares unequal, so it is reported
    if not bad.any():
        return None
    where = np.flatnonzero(bad)
    where = where[np.argsort(np.abs(np.asarray(x, np.float64)[where]), kind="stable")]  # simplest first
    lines = [f"{where.size} of {bad.size} values differ. Smallest |x| first:"]
    for idx in where[:5]:
        fmt = fmt_of(idx)
        value = float(x[idx])
        lines.append(f"  x = {value!r} ({value.hex()}) in {fmt} = {render_harness_type(fmt)}:")
        lines.extend(f"      {name:>6}: {float(results[name][idx])!r}" for name in names)
    return "\n".join(lines)


def out_of_range_report(x, values, fmt_of, lo, hi) -> str | None:
    bad = ~((values >= lo) & (values <= hi))
    if not bad.any():
        return None
    idx = int(np.flatnonzero(bad)[0])
    fmt = fmt_of(idx)
    return f"{bad.sum()} results outside their format's range; first: x={float(x[idx])!r} -> {values[idx]!r} in {fmt}"


# --------------------------------------------------------------------------- the big grid test


@pytest.fixture(scope="module")
def grid_results(ap_harness):
    """All three quantizers on every compiled format; one harness run for everything."""
    values = {(k, i, f): format_values(k, i, f, np.random.default_rng([k, i + 16, f + 16])) for k, i, f in KIF}
    formats_by_mode = {mode: [fmt for fmt in GRID if (fmt.rounding, fmt.overflow) == mode] for mode in MODE_COMBINATIONS}
    ap_all = ap_harness.cast_many([(values[(fmt.k, fmt.i, fmt.f)].astype(np.float64), fmt) for fmt in GRID])
    ap_of = dict(zip(GRID, ap_all))

    results = {}
    for mode, formats in formats_by_mode.items():
        chunks = [values[(fmt.k, fmt.i, fmt.f)] for fmt in formats]
        owner = np.repeat(np.arange(len(formats)), [c.size for c in chunks])
        x = np.concatenate(chunks)
        k = np.array([fmt.k for fmt in formats])[owner]
        i = np.array([fmt.i for fmt in formats])[owner]
        f = np.array([fmt.f for fmt in formats])[owner]
        fmin = np.array([fmt.min for fmt in formats])[owner]
        fmax = np.array([fmt.max for fmt in formats])[owner]
        results[mode] = dict(
            x=x,
            formats=formats,
            owner=owner,
            bounds=(fmin, fmax),
            numpy=quantize_np(x, k, i, f, *mode),
            keras=keras_quantize(x, k, i, f, *mode),
            ap_fixed=np.concatenate([ap_of[fmt] for fmt in formats]),
        )
    return results


@pytest.mark.parametrize("mode", MODE_COMBINATIONS, ids=MODE_IDS)
def test_three_way_exact_on_format_grid(grid_results, mode):
    r = grid_results[mode]
    x, formats, owner = r["x"], r["formats"], r["owner"]
    assert x.dtype == np.float32
    assert x.size >= MIN_VALUES_PER_MODE, f"only {x.size} test values for {mode}"
    fmt_of = lambda idx: formats[owner[idx]]  # noqa: E731
    report = mismatch_report(x, fmt_of, {"numpy": r["numpy"], "keras": r["keras"], "ap": r["ap_fixed"]})
    if report:
        pytest.fail(report, pytrace=False)
    report = out_of_range_report(x, r["numpy"], fmt_of, *r["bounds"])
    if report:
        pytest.fail(report, pytrace=False)


@pytest.mark.parametrize("mode", MODE_COMBINATIONS, ids=MODE_IDS)
def test_grid_inputs_cover_ties_edges_and_overflow(grid_results, mode):
    """The inputs really contain what the grid test claims to exercise."""
    r = grid_results[mode]
    x = r["x"].astype(np.float64)
    f = np.array([fmt.f for fmt in r["formats"]])[r["owner"]]
    scaled = x * 2.0**f
    fmin, fmax = r["bounds"]
    step = 2.0**-f
    assert np.sum(scaled - np.floor(scaled) == 0.5) > 20_000  # ties
    assert np.sum(x == fmax) >= len(r["formats"]) and np.sum(x == fmin) >= len(r["formats"])
    assert np.sum(x == fmax + step) >= len(r["formats"]) and np.sum(x == fmin - step) >= len(r["formats"])
    assert np.sum(np.abs(x) > 1000 * np.maximum(fmax, step)) > 10_000  # far outside


def test_zero_width_formats_give_zero():
    zero_width = [(k, i, f) for k, i, f in itertools.product(DEFAULT_K, DEFAULT_I + (-2,), DEFAULT_F) if k + i + f == 0]
    assert len(zero_width) >= 8
    rng = np.random.default_rng(5)
    for k, i, f in zero_width:
        x = format_values(k, i, f + 1, rng)  # values around the 1-bit neighbour's range
        x = x[in_keras_domain(x, f)]
        for mode in MODE_COMBINATIONS:
            assert not np.any(quantize_np(x, k, i, f, *mode)), (k, i, f, mode)
            assert not np.any(keras_quantize(x, k, i, f, *mode)), (k, i, f, mode)


# --------------------------------------------------------------------------- the harness itself


def test_harness_types_match_formats(ap_harness):
    listed = ap_harness.listed_types()
    assert len(listed) == len(GRID) == len(ap_harness.formats)
    assert [parse_ap_type(t) for t in listed] == list(GRID)


@pytest.mark.parametrize(
    "fmt, x, expected",
    [
        # AP_RND: ties go towards +inf, for negative values too.
        (FixedFormat(1, 2, 3, "RND", "SAT"), [0.0625, -0.0625, 0.1875, -0.1875, 100.0, -100.0], [0.125, 0.0, 0.25, -0.125, 3.875, -4.0]),
        (FixedFormat(1, 2, 3, "RND", "SAT_SYM"), [-100.0, -3.96875, 3.96875], [-3.875, -3.875, 3.875]),
        (FixedFormat(1, 2, 3, "TRN", "WRAP"), [4.0, -0.0625, -4.0625, 7.99], [-4.0, -0.125, 3.875, -0.125]),
        (FixedFormat(0, 2, 2, "TRN", "WRAP"), [-0.25, 4.0, 5.5], [3.75, 0.0, 1.5]),
        (FixedFormat(0, 2, 2, "RND", "SAT_SYM"), [-0.125, -3.0, 3.875, 9.0], [0.0, 0.0, 3.75, 3.75]),
        (FixedFormat(1, -3, 5, "RND", "WRAP"), [0.125, -0.125, 0.109375, 0.046875, -0.15625], [-0.125, -0.125, -0.125, 0.0625, 0.09375]),
        (FixedFormat(0, 4, -2, "RND", "SAT"), [2.0, 1.99, 13.0, 100.0], [4.0, 0.0, 12.0, 12.0]),
        # A 1-bit signed type: AP_SAT_SYM keeps the lowest code (sign bit == LSB), like AP_SAT.
        (FixedFormat(1, 0, 0, "TRN", "SAT_SYM"), [-100.0, -0.25, 0.5, 100.0], [-1.0, -1.0, 0.0, 0.0]),
        (FixedFormat(1, 0, 0, "RND", "SAT_SYM"), [-100.0, -0.75, -0.5, 0.5], [-1.0, -1.0, 0.0, 0.0]),
    ],
)
def test_harness_golden_values(ap_harness, fmt, x, expected):
    """Hand-computed ap_fixed results, independent of the NumPy reference."""
    assert ap_harness.cast(np.array(x), fmt).tolist() == expected
    assert quantize_np(np.array(x), fmt.k, fmt.i, fmt.f, fmt.rounding, fmt.overflow).tolist() == expected


def test_harness_rejects_bad_requests(ap_harness):
    with pytest.raises(ValueError, match="zero width"):
        ap_harness.cast([1.0], FixedFormat(1, -1, 0))
    with pytest.raises(ValueError, match="not compiled"):
        ap_harness.cast([1.0], FixedFormat(1, 30, 0))
    with pytest.raises(ValueError, match="finite"):
        ap_harness.cast([np.nan], GRID[0])
    assert ap_harness.cast_many([]) == []
    out = ap_harness.cast(np.zeros((2, 3)), GRID[0])
    assert out.shape == (2, 3)


def test_missing_compiler_raises_tool_missing_error(tmp_path):
    from hgq_chip.errors import ToolMissingError
    from hgq_chip.testing.ap_harness import build_harness

    with pytest.raises(ToolMissingError, match="install"):
        build_harness(GRID[:1], compiler="no-such-compiler-hgq", cache_dir=tmp_path)


def test_keras_op_domain_limits():
    """Outside the documented float32 domain the Keras op may differ; inside, it agrees."""
    fmt = (1, 2, 3, "TRN", "WRAP")
    # Largest magnitude inside the domain still agrees...
    x = np.float32([np.nextafter(np.float32(2.0 ** (128 - 3)), np.float32(0))] * 1 + [-(2.0**124)])
    assert in_keras_domain(x, 3).all()
    np.testing.assert_array_equal(keras_quantize(x, *fmt), quantize_np(x, *fmt))
    # ...and the edges of the domain are where the helper says they are.
    assert not in_keras_domain(np.float32([2.0**125]), 3).any()
    assert not in_keras_domain(np.float32([-1e-40]), 0).any()  # subnormal input
    assert not in_keras_domain(np.float32([-(2.0**-125)]), -2).any()  # subnormal once scaled


@pytest.mark.parametrize(
    "x, fmt",
    [
        (2.0**126, (1, 2, 3, "TRN", "WRAP")),  # x * 2**3 overflows float32: inf - inf = NaN
        (-1e-40, (1, 2, 3, "TRN", "WRAP")),  # subnormal input flushed to zero: floor gives 0, not -1
        (-(2.0**-125), (1, 4, -2, "TRN", "SAT")),  # normal input, subnormal once scaled by 2**-2
    ],
)
def test_keras_op_outside_domain_differs_as_documented(x, fmt):
    """The documented float32 limits are real: outside the domain the Keras op differs.

    If a Keras/TensorFlow release stops flushing subnormals or overflowing, this fails and
    the domain in the module docstring (and ``in_keras_domain``) should be widened.
    """
    x = np.float32([x])
    assert not in_keras_domain(x, fmt[2]).any()
    assert not np.array_equal(keras_quantize(x, *fmt), quantize_np(x, *fmt), equal_nan=True)


# --------------------------------------------------------------------------- property tests


FINITE_F32 = st.floats(width=32, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def format_jobs(draw):
    """1-6 (format, float32 values) pairs; values mix arbitrary floats with near-grid points."""
    jobs = []
    for _ in range(draw(st.integers(1, 6))):
        fmt = draw(st.sampled_from(GRID))
        arbitrary = draw(st.lists(FINITE_F32, max_size=24))
        reach = 2 ** (fmt.width + 2)
        near_grid = draw(
            st.lists(
                st.tuples(st.integers(-reach, reach), st.sampled_from([0.0, 0.25, 0.5, 0.75, -0.5])),
                max_size=24,
            )
        )
        x = np.array(arbitrary + [(m + frac) * fmt.step for m, frac in near_grid], dtype=np.float64)
        x = to_float32(x)
        x = x[in_keras_domain(x, fmt.f)]
        jobs.append((fmt, x if x.size else np.zeros(1, np.float32)))
    return jobs


@pytest.mark.usefixtures("ap_harness")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jobs=format_jobs())
def test_three_way_exact_property(jobs):
    # The harness comes from get_harness() (built by the fixture), not as an argument, so that
    # Hypothesis does not print its 1000-format repr in a falsifying example.
    ap_results = get_harness().cast_many([(x.astype(np.float64), fmt) for fmt, x in jobs])
    for (fmt, x), ap in zip(jobs, ap_results):
        modes = (fmt.k, fmt.i, fmt.f, fmt.rounding, fmt.overflow)
        report = mismatch_report(
            x, lambda idx: fmt, {"numpy": quantize_np(x, *modes), "keras": keras_quantize(x, *modes), "ap": ap}
        )
        assert report is None, report


@settings(max_examples=100, deadline=None)
@given(
    fmt=st.sampled_from(GRID),
    x=st.lists(FINITE_F32, min_size=1, max_size=32),
)
def test_result_is_a_fixed_point_of_the_quantizer(fmt, x):
    """q(q(x)) == q(x), and q(x) lies on the format's grid and inside its range."""
    x = to_float32(x)
    x = x[in_keras_domain(x, fmt.f)]
    args = (fmt.k, fmt.i, fmt.f, fmt.rounding, fmt.overflow)
    q = quantize_np(x, *args)
    np.testing.assert_array_equal(quantize_np(q, *args), q)
    assert np.all(q * 2.0**fmt.f == np.round(q * 2.0**fmt.f))
    assert np.all((q >= fmt.min) & (q <= fmt.max))
    if fmt.overflow is not Overflow.WRAP:
        # Saturation is monotonic.
        order = np.argsort(x, kind="stable")
        assert np.all(np.diff(q[order]) >= 0)
    if fmt.rounding is Rounding.TRN and fmt.overflow is not Overflow.WRAP:
        assert np.all((q <= np.maximum(x, fmt.min)) | (q == fmt.min))
