"""Shared steps of the conversion exactness tests: random bits, calibration, convert, verify."""

from __future__ import annotations

import numpy as np

from hgq_chip.calibration import calibrate
from hgq_chip.conversion import convert, verify


def randomize_bits(model, rng, act_f=(1, 5), weight_f=(0, 5)):
    """Random per-element fractional bits everywhere (some weights then quantize to zero); a layer
    family's own ranges where its FamilyCase declares them (``bit_ranges``, e.g. a narrow table index)."""
    from hgq_chip.testing.families import case_of_class

    for layer in model.layers:
        case = case_of_class(type(layer))
        own = {id(getattr(layer, a)): bounds for a, bounds in (case.bit_ranges.items() if case else ())}
        for q in getattr(layer, "quantizers", lambda: [])():
            lo, hi = own.get(id(q), act_f if hasattr(q, "record_range") else weight_f)
            q.f.assign(rng.integers(lo, hi + 1, size=q.f.shape).astype("float32"))


def _test_inputs(x_calibration, rng, n=64):
    """Calibration samples, uniform over the calibrated range, and up to 4x the span beyond it."""
    lo, hi = x_calibration.min(axis=0), x_calibration.max(axis=0)
    span = np.maximum(hi - lo, 1e-3)
    return np.concatenate([
        x_calibration[:n],
        rng.uniform(lo, hi, (n,) + lo.shape),
        rng.uniform(lo - 4 * span, hi + 4 * span, (n,) + lo.shape),
    ]).astype(np.float32)


def assert_bit_exact(model, x_calibration, directory, seed=0, **convert_options):
    """Calibrate on x (an array, or a list for several inputs), convert, and compare csim with
    Keras on calibration-range, uniform random and 4x-outside-the-range inputs; every value
    must be equal."""
    calibrate(model, x_calibration)
    convert(model, directory, log=lambda *_: None, **convert_options)
    rng = np.random.default_rng(seed)
    if isinstance(x_calibration, list):
        x = [_test_inputs(part, rng) for part in x_calibration]
    else:
        x = _test_inputs(x_calibration, rng)
    report = verify(model, directory, x, log=lambda *_: None)
    assert report.ok, report.describe()
    return report
