"""The CLI's working paths: convert prints the summary, verify compiles and compares, --quiet, --force.

One project is converted and compiled for the module; a stale project (converted from
other weights) makes verify fail with ProjectError before compiling, and the same project
without its weights fingerprint (as older hgq_chip wrote it) with the mismatch exit code.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import hgq_chip
from hgq_chip.cli import main
from hgq_chip.conversion.manifest import MANIFEST_FILE
from hgq_chip.errors import MismatchError, ProjectError
from mlp_models import MLPSpec, saved_model

SPECS = [MLPSpec(n_in=4, widths=(6, 3), granularity="per-channel", rounding="RND", overflow="SAT", seed=5)]


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    model, data = saved_model(root / "model.keras", SPECS)
    return root, model, data


def test_convert_prints_summary_and_writes_project(converted, tmp_path, capsys):
    root, model, _ = converted
    out = tmp_path / "prj"
    code, stdout, stderr = _run(capsys, "convert", root / "model.keras", "--backend", "vivado", "--output-dir", out,
                                "--reuse-factor", "1", "--clock-period", "4")
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    for layer in summary["layers"]:
        assert layer["layer"] in stdout
    assert f"{summary['total_ebops']}" in stdout and str(out) in stdout
    assert summary["total_ebops"] == hgq_chip.ebops(model)
    assert "[hgq_chip] writing Vivado io_parallel project" in stderr  # progress goes to stderr
    assert (out / "build_lib.sh").is_file() and (out / "weight_types.csv").is_file()


def test_convert_quiet_and_force(converted, tmp_path, capsys):
    root, _, _ = converted
    out = tmp_path / "prj"
    argv = ["convert", root / "model.keras", "--backend", "Vitis", "--output-dir", out, "--force", "--quiet"]
    assert _run(capsys, *argv)[0] == 0
    code, stdout, stderr = _run(capsys, *argv)  # --force replaces an earlier project
    assert code == 0 and stderr == ""
    (out / "stale.txt").write_text("old")  # a file added to it makes --force refuse: not convert's file
    assert _run(capsys, *argv)[0] == 14 and (out / "stale.txt").is_file()
    code, stdout, stderr = _run(capsys, *argv, "--replace-non-project")
    assert code == 0 and stderr == ""
    assert not (out / "stale.txt").exists() and (out / "summary.json").is_file()
    assert "total" in stdout


def test_verify_random_and_data_then_stale_project_mismatch(converted, tmp_path, capsys):
    """Exact on random out-of-range and on given data; a project of other weights fails with exit 16
    (its manifest's fingerprint), or, without the fingerprint, with exit 10 and the first mismatch."""
    root, _, data = converted
    out = tmp_path / "prj"
    assert _run(capsys, "convert", root / "model.keras", "--backend", "Vitis", "--output-dir", out, "--quiet")[0] == 0

    code, stdout, stderr = _run(capsys, "verify", root / "model.keras", out, "--random", "300", "--seed", "3")
    assert code == 0, stdout + stderr
    assert "mismatches: 0 of 900 values (300 samples)" in stdout and "bit-exact" in stdout
    assert "compiling C simulation" in stderr and "widened 4x" in stderr

    # The same model with one kernel weight moved by far more than its quantization step.
    other = hgq_chip.load_model(root / "model.keras")
    layer = other.get_layer("b0_d1")
    kernel = layer.kernel.numpy()
    kernel[0, 0] += 3.0
    layer.kernel.assign(kernel)
    other.save(tmp_path / "other.keras")
    np.save(tmp_path / "x.npy", data[0])
    code, stdout, stderr = _run(capsys, "verify", tmp_path / "other.keras", out, "--data", tmp_path / "x.npy", "--quiet")
    assert code == ProjectError.exit_code and stdout == ""
    assert stderr.startswith("hgq_chip: error: ") and stderr.count("\n") == 1 and "in layer 'b0_d1'" in stderr

    manifest = json.loads((out / MANIFEST_FILE).read_text())
    del manifest["weights_sha256"], manifest["layer_weights_sha256"]
    (out / MANIFEST_FILE).write_text(json.dumps(manifest))
    code, stdout, stderr = _run(capsys, "verify", tmp_path / "other.keras", out, "--data", tmp_path / "x.npy", "--quiet")
    assert code == MismatchError.exit_code
    assert stderr.startswith("hgq_chip: error: MISMATCH")
    count = int(stdout.split("mismatches: ")[1].split(" ")[0])
    assert 0 < count <= 256  # only output 0 of each sample depends on the changed weight
    assert "first mismatch: output 0, sample " in stdout and "element 0" in stdout


def test_random_inputs_cover_beyond_the_calibrated_range(converted):
    _, model, data = converted
    (lo, hi), = hgq_chip.input_ranges(model)
    assert np.array_equal(lo, data[0].min(axis=0)) and np.array_equal(hi, data[0].max(axis=0))
    x, = hgq_chip.random_inputs(model, 2000, seed=0, scale=4.0)
    assert x.dtype == np.float32 and x.shape == (2000, 4)
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    assert np.all(x >= centre - 4 * half - 1e-6) and np.all(x <= centre + 4 * half + 1e-6)
    assert np.all((x < lo).any(axis=0)) and np.all((x > hi).any(axis=0))


def test_verify_needs_exactly_one_input_source(converted, capsys):
    root, _, _ = converted
    with pytest.raises(SystemExit) as raised:
        main(["verify", str(root / "model.keras"), str(root)])
    assert raised.value.code == 2 and "--data" in capsys.readouterr().err


def test_console_script_entry_point():
    done = subprocess.run([sys.executable, "-m", "hgq_chip.cli", "convert", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    for option in ("--backend", "--output-dir", "--io-type", "--part", "--clock-period", "--reuse-factor",
                   "--strategy", "--force", "--quiet"):
        assert option in done.stdout
