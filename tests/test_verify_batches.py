"""verify streams its samples: Keras and the C simulation run one batch at a time, random samples are
drawn batch by batch (the batches put together equal ``random_inputs``), and memory stays bounded
for 10^6 samples. One g++ compilation for the module (a two-input model, so the per-input random
streams are checked too)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import hgq_chip
from hgq_chip.errors import SimulationTooLargeError, UnsupportedConfigurationError
from hgq_chip.api import random_batches
from hgq_chip.conversion import csim as csim_module
from hgq_chip.conversion.verification import VERIFY_BATCH
from hgq_chip.conversion.verification import VerifyReport, _add
from mlp_models import MLPSpec, build_model, calibration_data

SPECS = [MLPSpec(n_in=16, widths=(3,), seed=3), MLPSpec(n_in=2, widths=(2,), granularity="per-layer", seed=4)]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    model = build_model(SPECS)
    hgq_chip.calibrate(model, calibration_data(SPECS, 256, seed=0))
    out = tmp_path_factory.mktemp("batches") / "prj"
    hgq_chip.convert(model, out, log=lambda message: None)
    return model, out


@pytest.fixture
def batch_sizes(monkeypatch):
    """The number of samples of every C simulation run."""
    sizes = []
    run = csim_module.CSimulation.run

    def counting(self, inputs, output_sizes):
        sizes.append(len(inputs[0]))
        return run(self, inputs, output_sizes)

    monkeypatch.setattr(csim_module.CSimulation, "run", counting)
    return sizes


def test_random_batches_put_together_are_random_inputs(project):
    model, _ = project
    whole = hgq_chip.random_inputs(model, 1000, seed=5)
    batches = list(random_batches(model, 1000, seed=5, batch_size=300))
    assert [len(b[0]) for b in batches] == [300, 300, 300, 100]
    for index, array in enumerate(whole):
        assert np.array_equal(np.concatenate([b[index] for b in batches]), array)
        assert array.dtype == np.float32


def test_random_verify_runs_in_batches_and_is_bit_exact(project, batch_sizes):
    model, out = project
    report = hgq_chip.verify(model, out, random=20_000, seed=2, batch_size=3000, log=lambda message: None)
    assert report.ok and report.n_samples == 20_000, report.describe()
    assert batch_sizes == [3000] * 6 + [2000]
    assert report.n_values == 20_000 * (3 + 2)


def test_array_verify_runs_in_batches(project, batch_sizes):
    model, out = project
    x = hgq_chip.random_inputs(model, 5000, seed=3)
    whole = hgq_chip.verify(model, out, x, log=lambda message: None)
    batched = hgq_chip.verify(model, out, x, batch_size=2048, log=lambda message: None)
    assert batch_sizes == [5000, 2048, 2048, 904]
    assert whole.ok and batched.ok
    assert (whole.n_samples, whole.n_values) == (batched.n_samples, batched.n_values) == (5000, 25000)


def test_first_mismatch_counts_samples_of_earlier_batches():
    report = VerifyReport(0, 0, 0, None)
    same = [np.zeros((4, 2))]
    _add(report, same, [np.zeros((4, 2))])
    other = np.zeros((3, 2))
    other[1, 1] = 0.5
    _add(report, [np.zeros((3, 2))], [other])
    assert (report.n_samples, report.n_values, report.n_mismatches) == (7, 14, 1)
    assert report.first_mismatch == (0, (5, 1), 0.0, 0.5)


def test_batch_size_must_be_positive(project):
    model, out = project
    with pytest.raises(UnsupportedConfigurationError, match="batch_size must be at least 1"):
        hgq_chip.verify(model, out, random=10, batch_size=0, log=lambda message: None)


@pytest.mark.slow
def test_a_million_random_samples_verify_in_bounded_memory(project, batch_sizes):
    """10^6 samples of 18 float32 inputs are 72 MB (144 MB as the firmware's float64); verify holds
    one batch (8192 samples: under 1.2 MB of float64 inputs), so Python's peak allocation stays far
    below the size of the whole set."""
    model, out = project
    n = 1_000_000
    tracemalloc.start()
    try:
        report = hgq_chip.verify(model, out, random=n, seed=9, log=lambda message: None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.ok and report.n_samples == n, report.describe()
    assert sum(batch_sizes) == n and max(batch_sizes) == VERIFY_BATCH
    whole_inputs = n * (16 + 2) * 4
    assert peak < whole_inputs / 4, f"peak traced allocation {peak / 2**20:.1f} MiB"


def test_project_too_large_to_compile_is_refused_before_g_plus_plus(project, tmp_path, monkeypatch, capsys):
    """The predicted cost is checked once the project matches the model, before g++ starts; the CLI exits 17.
    (The limit is lowered: a real project over an hour of g++ takes that hour to make.)"""
    from hgq_chip.cli import main
    from hgq_chip.conversion import csim_cost

    model, _ = project
    out = tmp_path / "prj"
    hgq_chip.convert(model, out, log=lambda message: None)
    model.save(tmp_path / "model.keras")
    monkeypatch.setattr(csim_cost, "MAX_COMPILE_SECONDS", 1.0)
    with pytest.raises(SimulationTooLargeError, match="allow_large=True"):
        hgq_chip.verify(model, out, random=5, log=lambda message: None)
    code = main(["verify", str(tmp_path / "model.keras"), str(out), "--random", "5", "--quiet"])
    assert code == SimulationTooLargeError.exit_code == 17
    assert "--allow-large" in capsys.readouterr().err
    assert not list(out.rglob("*.so"))
