"""FixedFormat / ArrayFormat, hls4ml type strings, minimal formats and interval arithmetic."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hgq_chip.fixed import (
    ArrayFormat,
    FixedFormat,
    Overflow,
    Rounding,
    parse_ap_type,
    render_ap_type,
    render_hls4ml_precision,
)
from hgq_chip.testing.ap_harness_source import MODE_COMBINATIONS, default_formats

GRID = default_formats()
ZERO_WIDTH = [FixedFormat(k, i, -k - i, r, o) for k, i in itertools.product((0, 1), (-3, -1, 0, 2)) for r, o in MODE_COMBINATIONS]


from fixed_helpers import all_values, q, representable  # noqa: E402


# --------------------------------------------------------------------------- FixedFormat


@pytest.mark.parametrize(
    "fmt, step, lo, hi",
    [
        (FixedFormat(1, 2, 3), 0.125, -4.0, 3.875),
        (FixedFormat(1, 2, 3, "RND", "SAT_SYM"), 0.125, -3.875, 3.875),
        (FixedFormat(0, 3, 2), 0.25, 0.0, 7.75),
        (FixedFormat(0, 3, 2, overflow="SAT_SYM"), 0.25, 0.0, 7.75),
        (FixedFormat(1, -2, 5), 2.0**-5, -0.25, 7 / 32),
        (FixedFormat(0, 6, -2), 4.0, 0.0, 60.0),
        (FixedFormat(1, 0, 0), 1.0, -1.0, 0.0),
        (FixedFormat(1, 0, 0, overflow="SAT_SYM"), 1.0, -1.0, 0.0),  # 1 bit: AP_SAT_SYM keeps -1
        (FixedFormat(1, 1, 0, overflow="SAT_SYM"), 1.0, -1.0, 1.0),
        (FixedFormat(0, 0, 0), 1.0, 0.0, 0.0),
        (FixedFormat(1, -1, 0), 1.0, 0.0, 0.0),  # zero width holds only 0
        (FixedFormat(1, -3, 2, overflow="SAT_SYM"), 0.25, 0.0, 0.0),
    ],
)
def test_fixed_format_step_min_max(fmt, step, lo, hi):
    assert (fmt.step, fmt.min, fmt.max) == (step, lo, hi)
    assert fmt.width == fmt.k + fmt.i + fmt.f
    assert fmt.signed == bool(fmt.k)


def test_min_max_are_what_saturation_gives():
    """min and max are the saturated results of -huge and +huge (WRAP: the SAT range)."""
    for fmt in list(GRID) + ZERO_WIDTH:
        sat = fmt.with_modes(overflow=Overflow.SAT if fmt.overflow is Overflow.WRAP else fmt.overflow)
        assert q([1e9, -1e9], sat).tolist() == [fmt.max, fmt.min], fmt
        if 0 < fmt.width <= 12:
            values = all_values(fmt)
            assert representable(values, fmt.k, fmt.i, fmt.f), fmt
            sym = fmt.overflow is Overflow.SAT_SYM and fmt.k and fmt.width > 1
            assert values.size == 2**fmt.width - sym, fmt


def test_min_max_agree_with_ap_fixed(ap_harness):
    sat_formats = [fmt for fmt in GRID if fmt.overflow is not Overflow.WRAP]
    results = ap_harness.cast_many([(np.array([1e9, -1e9]), fmt) for fmt in sat_formats])
    for fmt, got in zip(sat_formats, results):
        assert got.tolist() == [fmt.max, fmt.min], fmt


def test_fixed_format_normalizes_and_validates():
    fmt = FixedFormat(True, 2.0, np.int64(3), "ap_rnd", "AP_SAT_SYM")
    assert fmt == FixedFormat(1, 2, 3, Rounding.RND, Overflow.SAT_SYM)
    assert isinstance(fmt.i, int) and isinstance(fmt.f, int)
    assert hash(fmt) == hash(FixedFormat(1, 2, 3, "RND", "SAT_SYM"))
    assert fmt.with_modes(rounding="TRN") == FixedFormat(1, 2, 3, "TRN", "SAT_SYM")
    assert fmt.with_modes(overflow="WRAP") == FixedFormat(1, 2, 3, "RND", "WRAP")
    assert FixedFormat(1, 2, 3).rounding is Rounding.TRN and FixedFormat(1, 2, 3).overflow is Overflow.WRAP
    with pytest.raises(ValueError, match="sign bit"):
        FixedFormat(2, 1, 1)
    with pytest.raises(ValueError, match="integer"):
        FixedFormat(1, 1.5, 1)
    with pytest.raises(ValueError, match="width"):
        FixedFormat(0, -3, 2)
    with pytest.raises(ValueError, match="rounding"):
        FixedFormat(1, 2, 3, "RND_ZERO")
    with pytest.raises(ValueError, match="overflow"):
        FixedFormat(1, 2, 3, "RND", "SAT_ZERO")


def test_mode_parsing():
    assert Rounding.parse("AP_RND") is Rounding.RND
    assert Rounding.parse("trn") is Rounding.TRN
    assert Overflow.parse("ap_sat_sym") is Overflow.SAT_SYM
    assert Overflow.parse(Overflow.WRAP) is Overflow.WRAP
    with pytest.raises(ValueError):
        Rounding.parse("RND_ZERO")
    with pytest.raises(ValueError):
        Overflow.parse("WRAP_SM")


# --------------------------------------------------------------------------- HLS type strings


@pytest.mark.parametrize(
    "fmt, text",
    [
        (FixedFormat(1, 2, 3), "ap_fixed<6,3>"),
        (FixedFormat(1, 2, 3, "RND", "SAT"), "ap_fixed<6,3,AP_RND,AP_SAT>"),
        (FixedFormat(1, 2, 3, "RND", "WRAP"), "ap_fixed<6,3,AP_RND,AP_WRAP>"),
        (FixedFormat(0, 2, 3, "TRN", "SAT_SYM"), "ap_ufixed<5,2,AP_TRN,AP_SAT_SYM>"),
        (FixedFormat(1, -3, 5), "ap_fixed<3,-2>"),
        (FixedFormat(0, 6, -2), "ap_ufixed<4,6>"),
    ],
)
def test_to_hls(fmt, text):
    assert fmt.to_hls() == render_ap_type(fmt) == text
    assert FixedFormat.from_hls(text) == fmt


@pytest.mark.parametrize(
    "text, fmt",
    [
        ("fixed<16,6,RND,SAT,0>", FixedFormat(1, 5, 10, "RND", "SAT")),
        ("fixed<16,6,RND,SAT>", FixedFormat(1, 5, 10, "RND", "SAT")),
        ("ufixed<8,2>", FixedFormat(0, 2, 6)),
        ("ap_int<8>", FixedFormat(1, 7, 0)),
        ("ap_uint<4>", FixedFormat(0, 4, 0)),
        ("int<8>", FixedFormat(1, 7, 0)),
        ("uint<4>", FixedFormat(0, 4, 0)),
        ("ap_fixed<4,-2>", FixedFormat(1, -3, 6)),
        ("ap_ufixed<4,6>", FixedFormat(0, 6, -2)),
        ("ap_ufixed<4,-1>", FixedFormat(0, -1, 5)),
        ("ap_fixed<8,3,AP_RND>", FixedFormat(1, 2, 5, "RND", "WRAP")),
        ("ap_fixed<8,3,AP_RND,AP_SAT_SYM>", FixedFormat(1, 2, 5, "RND", "SAT_SYM")),
        ("  ap_fixed< 8 , 3 , AP_TRN , AP_SAT >  ", FixedFormat(1, 2, 5, "TRN", "SAT")),
    ],
)
def test_from_hls(text, fmt):
    assert FixedFormat.from_hls(text) == parse_ap_type(text) == fmt


@pytest.mark.parametrize(
    "text",
    [
        "float",
        "ap_fixed<8>",
        "ap_fixed<8,3",
        "ap_int<0>",
        "ap_fixed<0,0>",
        "ap_fixed<-1,2>",
        "ap_fixed<a,3>",
        "fixed<16,6,RND,SAT,1>",
        "fixed<8,3,RND_ZERO,SAT>",
        "fixed<8,3,RND,SAT_ZERO>",
        "ap_fixed<8,3,AP_RND,AP_SAT,0,1>",
        "ac_fixed<8,3,true>",
    ],
)
def test_from_hls_errors(text):
    with pytest.raises(ValueError):
        FixedFormat.from_hls(text)


def test_zero_width_has_no_hls_type():
    for fmt in ZERO_WIDTH:
        with pytest.raises(ValueError, match="zero width"):
            fmt.to_hls()
        with pytest.raises(ValueError, match="zero width"):
            render_hls4ml_precision(fmt)


def test_round_trips():
    for fmt in GRID:
        assert FixedFormat.from_hls(fmt.to_hls()) == fmt
        assert parse_ap_type(render_hls4ml_precision(fmt)) == fmt


def test_hls4ml_parser_agrees():
    """hls4ml reads our strings (both spellings) as the same type, and we read its str() back."""
    from hls4ml.backends.fpga.fpga_backend import FPGABackend

    for fmt in GRID:
        for text in (render_hls4ml_precision(fmt), render_ap_type(fmt)):
            p = FPGABackend.convert_precision_string(text)
            got = (p.width, p.integer, p.signed, p.rounding_mode.name, p.saturation_mode.name)
            assert got == (fmt.width, fmt.k + fmt.i, bool(fmt.k), fmt.rounding.value, fmt.overflow.value), text
            assert p.fractional == fmt.f
            assert FixedFormat.from_hls(str(p)) == fmt
    for text in ("ap_int<8>", "ap_uint<4>", "fixed<16,6,RND,SAT,0>", "ufixed<8,2>"):
        p = FPGABackend.convert_precision_string(text)
        fmt = FixedFormat.from_hls(text)
        assert (p.width, p.integer, p.signed) == (fmt.width, fmt.k + fmt.i, bool(fmt.k))
        assert FixedFormat.from_hls(str(p)) == fmt


# --------------------------------------------------------------------------- ArrayFormat


def test_array_format_broadcasts_and_indexes():
    af = ArrayFormat(1, [0, 1, 2], [[3], [4]], "RND", "SAT")
    assert af.shape == (2, 3)
    assert af.k.shape == af.i.shape == af.f.shape == (2, 3)
    assert af[1, 2] == FixedFormat(1, 2, 4, "RND", "SAT")
    np.testing.assert_array_equal(af.width, [[4, 5, 6], [5, 6, 7]])
    uniform = ArrayFormat.uniform(FixedFormat(0, 2, 3, "TRN", "SAT_SYM"), (4, 2))
    assert uniform.shape == (4, 2) and uniform[3, 1] == FixedFormat(0, 2, 3, "TRN", "SAT_SYM")
    assert uniform == ArrayFormat(np.zeros((4, 2)), 2, 3, "TRN", "SAT_SYM")
    assert uniform != ArrayFormat(np.zeros((4, 2)), 2, 3, "TRN", "SAT")
    assert uniform != ArrayFormat(np.zeros((4, 1)), 2, 3, "TRN", "SAT_SYM")
    assert uniform != ArrayFormat.uniform(FixedFormat(0, 2, 2, "TRN", "SAT_SYM"), (4, 2))
    assert (uniform == 3) is False


def test_array_format_validates():
    with pytest.raises(ValueError, match="sign"):
        ArrayFormat([0, 2], 1, 1)
    with pytest.raises(ValueError, match="integers"):
        ArrayFormat(1, [1.5, 2], 1)
    with pytest.raises(ValueError, match="width"):
        ArrayFormat(0, [-3, 1], 2)
    with pytest.raises(ValueError):
        ArrayFormat(1, [1, 2, 3], [1, 2])  # shapes do not broadcast


@pytest.mark.parametrize("mode", MODE_COMBINATIONS, ids=lambda m: f"{m[0].value}-{m[1].value}")
def test_array_format_properties_match_elements(mode):
    scalars = [fmt for fmt in list(GRID) + ZERO_WIDTH if (fmt.rounding, fmt.overflow) == mode]
    af = ArrayFormat([s.k for s in scalars], [s.i for s in scalars], [s.f for s in scalars], *mode)
    assert [af[j] for j in range(len(scalars))] == scalars
    np.testing.assert_array_equal(af.width, [s.width for s in scalars])
    np.testing.assert_array_equal(af.step, [s.step for s in scalars])
    np.testing.assert_array_equal(af.max, [s.max for s in scalars])
    np.testing.assert_array_equal(af.min, [s.min for s in scalars])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(-3, 4), st.integers(-2, 4)), min_size=1, max_size=6))
def test_array_format_covering_holds_every_element_and_is_narrowest(kifs):
    kifs = [(k, i, f) for k, i, f in kifs if k + i + f >= 0]
    if not kifs:
        return
    af = ArrayFormat(*(np.array(c) for c in zip(*kifs)))
    cover = af.covering()
    nonzero = [af[j] for j in range(len(kifs)) if af[j].width > 0]
    if not nonzero:
        assert cover.width == 0
        return
    values = [all_values(fmt) for fmt in nonzero]
    assert all(representable(v, cover.k, cover.i, cover.f) for v in values)
    # One bit less anywhere loses some element's value.
    for k, i, f in ((cover.k - 1, cover.i, cover.f), (cover.k, cover.i - 1, cover.f), (cover.k, cover.i, cover.f - 1)):
        if k >= 0:
            assert not all(representable(v, k, i, f) for v in values), (k, i, f)
