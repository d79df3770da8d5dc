"""Every error a user can hit in convert/verify, through the CLI: exit code, message, no output left.

Nothing here compiles C++: each error is raised before (or instead of) compiling, so
these tests take seconds.
"""

from __future__ import annotations

import os
import sys

import keras
import numpy as np
import pytest

import hgq_chip
from hgq_chip.cli import main
from hgq_chip.conversion import project as project_module
from hgq_chip.errors import (
    CalibrationError,
    ModelFileError,
    NumericError,
    ProjectError,
    ToolMissingError,
    UnsupportedConfigurationError,
    UnsafeOutputError,
    UnsupportedLayerError,
)
from hgq_chip.layers import HDense, HQuantize
from mlp_models import MLPSpec, saved_model

PER_ELEMENT = [MLPSpec(n_in=4, widths=(5, 2), granularity="per-element", seed=1)]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    saved_model(root / "calibrated.keras", PER_ELEMENT)
    saved_model(root / "uncalibrated.keras", PER_ELEMENT, calibrate=False)
    inp = keras.Input((4,))
    x = HDense(3, activation="relu")(HQuantize()(inp))
    unsupported = keras.Model(inp, keras.layers.LayerNormalization(name="my_norm")(x))
    hgq_chip.calibrate(unsupported, np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32))
    unsupported.save(root / "unsupported.keras")
    (root / "corrupt.keras").write_bytes(b"this is not a keras zip archive")
    return root


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_nothing_written(parent, name="out"):
    """Neither the output directory nor convert's staging directory (.out.*) is left behind."""
    left = [p.name for p in parent.iterdir() if p.name == name or p.name.startswith(f".{name}.")]
    assert left == [], left


def _convert(models, model_name, out, *extra):
    return ("convert", models / model_name, "--backend", "Vitis", "--output-dir", out, "--quiet", *extra)


def test_unsupported_layer_is_named_with_its_way_forward(models, tmp_path, capsys):
    code, out, err = _run(capsys, *_convert(models, "unsupported.keras", tmp_path / "out"))
    assert code == UnsupportedLayerError.exit_code
    assert err.startswith("hgq_chip: error: ")
    assert "'my_norm'" in err and "LayerNormalization" in err
    assert "use hgq_chip.layers.HLayerNormalization" in err  # conversion/layer_hints.py
    _assert_nothing_written(tmp_path)


def test_uncalibrated_model_says_to_calibrate(models, tmp_path, capsys):
    code, _, err = _run(capsys, *_convert(models, "uncalibrated.keras", tmp_path / "out"))
    assert code == CalibrationError.exit_code
    assert "never recorded" in err and "hgq_chip.calibrate(model, x)" in err
    _assert_nothing_written(tmp_path)


def test_io_stream_with_per_element_activations_explains_the_fix(models, tmp_path, capsys):
    code, _, err = _run(capsys, *_convert(models, "calibrated.keras", tmp_path / "out", "--io-type", "io_stream"))
    assert code == UnsupportedConfigurationError.exit_code
    assert "per-element" in err and "per-layer" in err and "io_parallel" in err
    _assert_nothing_written(tmp_path)


def test_unknown_backend_lists_the_known_ones(models, tmp_path, capsys):
    argv = ["convert", models / "calibrated.keras", "--backend", "Quartus", "--output-dir", tmp_path / "out"]
    code, _, err = _run(capsys, *argv)
    assert code == UnsupportedConfigurationError.exit_code
    assert "'Quartus'" in err and "Vitis" in err and "Vivado" in err
    _assert_nothing_written(tmp_path)


def test_unknown_io_type_and_strategy(models, tmp_path, capsys):
    code, _, err = _run(capsys, *_convert(models, "calibrated.keras", tmp_path / "out", "--io-type", "io_serial"))
    assert code == UnsupportedConfigurationError.exit_code and "io_parallel" in err
    code, _, err = _run(capsys, *_convert(models, "calibrated.keras", tmp_path / "out", "--strategy", "resource"))
    assert code == UnsupportedConfigurationError.exit_code and "distributed_arithmetic" in err
    _assert_nothing_written(tmp_path)


@pytest.mark.parametrize("variable", ["kernel", "bias", "f"])
def test_nan_weights_are_a_numeric_error_naming_them(models, tmp_path, capsys, variable):
    """A model trained on data with a NaN (weights NaN, f NaN): NumericError (exit 7) naming the
    variable, nothing written; it was an internal error (a bare ValueError of the format search)."""
    model = keras.saving.load_model(models / "calibrated.keras")
    dense = next(layer for layer in model.layers if isinstance(layer, HDense))
    target = dense.kq.f if variable == "f" else getattr(dense, variable)
    target.assign(np.full(target.shape, np.nan, dtype="float32"))
    model.save(tmp_path / "nan.keras")
    code, _, err = _run(capsys, *_convert(tmp_path, "nan.keras", tmp_path / "out"))
    assert code == NumericError.exit_code and err.count("\n") == 1, err
    assert "NaN or infinite" in err and f"{dense.name}/" in err, err
    _assert_nothing_written(tmp_path)


@pytest.mark.parametrize("name", ["corrupt.keras", "missing.keras"])
def test_corrupt_or_missing_model_file(models, tmp_path, capsys, name):
    code, out, err = _run(capsys, *_convert(models, name, tmp_path / "out"))
    assert code == ModelFileError.exit_code
    assert name in err and ("not found" in err or "cannot load" in err)
    assert "Traceback" not in err and out == ""
    _assert_nothing_written(tmp_path)


def test_verify_with_missing_model_file(tmp_path, capsys):
    code, _, err = _run(capsys, "verify", tmp_path / "none.keras", tmp_path, "--random", "5")
    assert code == ModelFileError.exit_code and "not found" in err


def test_existing_output_dir_is_refused_and_untouched(models, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    code, _, err = _run(capsys, *_convert(models, "calibrated.keras", out, "--force"))
    assert code == UnsafeOutputError.exit_code  # not a project: --force alone does not replace it
    assert "--replace-non-project" in err
    assert [p.name for p in out.iterdir()] == ["mine.txt"] and (out / "mine.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_failure_while_writing_leaves_nothing(models, tmp_path, monkeypatch):
    """A crash after hls4ml started writing (here: the reports) removes the staging directory."""

    def broken_reports(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(project_module, "write_reports", broken_reports)
    model = hgq_chip.load_model(models / "calibrated.keras")
    with pytest.raises(OSError, match="disk full"):
        hgq_chip.convert(model, tmp_path / "out", log=lambda message: None)
    _assert_nothing_written(tmp_path)


def test_missing_gxx_is_a_tool_error(models, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    code, _, _ = _run(capsys, *_convert(models, "calibrated.keras", out))
    assert code == 0
    # Only the Python interpreter's directory on PATH: no g++ (as on a machine without a compiler).
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable))
    code, out_text, err = _run(capsys, "verify", models / "calibrated.keras", out, "--random", "10", "--quiet")
    assert code == ToolMissingError.exit_code
    assert "g++ is not installed" in err and "mismatches" not in out_text
    assert not list((out / "firmware").glob("*.so")), "no half-built simulation library"


def test_verify_random_needs_calibrated_input_ranges(models, tmp_path, capsys):
    # A folder that passes the project check made before Keras loads (its build script names the
    # project), so the model's missing ranges are what verify finds next.
    (tmp_path / "build_lib.sh").write_text("PROJECT=myproject\n")
    code, _, err = _run(capsys, "verify", models / "uncalibrated.keras", tmp_path, "--random", "5", "--quiet")
    assert code == CalibrationError.exit_code and "hgq_chip.calibrate(model, x)" in err


def test_verify_of_a_directory_that_is_no_project(models, tmp_path, capsys):
    code, _, err = _run(capsys, "verify", models / "calibrated.keras", tmp_path / "nothing", "--random", "5", "--quiet")
    assert code == ProjectError.exit_code and "hgq_chip convert" in err
    assert not (tmp_path / "nothing").exists()
