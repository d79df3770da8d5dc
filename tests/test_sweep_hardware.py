"""A sweep's hardware side: the fan-out's rtl/synth/pnr spec keys, the lut / latency_ns objectives
(from the estimate: fast, a tiny model) and a 1-trial sweep whose fan-out writes and verifies the
RTL of its front member in Verilator (slow)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from ray_cluster import ray_env
from rtl_models import tiny_dense
from sweep_support import SPACE, SPEC, check_member, ray_temp, run_watched, spec_file

from hgq_chip.errors import SweepSpecError
from hgq_chip.sweeps.objectives import objective_values, rtl_options
from hgq_chip.sweeps.spec import FANOUT_DEFAULTS, parse_spec

pytest.importorskip("ray")
pytest.importorskip("optuna")

OBJECTIVES = {"val_accuracy": "max", "ebops": "min", "lut": "min", "latency_ns": "min"}


@pytest.mark.parametrize("fanout, extra, words", [
    ({"rtl": {"stages": 0}}, {}, "fanout.rtl.stages"),
    ({"rtl": {"stages": 2.5}}, {}, "fanout.rtl.stages"),
    ({"rtl": {"clock_period": -1}}, {}, "fanout.rtl.clock_period"),
    ({"rtl": {"stages": 2, "clock_period": 4}}, {}, "one of them"),
    ({"rtl": {"stage": 2}}, {}, "fanout.rtl takes"),
    ({"rtl": "yes"}, {}, "fanout.rtl takes"),
    ({"synth": "yosys"}, {}, "fanout.synth must be true or false"),
    ({"family": "xcvu"}, {}, "fanout.family"),
    ({"pnr": "ice40"}, {}, "fanout.pnr"),
    ({"time_limit": 0}, {}, "fanout: "),
    ({"verilator": True}, {}, "fanout takes"),
    ({}, {"objective_source": "vivado"}, "objective_source must be one of"),
    ({"synth": True}, {"objective_source": "synth", "objectives": OBJECTIVES}, "needs fanout.pnr: ecp5"),
    ({}, {"objectives": {**OBJECTIVES, "latency_ns": "max"}}, "latency_ns: min"),
])
def test_hardware_spec_refusals_name_the_key(fanout, extra, words):
    with pytest.raises(SweepSpecError, match=words):
        parse_spec({**SPEC, "fanout": {**SPEC["fanout"], **fanout}, **extra})


def test_hardware_spec_is_accepted_and_recorded():
    spec = parse_spec({**SPEC, "objectives": OBJECTIVES,
                       "fanout": {**SPEC["fanout"], "rtl": {"stages": 2}, "synth": True, "family": "xcup"}})
    assert spec.objectives == OBJECTIVES and spec.objective_source == "estimate"
    assert spec.fanout["rtl"] == {"stages": 2} and spec.fanout["synth"] is True and spec.fanout["pnr"] is None
    assert spec.to_dict()["objective_source"] == "estimate"
    assert rtl_options(spec.fanout) == {"stages": 2, "clock_period": 5.0}
    assert rtl_options({**spec.fanout, "rtl": True, "clock_period": 4}) == {"stages": None, "clock_period": 4.0}
    assert rtl_options(dict(FANOUT_DEFAULTS)) is None


def test_lut_and_latency_objectives_from_the_estimate():
    """The values a trial reports, and their sources: HLS latency without rtl, the pipelined estimate with it."""
    from hgq_chip import estimate
    from hgq_chip.estimation.timing import pipeline_estimate

    model = tiny_dense()
    hls = estimate(model)
    plain = objective_values(model, OBJECTIVES, "estimate", dict(FANOUT_DEFAULTS))
    assert plain["lut"] == hls.lut > 0
    assert plain["latency_ns"] == pytest.approx(hls.cycles * 5.0) and plain["latency_ns"] > 0
    assert plain["sources"]["lut"].startswith("estimate:") and "HLS firmware" in plain["sources"]["latency_ns"]
    piped = objective_values(model, OBJECTIVES, "estimate", {**FANOUT_DEFAULTS, "rtl": {"stages": 3}})
    expected = pipeline_estimate(model, stages=3)
    assert piped["latency_ns"] == pytest.approx(expected.latency_ns, abs=1e-3)
    assert piped["latency_ns"] == pytest.approx(3 * expected.ecp5_period_ns, abs=1e-3)
    assert "pipelined RTL, 3 stages" in piped["sources"]["latency_ns"]
    only_lut = objective_values(model, {"val_accuracy": "max", "ebops": "min", "lut": "min"}, "estimate",
                                dict(FANOUT_DEFAULTS))
    assert set(only_lut) == {"lut", "sources"} and set(only_lut["sources"]) == {"lut"}
    assert objective_values(model, {"val_accuracy": "max", "ebops": "min"}, "estimate", dict(FANOUT_DEFAULTS)) == {}


def test_objectives_from_a_recorded_synthesis():
    """objective_source synth reads the synthesis' Xilinx LUTs and nextpnr's ECP5 latency (recorded report)."""
    report = {"stages": 3, "xilinx": {"family": "xc7", "lut": 321},
              "ecp5": {"pnr": {"period_ns": 9.5, "fmax_mhz": 105.3}, "latency_ns": 28.5}}
    values = objective_values(None, OBJECTIVES, "synth", {**FANOUT_DEFAULTS, "pnr": "ecp5"}, report)
    assert values["lut"] == 321 and values["latency_ns"] == 28.5
    assert "synth_xilinx" in values["sources"]["lut"] and "Lattice ECP5" in values["sources"]["latency_ns"]


@pytest.mark.slow
def test_sweep_fanout_writes_and_verifies_the_rtl(tmp_path):
    """One trial; its front member fanned out with rtl at 2 stages: Verilator bit-exact on 4x random and test data,
    the lut / latency_ns objectives from the pipelined estimate recorded with their sources, the report's RTL table."""
    ray_tmp = ray_temp()
    try:
        env = {**ray_env(local_only=False), "RAY_TMPDIR": str(ray_tmp)}
        out = tmp_path / "sweep"
        spec = spec_file(tmp_path, budget={"trials": 1, "concurrent": 1}, objectives=OBJECTIVES,
                         space={**SPACE, "epochs": 2, "init_bits": 3},
                         fanout={"random": 200, "members": 1, "rtl": {"stages": 2}})
        code, text, seen = run_watched([sys.executable, "-m", "hgq_chip.cli", "sweep", str(spec), "--out", str(out)],
                                       env)
        assert code == 0, text[-3000:]
        assert seen == [], f"sockets off the loopback address: {seen[:5]}"
        front = json.loads((out / "front.json").read_text())
        fanned = [m for m in front["members"] if m["status"] != "pending"]
        assert len(fanned) == 1
        member = fanned[0]
        check_member(member)
        rtl = member["rtl"]
        assert rtl["stages"] == 2 and rtl["latency_cycles"] == 2
        assert set(rtl["verify"]) == {"random 4x", "test"}
        for check in rtl["verify"].values():
            assert check["mismatches"] == 0 and check["values"] > 0
        assert (Path(rtl["project"]) / "src" / "model.v").is_file()
        saved = json.loads((Path(rtl["project"]) / "results" / "verify.json").read_text())["checks"]
        assert saved["random 4x seed 0"]["mismatches"] == 0 and saved["data"]["ok"]
        values = member["objective_values"]
        assert values["lut"] > 0 and values["latency_ns"] > 0
        assert "pipelined RTL, 2 stages" in values["sources"]["latency_ns"]
        assert "RTL 2 stages, bit-exact in Verilator" in text
        from hgq_chip.report.sweep import write_sweep_report

        page = write_sweep_report(out).read_text()
        assert "RTL of the fanned-out members" in page and "0/" in page
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
