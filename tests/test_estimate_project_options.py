"""`hgq_chip estimate DIR` estimates with the strategy and clock period the project was converted with
(its hgq_chip_project.json), says so when told otherwise, and keeps the defaults (with a note) without one."""

from __future__ import annotations

import json
import shutil

import pytest

import hgq_chip
from hgq_chip.cli import main
from hgq_chip.estimation import estimate
from mlp_models import MLPSpec, saved_model

SPECS = [MLPSpec(n_in=4, widths=(5, 2), seed=11)]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("estimate_options")
    model, _ = saved_model(root / "model.keras", SPECS)
    hgq_chip.convert(model, root / "prj", backend="Vitis", clock_period=2.5, reuse_factor=2, log=lambda m: None)
    return root / "prj"


def run(capsys, *argv):
    code = main(["estimate", *map(str, argv), "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if code == 0 else None, captured.err.splitlines()


def test_estimate_uses_the_projects_clock_period_and_notes_the_unmodelled_reuse_factor(project, capsys):
    code, result, notes = run(capsys, project)
    assert code == 0 and result == estimate(project, clock_period=2.5).to_dict()
    assert result["clock_period_ns"] == 2.5 and result["strategy"] == "latency"
    assert len(notes) == 1 and "reuse factor 2" in notes[0] and "models reuse factor 1" in notes[0]


def test_estimate_with_other_options_says_they_differ_from_the_projects(project, capsys):
    code, result, notes = run(capsys, project, "--clock-period", "5")
    assert code == 0 and result["clock_period_ns"] == 5.0
    assert any("--clock-period 5.0 (project: 2.5)" in line and "not the options" in line for line in notes), notes
    code, _, notes = run(capsys, project, "--clock-period", "2.5", "--strategy", "LATENCY")  # the same values
    assert code == 0 and not any("not the options" in line for line in notes), notes


def test_project_without_manifest_keeps_the_defaults_with_a_note(project, tmp_path, capsys):
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(project / "estimate_inputs.json", old)
    code, result, notes = run(capsys, old)
    assert code == 0 and result["clock_period_ns"] == 5.0 and result["strategy"] == "latency"
    assert len(notes) == 1 and "has no hgq_chip_project.json" in notes[0]


def test_report_estimates_with_the_projects_options(project, tmp_path):
    from hgq_chip.report import write_report

    page = write_report(project, output=tmp_path / "r.md", format="md").read_text()
    assert "clock period 2.5 ns" in page


def test_estimate_of_an_io_stream_project_says_what_it_does_not_count(tmp_path, capsys):
    specs = [MLPSpec(n_in=4, widths=(5, 2), seed=11, granularity="per-layer")]  # io_stream: one type per tensor
    model, _ = saved_model(tmp_path / "model.keras", specs)
    hgq_chip.convert(model, tmp_path / "prj", io_type="io_stream", log=lambda m: None)
    code, result, notes = run(capsys, tmp_path / "prj")
    assert code == 0 and result == estimate(tmp_path / "prj").to_dict()
    assert len(notes) == 1 and "converted with io_stream" in notes[0] and "FIFOs" in notes[0], notes
