"""``hgq_chip sweep``: spec checks, the global front, the embedded-Ray sweep (default suite) and a
two-node Ray cluster with a killed and resumed sweep (slow).

Sweeps run as CLI subprocesses in their own session, so every Ray process they start is found
by session id; while they run, their TCP sockets are sampled and must all be on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from ray_cluster import (
    LocalCluster,
    free_port,
    non_loopback,
    ray_env,
)
from sweep_support import SPACE, SPEC, check_member, ray_temp, run_watched, spec_file

from hgq_chip.errors import (
    ClusterError,
    DataError,
    SweepSpecError,
    UnsafeOutputError,
)
from hgq_chip.sweeps.front import merge_front, non_dominated
from hgq_chip.sweeps.spec import load_spec, parse_spec

pytest.importorskip("ray")
pytest.importorskip("optuna")

@pytest.mark.parametrize("change, words", [
    ({"space": {**SPACE, "width": {"grid": [8, 16]}}}, "grid"),
    ({"space": {**SPACE, "beta_end": {"loguniform": [0, 1e-3]}}}, "loguniform"),
    ({"model": "hgq_chip.sweeps.tasks:no_such_builder"}, "cannot be imported"),
    ({"objectives": {"val_accuracy": "max"}}, "objectives"),
    ({"budget": {"trials": 0}}, "budget.trials"),
    ({"colour": "red"}, "unknown spec keys"),
    # Found by attacking the sweep (att19): each of these used to start Ray and fail later, or escape OUT.
    ({"name": "../../escape"}, "name must be a plain folder name"),  # Tune wrote OUT/tune/../../escape
    ({"name": ""}, "name must be a plain folder name"),
    ({"space": {**SPACE, "epochs": 0}}, "space.epochs"),  # was an internal error from Tune's searcher
    ({"space": {**SPACE, "epochs": "ten"}}, "space.epochs"),
    ({"space": {**SPACE, "epochs": {"randint": [0, 3]}}}, "space.epochs"),
    ({"space": {**SPACE, "epochs": {"uniform": [1, 3]}}}, "randint or choice"),
    ({"space": {**SPACE, "batch_size": 0}}, "space.batch_size"),
    ({"space": {**SPACE, "beta_start": "big"}}, "space.beta_start"),
    ({"space": {**SPACE, "ramp_fraction": 2}}, "space.ramp_fraction"),
    ({"space": {**SPACE, "beta_schedule": {"uniform": [0, 1]}}}, "space.beta_schedule"),
    ({"space": {**SPACE, "beta_schedule": {"choice": ["log", "cosine"]}}}, "space.beta_schedule"),
    ({"data": {"train": 5}}, "data.train"),  # was an internal TypeError
    ({"data": {"train": None}}, "data.train"),
    ({"sampler_seed": "abc"}, "sampler_seed"),  # was an internal ValueError
    ({"fanout": {"backend": "Quartus9"}}, "fanout: unknown backend"),  # each failed every member late
    ({"fanout": {"strategy": "resource9"}}, "fanout: unknown strategy"),
    ({"fanout": {"scale": -4}}, "fanout.scale"),
    ({"fanout": {"clock_period": "fast"}}, "fanout: clock period"),
    # Issue 33 (new-user probes): Optuna's RuntimeError, and a builder's Keras error in every trial.
    ({"space": {"epochs": 2, "width": 8}}, "constants only"),
    ({"space": {**SPACE, "width": -3}}, "space.width must be a whole number >= 1"),
    ({"space": {**SPACE, "width": {"choice": [8, 0]}}}, "space.width"),
    ({"space": {**SPACE, "init_bits": -1}}, "space.init_bits"),
])
def test_spec_refusals_name_the_key(change, words):
    with pytest.raises(SweepSpecError, match=words):
        parse_spec({**SPEC, **change})


def test_spec_checks_the_loader_data_folder_before_ray(tmp_path):
    """The MNIST path of docs/sweeps.md missing: a DataError naming the file before Ray starts (was four
    minutes of failing trials); without a path the loader's sklearn digits need nothing."""
    from hgq_chip.errors import DataError

    data = {"loader": "hgq_chip.sweeps.tasks:load", "args": {"path": str(tmp_path / "mnist")}}
    with pytest.raises(DataError, match="mnist_train.npz not found.*leave out path for sklearn digits"):
        parse_spec({**SPEC, "data": data})
    assert parse_spec({**SPEC, "data": {"loader": "hgq_chip.sweeps.tasks:load", "args": {}}}).data["args"] == {}


def test_spec_refuses_a_builder_module_that_fails_to_import(tmp_path, monkeypatch):
    (tmp_path / "broken_builder.py").write_text("def build(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SweepSpecError, match="importing broken_builder failed .SyntaxError"):
        parse_spec({**SPEC, "model": "broken_builder:build"})


def test_spec_refuses_npz_data_without_x_and_y(tmp_path):
    import numpy as np

    np.savez(tmp_path / "train.npz", images=np.zeros((4, 2)), y=np.zeros(4))
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(DataError, match=r"data.train .* must be an .npz holding arrays x and y"):
        parse_spec({**SPEC, "data": {"train": str(tmp_path / "train.npz")}})
    for name in ("junk.npz", "missing.npz"):
        with pytest.raises(DataError, match="data.train .* cannot read it"):
            parse_spec({**SPEC, "data": {"train": str(tmp_path / name)}})


def test_grid_spec_with_random_sampler_is_accepted(tmp_path):
    spec = load_spec(spec_file(tmp_path, sampler="grid", space={**SPACE, "width": {"grid": [8, 16]}}))
    assert spec.sampler == "grid" and spec.space["width"] == {"grid": [8, 16]}


def test_cli_refusals_exit_codes(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    good = spec_file(tmp_path)
    foreign = tmp_path / "foreign"  # holds a sweep.json that is not ours: was an internal JSONDecodeError
    foreign.mkdir()
    (foreign / "sweep.json").write_text("my notes, not JSON")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for args, code in (([str(bad), "--out", str(tmp_path / "o")], SweepSpecError.exit_code),
                       ([str(good), "--out", str(busy)], UnsafeOutputError.exit_code),
                       ([str(good), "--out", str(foreign)], UnsafeOutputError.exit_code),
                       ([str(good), "--out", str(busy / "notes.txt" / "s1")], UnsafeOutputError.exit_code),
                       # nothing listens there: ray.init retried silently for minutes (stderr captured)
                       ([str(good), "--out", str(tmp_path / "o"), "--address", f"127.0.0.1:{free_port()}"],
                        ClusterError.exit_code)):
        run = subprocess.run([sys.executable, "-m", "hgq_chip.cli", "sweep", *args], env=env, capture_output=True,
                             check=False, text=True, timeout=120)
        assert run.returncode == code, run.stderr
        assert run.stderr.startswith("hgq_chip: error: ") and len(run.stderr.strip().splitlines()) == 1
    assert (busy / "notes.txt").read_text() == "mine" and not (tmp_path / "o").exists()
    assert (foreign / "sweep.json").read_text() == "my notes, not JSON"


def test_report_on_a_killed_sweep_and_a_damaged_front(tmp_path, capsys):
    """A sweep killed before its first trial finished (sweep.json, no front.json) was reported as 'not a
    convert directory'; a front.json whose member holds a non-number was an internal error."""
    from hgq_chip.cli import main

    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "sweep.json").write_text(json.dumps(parse_spec(SPEC).to_dict()))
    assert main(["report", str(killed)]) == 16
    assert "first trial has not finished yet" in capsys.readouterr().err
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "front.json").write_text(json.dumps({"members": [{"trial": "a", "val_accuracy": "x", "ebops": None}]}))
    assert main(["report", str(damaged)]) == DataError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("hgq_chip: error: ") and "not a sweep front" in err and err.count("\n") == 1
    assert sorted(p.name for p in damaged.iterdir()) == ["front.json"]


def _trial(out: Path, trial: str, points: list[tuple[int, float, int]]) -> None:
    folder = out / "trials" / trial / "pareto"
    folder.mkdir(parents=True)
    rows = []
    for epoch, accuracy, ebops in points:
        path = folder / f"epoch={epoch:04d}-ebops={ebops}.keras"
        path.write_text("x")
        rows.append({"path": str(path), "epoch": epoch, "metric": accuracy, "ebops": ebops})
    (folder / "pareto.json").write_text(json.dumps(rows))


def test_global_front_merges_trials_and_keeps_fanout_results(tmp_path):
    _trial(tmp_path, "a", [(0, 0.5, 100), (3, 0.8, 400)])
    _trial(tmp_path, "b", [(1, 0.6, 100), (2, 0.8, 300), (4, 0.9, 900)])
    _trial(tmp_path, "c", [(5, 0.8, 300)])  # ties b's member exactly: the first trial's is kept
    front = merge_front(tmp_path, {"a": {"x": 1}, "b": {"x": 2}, "c": {"x": 3}})
    assert [(m["trial"], m["epoch"]) for m in front] == [("b", 1), ("b", 2), ("b", 4)]
    assert front[0]["params"] == {"x": 2}
    done = [{**front[1], "status": "ok", "lut": 12}]
    again = merge_front(tmp_path, {"a": {}, "b": {"x": 2}, "c": {}}, previous=done)
    assert again[1]["status"] == "ok" and again[1]["lut"] == 12 and "status" not in again[0]
    assert non_dominated([]) == []


def test_embedded_sweep_front_fanout_report(tmp_path):
    ray_tmp = ray_temp()
    try:
        env = {**ray_env(local_only=False), "RAY_TMPDIR": str(ray_tmp)}
        out = tmp_path / "sweep"
        code, text, seen = run_watched([sys.executable, "-m", "hgq_chip.cli", "sweep", str(spec_file(tmp_path)),
                                        "--out", str(out)], env)
        assert code == 0, text[-3000:]
        assert seen == [], f"sockets off the loopback address: {seen[:5]}"
        assert "[sweep] trial " in text and "[sweep] member " in text
        front = json.loads((out / "front.json").read_text())
        assert front["trials"] == {"total": 2, "done": 2, "running": 0, "failed": 0}
        members = front["members"]
        assert members and all(Path(m["path"]).is_file() for m in members)
        assert [m["ebops"] for m in members] == sorted(m["ebops"] for m in members)
        assert [m["val_accuracy"] for m in members] == sorted(m["val_accuracy"] for m in members)
        fanned = [m for m in members if m["status"] != "pending"]
        assert len(fanned) == 1  # fanout.members: 1
        check_member(fanned[0])
        report = subprocess.run([sys.executable, "-m", "hgq_chip.cli", "report", str(out)], env=env, check=False,
                                capture_output=True, text=True, timeout=300)
        assert report.returncode == 0, report.stderr
        page = (out / "report.html").read_text()
        assert "Global Pareto front" in page and fanned[0]["trial"] in page
        assert (out / "report_files" / "sweep_front.png").stat().st_size > 0
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_package_exports_sweep():
    import hgq_chip
    from hgq_chip.sweeps.run import sweep

    assert hgq_chip.sweep is sweep


@pytest.fixture
def two_node_cluster():
    temp = ray_temp()
    try:
        cluster = LocalCluster(temp)  # stops what it started if it fails
    except Exception:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    yield cluster
    cluster.stop()
    assert cluster.pids() == []
    shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_two_node_cluster_sweep_killed_and_resumed(tmp_path, two_node_cluster):
    cluster = two_node_cluster
    assert non_loopback(cluster.pids()) == []
    spec = spec_file(tmp_path, name="cluster", budget={"trials": 4, "concurrent": 2},
                      space={**SPACE, "epochs": 4}, fanout={"random": 200, "members": 2})
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "hgq_chip.cli", "sweep", str(spec), "--out", str(out),
               "--address", cluster.address]
    env = {**ray_env(local_only=False), "RAY_TMPDIR": str(cluster.temp_dir)}

    def one_trial_done() -> bool:
        try:
            return json.loads((out / "front.json").read_text())["trials"]["done"] >= 1
        except (OSError, ValueError, KeyError):
            return False

    code, text, seen = run_watched(command, env, kill_when=one_trial_done)
    assert code == -signal.SIGKILL, text[-3000:]
    first = json.loads((out / "front.json").read_text())  # written atomically: complete after the kill
    assert 1 <= first["trials"]["done"] < 4
    code, text, seen_again = run_watched(command, env)
    assert code == 0, text[-3000:]
    assert "resuming cluster" in text
    assert seen + seen_again + non_loopback(cluster.pids()) == []
    front = json.loads((out / "front.json").read_text())
    assert front["trials"]["done"] == 4 and front["trials"]["failed"] == 0
    trials = {p.name for p in (out / "trials").iterdir()}
    assert len(trials) == 4 and {m["trial"] for m in first["members"]} <= trials
    fanned = [m for m in front["members"] if m["status"] != "pending"]
    assert len(fanned) == min(2, len(front["members"]))
    for member in fanned:
        check_member(member)


def test_train_trial_reports_the_lut_objective_with_the_last_epoch(tmp_path):
    """The trial function without Ray (as benchmarks/sweep_scaling.py runs it directly)."""
    from hgq_chip.sweeps.trial import train_trial

    # Every parameter fixed, so the random sampler (NSGA-II refuses a space of constants only).
    spec = parse_spec({**SPEC, "sampler": "random",
                       "space": {**SPACE, "epochs": 2, "beta_start": 1e-6, "beta_end": 1e-5,
                                 "init_bits": 4, "beta_schedule": "linear"},
                       "objectives": {"val_accuracy": "max", "ebops": "min", "lut": "min"}})
    reports = []
    last = train_trial(dict(spec.space), model_path=spec.model, data_spec=spec.data, out=str(tmp_path),
                       objectives=spec.objectives, trial_id="t0", report=reports.append)
    # One report, at the end: OptunaSearch (nsga2) refuses a result lacking one of its metrics (lut).
    assert [r["epoch"] for r in reports] == [1] and reports[0] == last and last["lut"] > 0 and last["ebops"] > 0
    index = json.loads((tmp_path / "trials" / "t0" / "pareto" / "pareto.json").read_text())
    assert index and all(Path(row["path"]).is_file() for row in index)
    assert json.loads((tmp_path / "trials" / "t0" / "params.json").read_text())["beta_schedule"] == "linear"


def test_fanout_records_a_failing_member_instead_of_raising(tmp_path):
    from hgq_chip.sweeps.fanout import process_member
    from hgq_chip.sweeps.spec import FANOUT_DEFAULTS

    row = {"trial": "t0", "epoch": 3, "path": str(tmp_path / "missing.keras")}
    result = process_member(row, parse_spec(SPEC).data, str(tmp_path), dict(FANOUT_DEFAULTS))
    assert result["status"] == "failed" and result["error"].startswith("load: ModelFileError")
    assert not (tmp_path / "members").exists()


@pytest.mark.slow
def test_fanout_member_with_yosys_synthesis_rtl_and_ecp5(tmp_path):
    from hgq_chip.sweeps.fanout import process_member
    from hgq_chip.sweeps.trial import train_trial

    # Every parameter fixed, so the random sampler (NSGA-II refuses a space of constants only).
    spec = parse_spec({**SPEC, "sampler": "random", "space": {**SPACE, "epochs": 2, "init_bits": 4,
                                                              "beta_start": 1e-6, "beta_end": 1e-5},
                       "fanout": {"random": 100}})
    train_trial(dict(spec.space), model_path=spec.model, data_spec=spec.data, out=str(tmp_path),
                objectives=spec.objectives, trial_id="t0", report=lambda metrics: None)
    index = json.loads((tmp_path / "trials" / "t0" / "pareto" / "pareto.json").read_text())
    row = {"trial": "t0", "epoch": index[-1]["epoch"], "path": index[-1]["path"]}
    result = process_member(row, spec.data, str(tmp_path), spec.fanout, synth="yosys")
    row.update(result)
    check_member(row)
    assert result["synth"]["tool"] == "yosys" and result["synth"]["lut"] > 0
    assert result["synth"]["trace_mismatches"] == 0
    # The spec's way: rtl at 2 stages + Verilator, synth and ECP5 place and route, objectives from them.
    objectives = {"val_accuracy": "max", "ebops": "min", "lut": "min", "latency_ns": "min"}
    fanout = parse_spec({**SPEC, "objectives": objectives, "objective_source": "synth",
                         "fanout": {"random": 100, "rtl": {"stages": 2}, "synth": True, "pnr": "ecp5"}}).fanout
    result = process_member(row, spec.data, str(tmp_path), fanout, None, objectives, "synth")
    assert result["status"] == "ok", result.get("error")
    synth, values = result["synth"], result["objective_values"]
    assert result["rtl"]["stages"] == synth["stages"] == 2
    assert all(c["mismatches"] == 0 for c in result["rtl"]["verify"].values())
    assert values["lut"] == synth["xilinx"]["lut"] > 0
    assert values["latency_ns"] == synth["ecp5"]["latency_ns"] > 0 and synth["ecp5"]["pnr"]["fmax_mhz"] > 0
    assert "Lattice ECP5" in values["sources"]["latency_ns"]
    saved = json.loads((Path(result["rtl"]["project"]) / "results" / "synth.json").read_text())
    assert saved["ecp5"]["latency_ns"] == synth["ecp5"]["latency_ns"]
