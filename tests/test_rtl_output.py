"""`hgq_chip rtl`: the project it writes (ports, manifest, constraints) and what it refuses, without Verilator.

The Verilator side (verify of an RTL project) is in tests/test_rtl_verify.py.
"""

from __future__ import annotations

import json

import keras
import pytest

pytest.importorskip("da4ml", reason="the RTL output needs da4ml (pip install 'hgq_chip[rtl]')")

from rtl_models import calibrated, tiny_dense  # noqa: E402

import hgq_chip  # noqa: E402
from hgq_chip.cli import main  # noqa: E402
from hgq_chip.conversion.manifest import MANIFEST_FILE  # noqa: E402
from hgq_chip.errors import UnsupportedLayerError  # noqa: E402
from hgq_chip.layers import HDense, HQuantize  # noqa: E402


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("rtl")
    tiny_dense().save(root / "model.keras")
    return root


def test_rtl_writes_the_project_with_documented_ports(saved, tmp_path, capsys):
    out = tmp_path / "rtl"
    code, stdout, stderr = _run(capsys, "rtl", saved / "model.keras", "--output-dir", out, "--stages", "2",
                                "--clock-period", "4")
    assert code == 0, stderr
    assert "2 pipeline stages (latency 2 cycles" in stdout and str(out) in stdout
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["kind"] == "rtl" and manifest["weights_sha256"].startswith("sha256:")
    rtl = manifest["rtl"]
    assert (rtl["stages"], rtl["latency_cycles"], rtl["clock_period_ns"], rtl["top"]) == (2, 2, 4.0, "model")
    for port, size in (("inputs", 3), ("outputs", 2)):  # every element placed once, back to back from bit 0
        runs = rtl["ports"][port]
        assert sum(r["count"] for r in runs) == size
        assert runs[0]["lsb"] == 0
        assert sum(r["count"] * r["width"] for r in runs) == rtl["ports"][port[:-1] + "_bits"]
        for run in runs:
            assert run["type"] == (f"ap_fixed<{run['width']},{run['k'] + run['i']}>" if run["k"]
                                   else f"ap_ufixed<{run['width']},{run['i']}>")
    top = (out / "src" / "model.v").read_text()
    assert f"input [{rtl['ports']['input_bits'] - 1}:0] model_inp" in top
    assert f"output reg [{rtl['ports']['output_bits'] - 1}:0] model_out" in top
    ports = (out / "PORTS.md").read_text()
    assert "after rising edge t + 2" in ports and rtl["ports"]["inputs"][0]["type"] in ports
    assert "set clock_period 4.0" in (out / "src" / "model.xdc").read_text()
    assert "set clock_period 4.0" in (out / "src" / "model.sdc").read_text()
    assert set(manifest["files"]) >= {"PORTS.md", "src/model.v", "src/model_stage0.v", "src/model_stage1.v",
                                      "keras_model.keras"}


def test_folder_rules_are_converts(saved, tmp_path, capsys):
    out = tmp_path / "rtl"
    assert _run(capsys, "rtl", saved / "model.keras", "--output-dir", out, "--quiet")[0] == 0
    code, _, stderr = _run(capsys, "rtl", saved / "model.keras", "--output-dir", out, "--stages", "1")
    assert code == 8 and "--force" in stderr
    code, _, stderr = _run(capsys, "rtl", saved / "model.keras", "--output-dir", out, "--stages", "1", "--force",
                           "--quiet")
    assert (code, stderr) == (0, "")
    assert json.loads((out / MANIFEST_FILE).read_text())["rtl"]["stages"] == 1
    (out / "notes.txt").write_text("mine")  # a user's file inside: --force refuses to delete it
    assert _run(capsys, "rtl", saved / "model.keras", "--output-dir", out, "--force")[0] == 14
    assert (out / "notes.txt").read_text() == "mine"
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    assert _run(capsys, "rtl", saved / "model.keras", "--output-dir", other, "--force")[0] == 14
    assert _run(capsys, "rtl", saved / "model.keras", "--output-dir", saved)[0] == 14  # holds the model
    assert sorted(p.name for p in other.iterdir()) == ["keep.txt"]


def test_an_impossible_stage_count_names_the_range_and_writes_nothing(saved, tmp_path, capsys):
    from hgq_chip.estimation.rtl import trace_model
    from hgq_chip.hdl.pipeline import max_stages

    top = max_stages(trace_model(hgq_chip.load_model(saved / "model.keras"))[2])
    for stages in (0, top + 1):
        code, _, stderr = _run(capsys, "rtl", saved / "model.keras", "--output-dir", tmp_path / "x", "--stages", stages,
                                "--quiet")
        assert code == 5 and f"1 to {top} stages" in stderr and stderr.count("\n") == 1
    code, _, stderr = _run(capsys, "rtl", saved / "model.keras", "--output-dir", tmp_path / "x", "--clock-period",
                           "0.05")
    assert code == 5 and "--clock-period" in stderr
    assert not (tmp_path / "x").exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_clock_period_picks_fewer_stages_for_a_longer_period(saved, tmp_path):
    model = hgq_chip.load_model(saved / "model.keras")
    fast = hgq_chip.rtl(model, tmp_path / "fast", clock_period=0.9, log=lambda m: None).pipeline
    slow = hgq_chip.rtl(model, tmp_path / "slow", clock_period=50.0, log=lambda m: None).pipeline
    assert slow.stages == 1 and fast.stages > slow.stages and fast.clock_period_ns == 0.9


def test_an_untraceable_layer_is_refused_by_name_before_writing(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    x = HDense(3)(HQuantize()(inputs))
    model = calibrated(keras.Model(inputs, keras.layers.LayerNormalization(name="norm_here")(x)))
    model.save(tmp_path / "m.keras")
    code, _, stderr = _run(capsys, "rtl", tmp_path / "m.keras", "--output-dir", tmp_path / "out")
    assert code == UnsupportedLayerError.exit_code and "norm_here" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]


def test_an_uncalibrated_model_is_a_calibration_error(tmp_path, capsys):
    tiny_dense(calibrate=False).save(tmp_path / "m.keras")
    code, _, stderr = _run(capsys, "rtl", tmp_path / "m.keras", "--output-dir", tmp_path / "out")
    assert code == 6 and "calibrate" in stderr
    assert not (tmp_path / "out").exists()


def test_a_softmax_model_writes_its_rtl_and_traces_bit_exact(tmp_path):
    """HSoftmax's function tables are derived state (its 1/x table holds inf at the unread entry
    x = 0): not a NaN weight. The project is written and its traced logic equals Keras."""
    from hgq_chip.estimation.rtl import check_trace, trace_model
    from hgq_chip.layers import HSoftmax

    keras.utils.set_random_seed(4)
    inputs = keras.Input((5,))
    model = keras.Model(inputs, HSoftmax()(HDense(4)(HQuantize()(inputs))))
    model = calibrated(model, act_f=(1, 4))
    project = hgq_chip.rtl(model, tmp_path / "sm", stages=2, log=lambda m: None)
    assert (tmp_path / "sm" / MANIFEST_FILE).is_file() and project.pipeline.stages == 2
    _, _, comb = trace_model(model)
    for scale in (1.0, 4.0):
        assert check_trace(model, comb, n=200, seed=2, inputs=hgq_chip.random_inputs(model, 200, 2, scale)) == 0
