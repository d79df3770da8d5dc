"""The report's RTL part: an `hgq_chip rtl` project page (pipeline, Verilator verify counts, saved synth/pnr
results, each number's origin), a convert project's page with --rtl, and a sweep's RTL members.

A tiny model's RTL project is really written; the verify and synthesis results are recorded
reports (RTLVerifyReport / SynthReport + PnrReport of the shapes the commands save), so no
Verilator, yosys or nextpnr runs here."""

from __future__ import annotations

import json

import pytest
from rtl_models import tiny_dense

import hgq_chip
from hgq_chip.cli import main
from hgq_chip.errors import ProjectError
from hgq_chip.estimation.pnr import PnrReport
from hgq_chip.estimation.synth import SynthReport
from hgq_chip.hdl.results import read_result, save_synth, save_verify, verify_label
from hgq_chip.hdl.rtl_verify import RTLVerifyReport
from hgq_chip.report.rtl import is_rtl_dir
from hgq_chip.report.sweep import write_sweep_report

pytest.importorskip("da4ml")


def recorded_synth(stages: int = 2) -> dict:
    pnr = PnrReport("Lattice ECP5 LFE5U-85F (CABGA381), out of context", 200.0, 123.456, 8.1, 3.2, 4.9,
                    {"TRELLIS_FF": (41, 83640), "TRELLIS_COMB": (97, 83640)}, 12.0)
    report = SynthReport("yosys", "latency", cells={"LUT2": 30, "LUT3": 17, "CARRY4": 5, "FDRE": 40}, stages=stages,
                         family="xc7", clock_period=5.0, depth=4, ecp5_cells={"LUT4": 97}, ecp5_depth=5, pnr=pnr)
    return report.to_dict()


@pytest.fixture(scope="module")
def rtl_project(tmp_path_factory):
    root = tmp_path_factory.mktemp("rtl_report")
    model = tiny_dense()
    hgq_chip.rtl(model, root / "rtl", stages=2, log=lambda m: None)
    return root, model


def test_rtl_project_page_shows_every_number_and_its_origin(rtl_project, tmp_path, capsys):
    _, model = rtl_project
    project = tmp_path / "rtl"
    hgq_chip.rtl(model, project, stages=2, log=lambda m: None)
    assert is_rtl_dir(project)
    assert main(["report", str(project), "--format", "md"]) == 0
    page = (project / "report.md").read_text()
    assert "RTL: pipelined Verilog" in page and "Not verified yet" in page and "Not synthesized yet" in page
    save_verify(project, verify_label(1000, 0, 4.0), RTLVerifyReport(1000, 2000, 0, None, latency_cycles=2,
                                                                      latency_found=2))
    save_verify(project, verify_label(None, 0, 4.0), RTLVerifyReport(50, 100, 3, (0, (1, 1), 0.5, 0.25),
                                                                      latency_cycles=2, latency_found=None))
    save_synth(project, recorded_synth(stages=3))
    checks = read_result(project, "verify.json")["checks"]
    assert set(checks) == {"random 4x seed 0", "data"} and checks["data"]["mismatches"] == 3
    capsys.readouterr()
    assert main(["report", str(project), "--format", "md"]) == 0
    page = (project / "report.md").read_text()
    assert "| 2 | 2 | 5.0 |" in page  # stages, latency in cycles, clock constraint
    assert "| random 4x seed 0 | 1000 | 2000 | 0 | 2 | yes |" in page
    assert "| data | 50 | 100 | 3 | 2 | NO |" in page
    assert "Xilinx: yosys synth_xilinx cell counts" in page and "Vivado's counts will differ" in page
    assert "| xc7 | 3 | 47 | 5 | 40 |" in page and "Synthesized at 3 stages, not the project's 2" in page
    assert "Lattice ECP5: yosys synth_ecp5 + nextpnr-ecp5" in page and "| 123.456 |" in page
    assert "| 24.3 |" in page  # latency ns: 3 stages x 8.1 ns achieved period
    assert "TRELLIS_FF 41/83640" in page
    # results/ is a build product and report's own page is registered in the manifest: --force replaces
    # both with the project (as for a convert project's page)
    hgq_chip.rtl(model, project, stages=1, force=True, log=lambda m: None)
    assert read_result(project, "verify.json") is None and not (project / "report.md").exists()


def test_convert_page_with_rtl_and_refusals(rtl_project, tmp_path, capsys):
    root, model = rtl_project
    save_synth(root / "rtl", recorded_synth())
    hgq_chip.convert(model, tmp_path / "prj", backend="Vitis", log=lambda m: None)
    out = tmp_path / "page.html"
    assert main(["report", str(tmp_path / "prj"), "--rtl", str(root / "rtl"), "--output", str(out)]) == 0
    page = out.read_text()
    assert page.index("Resource estimate") < page.index("RTL: pipelined Verilog") < page.index("RTL synthesis")
    assert "Lattice ECP5" in page and "123.456" in page
    capsys.readouterr()
    assert main(["report", str(tmp_path / "prj"), "--rtl", str(tmp_path / "prj"),
                 "--output", str(tmp_path / "x.html")]) == ProjectError.exit_code
    assert "not an RTL project" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


def test_sweep_page_shows_the_members_rtl_and_objective_sources(tmp_path):
    member = {"trial": "t0", "epoch": 2, "val_accuracy": 0.5, "ebops": 100, "status": "ok", "lut": 60,
              "rtl": {"stages": 2, "latency_cycles": 2, "verify": {"random 4x": {"samples": 200, "values": 2000,
                                                                                  "mismatches": 0}}},
              "synth": recorded_synth(), "objective_values": {
                  "lut": 47, "latency_ns": 16.2, "sources": {"lut": "synth: yosys synth_xilinx", "latency_ns":
                                                             "pnr: 2 stages x 8.1 ns"}}}
    plain = {"trial": "t1", "epoch": 0, "val_accuracy": 0.2, "ebops": 10, "status": "pending"}
    (tmp_path / "front.json").write_text(json.dumps({"name": "s", "trials": {"total": 2, "done": 2},
                                                     "members": [plain, member]}))
    page = write_sweep_report(tmp_path, format="md").read_text()
    assert "| t0 | 2 | 2 | 2 | random 4x: 0/2000 | 47 | 40 | 123.456 | 16.2 |" in page
    assert "| t0 | 2 | latency_ns | 16.2 | pnr: 2 stages x 8.1 ns |" in page
    assert "| t1 |" not in page.split("RTL of the fanned-out members")[1]


@pytest.mark.slow
def test_verify_and_synth_through_the_cli_save_what_the_report_shows(tmp_path, capsys):
    """`hgq_chip rtl`, `verify --random --scale 4` (Verilator) and `synth` (yosys) through the CLI, then `report`."""
    model = tiny_dense()
    model.save(tmp_path / "model.keras")
    project = tmp_path / "rtl"
    assert main(["rtl", str(tmp_path / "model.keras"), "--output-dir", str(project), "--stages", "2"]) == 0
    assert main(["verify", str(tmp_path / "model.keras"), str(project), "--random", "300", "--scale", "4"]) == 0
    assert main(["synth", str(project), "--stages", "2"]) == 0
    checks = read_result(project, "verify.json")["checks"]
    assert checks["random 4x seed 0"]["mismatches"] == 0 and checks["random 4x seed 0"]["values"] == 600
    synth = read_result(project, "synth.json")
    assert synth["stages"] == 2 and synth["xilinx"]["lut"] > 0 and synth["xilinx"]["ff"] > 0
    assert main(["report", str(project), "--format", "md"]) == 0
    page = (project / "report.md").read_text()
    assert "| random 4x seed 0 | 300 | 600 | 0 | 2 | yes |" in page
    assert f"| xc7 | 2 | {synth['xilinx']['lut']} |" in page and "Not synthesized yet" not in page
