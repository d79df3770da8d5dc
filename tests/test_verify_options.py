"""verify's sampling options (random, seed, scale, batch_size) are checked by one function for the
Python API and the CLI: every bad value is an UnsupportedConfigurationError (CLI exit 5) naming the
option, raised before anything is compiled, never a bare TypeError/ValueError/OverflowError from
NumPy. A scale that would draw samples beyond the input dtype's largest number is refused with
the largest scale that fits (float32 samples would otherwise round to infinity: a false mismatch).
No g++ runs here (the project folder is never reached)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import hgq_chip
from hgq_chip.api import random_batches
from hgq_chip.errors import UnsupportedConfigurationError
from hgq_chip.sampling_options import CLI_NAMES, check_sampling_options
from mlp_models import MLPSpec, build_model, calibration_data

SPECS = [MLPSpec(n_in=4, widths=(3,), seed=3)]
QUIET = {"log": lambda message: None}


@pytest.fixture(scope="module")
def model():
    built = build_model(SPECS)
    hgq_chip.calibrate(built, calibration_data(SPECS, 64, seed=0))
    return built


BAD = [
    ({"random": 0}, "random must be at least 1"),
    ({"random": -3}, "random must be at least 1"),
    ({"random": 2.5}, "random must be a whole number"),
    ({"random": "8"}, "random must be a whole number"),
    ({"random": True}, "random must be a whole number"),
    ({"random": 5, "seed": -1}, "seed must be at least 0"),
    ({"random": 5, "seed": None}, "seed must be a whole number"),
    ({"random": 5, "seed": 1.5}, "seed must be a whole number"),
    ({"random": 5, "scale": 0}, "scale must be a positive finite"),
    ({"random": 5, "scale": -2.0}, "scale must be a positive finite"),
    ({"random": 5, "scale": math.inf}, "scale must be a positive finite"),
    ({"random": 5, "scale": math.nan}, "scale must be a positive finite"),
    ({"random": 5, "scale": None}, "scale must be a positive finite"),
    ({"random": 5, "scale": "4"}, "scale must be a positive finite"),
    ({"random": 5, "batch_size": 0}, "batch_size must be at least 1"),
    ({"random": 5, "batch_size": 2.5}, "batch_size must be a whole number"),
    ({"random": 5, "batch_size": "8"}, "batch_size must be a whole number"),
    ({"random": 5, "scale": 1e40}, "beyond float32's largest number"),
    ({"random": 5, "scale": 1e300}, "beyond float32's largest number"),
]


@pytest.mark.parametrize("options, message", BAD, ids=[str(o) for o, _ in BAD])
def test_bad_verify_options_are_typed_errors(model, tmp_path, options, message):
    with pytest.raises(UnsupportedConfigurationError, match=message):
        hgq_chip.verify(model, tmp_path / "never-read", **options, **QUIET)


@pytest.mark.parametrize("options, message", BAD, ids=[str(o) for o, _ in BAD])
def test_random_batches_refuse_the_same_values(model, options, message):
    options = dict(options)
    n = options.pop("random")
    with pytest.raises(UnsupportedConfigurationError, match=message):
        random_batches(model, n, **options)


def test_numpy_integers_are_accepted_and_bools_are_not():
    check_sampling_options(np.int64(5), np.uint8(3), np.float32(2.0), np.int32(7))
    with pytest.raises(UnsupportedConfigurationError, match="--batch-size must be a whole number"):
        check_sampling_options(5, 0, 4.0, False, CLI_NAMES)


def test_overflowing_scale_message_names_the_largest_scale_that_fits(model):
    with pytest.raises(UnsupportedConfigurationError) as raised:
        hgq_chip.random_inputs(model, 5, scale=1e40)
    largest = float(str(raised.value).split("use a scale of at most ")[1].split(" ")[0])
    x, = hgq_chip.random_inputs(model, 1000, scale=largest * 0.99)
    assert np.all(np.isfinite(x))


def test_a_batch_beyond_the_available_memory_is_refused_before_numpy_allocates(model, monkeypatch):
    from hgq_chip.conversion import csim_cost

    monkeypatch.setattr(csim_cost, "available_memory_mb", lambda: 10.0)
    with pytest.raises(UnsupportedConfigurationError, match="random_batches draws any number"):
        hgq_chip.random_inputs(model, 10**7)
    with pytest.raises(UnsupportedConfigurationError, match="pass a smaller batch_size"):
        random_batches(model, 10**7, batch_size=10**7)
    assert len(next(random_batches(model, 10**7, batch_size=1000))[0]) == 1000
