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
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from ray_cluster import (
    RAY,
    LocalCluster,
    free_port,
    kill_sessions,
    non_loopback,
    ray_env,
    session_pids,
)

from hgq_chip.errors import (
    ClusterError,
    DataError,
    OutputExistsError,
    SweepSpecError,
    UnsafeOutputError,
)
from hgq_chip.sweeps.front import merge_front, non_dominated
from hgq_chip.sweeps.spec import load_spec, parse_spec

pytest.importorskip("ray")
pytest.importorskip("optuna")

SPACE = {"beta_start": {"loguniform": [1e-7, 1e-5]}, "beta_end": {"loguniform": [1e-5, 1e-3]},
         "init_bits": {"choice": [3, 5]}, "width": 8, "depth": 1, "epochs": 3, "batch_size": 64,
         "learning_rate": 1e-2, "jit_compile": False}
SPEC = {"name": "tiny", "model": "hgq_chip.sweeps.tasks:build", "data": {"loader": "hgq_chip.sweeps.tasks:load"},
        "sampler": "nsga2", "space": SPACE, "budget": {"trials": 2, "concurrent": 2},
        "fanout": {"random": 200, "members": 1}}


def _spec_file(folder: Path, **changes) -> Path:
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump({**SPEC, **changes}))
    return path


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
])
def test_spec_refusals_name_the_key(change, words):
    with pytest.raises(SweepSpecError, match=words):
        parse_spec({**SPEC, **change})


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
    spec = load_spec(_spec_file(tmp_path, sampler="grid", space={**SPACE, "width": {"grid": [8, 16]}}))
    assert spec.sampler == "grid" and spec.space["width"] == {"grid": [8, 16]}


def test_cli_refusals_exit_codes(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    good = _spec_file(tmp_path)
    foreign = tmp_path / "foreign"  # holds a sweep.json that is not ours: was an internal JSONDecodeError
    foreign.mkdir()
    (foreign / "sweep.json").write_text("my notes, not JSON")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for args, code in (([str(bad), "--out", str(tmp_path / "o")], SweepSpecError.exit_code),
                       ([str(good), "--out", str(busy)], OutputExistsError.exit_code),
                       ([str(good), "--out", str(foreign)], OutputExistsError.exit_code),
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


def _ray_temp() -> Path:
    # Short: Ray's Unix socket paths under it must stay within 107 characters.
    return Path(tempfile.mkdtemp(prefix="hqr", dir="/tmp"))


def run_watched(command: list[str], env: dict, kill_when=None, timeout: float = 900) -> tuple[int, str, list]:
    """Run ``command`` in its own session, sampling its processes' sockets every second; returns
    (exit code, stderr, non-loopback sockets seen). ``kill_when()`` true: SIGKILL the command."""
    log = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    seen, deadline = [], time.time() + timeout
    try:
        while process.poll() is None and time.time() < deadline:
            seen += non_loopback(session_pids([process.pid]))
            if kill_when is not None and kill_when():
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                break
            time.sleep(1)
        if process.poll() is None:
            raise AssertionError(f"{' '.join(command)} did not finish in {timeout} s")
    finally:
        kill_sessions([process.pid])  # Ray processes the command started, if it died without stopping them
    log.seek(0)
    return process.returncode, log.read(), seen


def _check_member(member: dict) -> None:
    assert member["status"] == "ok", member.get("error")
    assert set(member["verify"]) == {"random 4x", "test"}
    for check in member["verify"].values():
        assert check["mismatches"] == 0 and check["values"] > 0
    assert member["lut"] > 0 and member["latency_cycles"] > 0 and 0 <= member["test_accuracy"] <= 1
    assert (Path(member["project"]) / "build_lib.sh").is_file()


def test_embedded_sweep_front_fanout_report(tmp_path):
    ray_tmp = _ray_temp()
    try:
        env = {**ray_env(local_only=False), "RAY_TMPDIR": str(ray_tmp)}
        out = tmp_path / "sweep"
        code, text, seen = run_watched([sys.executable, "-m", "hgq_chip.cli", "sweep", str(_spec_file(tmp_path)),
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
        _check_member(fanned[0])
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
    temp = _ray_temp()
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
    spec = _spec_file(tmp_path, name="cluster", budget={"trials": 4, "concurrent": 2},
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
        _check_member(member)


def test_train_trial_reports_every_epoch_and_the_lut_objective(tmp_path):
    """The trial function without Ray (as benchmarks/sweep_scaling.py runs it directly)."""
    from hgq_chip.sweeps.trial import train_trial

    spec = parse_spec({**SPEC, "space": {**SPACE, "epochs": 2, "beta_start": 1e-6, "beta_end": 1e-5,
                                         "init_bits": 4, "beta_schedule": "linear"},
                       "objectives": {"val_accuracy": "max", "ebops": "min", "lut": "min"}})
    reports = []
    last = train_trial(dict(spec.space), model_path=spec.model, data_spec=spec.data, out=str(tmp_path),
                       objectives=spec.objectives, trial_id="t0", report=reports.append)
    assert [r["epoch"] for r in reports] == [0, 1] and "lut" not in reports[0]
    assert reports[-1] == last and last["lut"] > 0 and last["ebops"] > 0
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
def test_fanout_member_with_yosys_synthesis(tmp_path):
    from hgq_chip.sweeps.fanout import process_member
    from hgq_chip.sweeps.trial import train_trial

    spec = parse_spec({**SPEC, "space": {**SPACE, "epochs": 2, "init_bits": 4, "beta_start": 1e-6,
                                         "beta_end": 1e-5}, "fanout": {"random": 100}})
    train_trial(dict(spec.space), model_path=spec.model, data_spec=spec.data, out=str(tmp_path),
                objectives=spec.objectives, trial_id="t0", report=lambda metrics: None)
    index = json.loads((tmp_path / "trials" / "t0" / "pareto" / "pareto.json").read_text())
    row = {"trial": "t0", "epoch": index[-1]["epoch"], "path": index[-1]["path"]}
    result = process_member(row, spec.data, str(tmp_path), spec.fanout, synth="yosys")
    row.update(result)
    _check_member(row)
    assert result["synth"]["tool"] == "yosys" and result["synth"]["lut"] > 0
    assert result["synth"]["trace_mismatches"] == 0


def test_join_captures_ray_stderr_and_names_a_refused_token():
    from hgq_chip.sweeps.cluster import _captured_stderr, _token_refused

    with _captured_stderr() as captured:
        os.write(2, b"gcs_client.cc:210: Unauthenticated: RPC error: InvalidAuthToken\n")
    assert "InvalidAuthToken" in captured.text
    assert _token_refused(captured.text, ConnectionError("Failed to connect to Ray cluster"))
    assert not _token_refused("", ConnectionError("Failed to connect to Ray cluster"))


@pytest.mark.slow
def test_sweep_joins_a_ray_start_head_with_token_authentication(tmp_path):
    """The user's path: `ray start --head` on 127.0.0.1, then `hgq_chip sweep --address`. Ray 2.60 turns
    token authentication on for the head when ~/.ray/auth_token exists (any earlier local `ray.init()`,
    an embedded sweep's too, writes one), and a driver with an explicit address does not send it
    unless RAY_AUTH_MODE=token: refused in one line without it, done with it."""
    ray_tmp, home = _ray_temp(), tmp_path / "home"  # a private HOME holds the token (~/.ray/auth_token)
    home.mkdir()
    port = free_port()
    env = {**ray_env(local_only=True), "RAY_TMPDIR": str(ray_tmp), "HOME": str(home)}
    env.pop("RAY_AUTH_MODE", None)
    subprocess.run([RAY, "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=120)
    head = subprocess.Popen([RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
                             "--include-dashboard=false", f"--temp-dir={ray_tmp}"], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        started = head.communicate(timeout=180)[0]
        assert head.returncode == 0, started[-3000:]
        assert "Token authentication is enabled" in started, started[-3000:]
        assert non_loopback(session_pids([head.pid])) == []
        spec = _spec_file(tmp_path, budget={"trials": 1, "concurrent": 1}, space={**SPACE, "epochs": 2})
        command = [sys.executable, "-m", "hgq_chip.cli", "sweep", str(spec), "--out", str(tmp_path / "out"),
                   "--address", f"127.0.0.1:{port}"]
        refused = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=300)
        assert refused.returncode == 19, refused.stderr[-3000:]
        assert refused.stderr.count("\n") == 1 and "RAY_AUTH_MODE=token" in refused.stderr, refused.stderr
        assert not (tmp_path / "out").exists()
        code, text, seen = run_watched(command, {**env, "RAY_AUTH_MODE": "token"})
        assert code == 0, text[-3000:]
        assert seen + non_loopback(session_pids([head.pid])) == []
        front = json.loads((tmp_path / "out" / "front.json").read_text())
        assert front["trials"]["done"] == 1
        _check_member(next(m for m in front["members"] if m["status"] != "pending"))
    finally:
        kill_sessions([head.pid])
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _signal_when(command: list[str], env: dict, signum: int, process_name: str, group: bool,
                 timeout: float = 600) -> tuple[int, str, list[str]]:
    """Run ``command`` in its own session with Ctrl-C's default action (CI runners start jobs with SIGINT
    ignored); once a process named ``process_name`` runs in it, send ``signum`` to the command (the whole
    process group with ``group``, as a terminal's Ctrl-C). Returns (exit code, output, processes of the
    session still alive 10 s after the command ended)."""
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True,  # no threads yet in this test: preexec_fn is safe
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
        deadline, sent, left = time.time() + timeout, False, []
        try:
            while process.poll() is None and time.time() < deadline:
                if not sent and any(process_name in _cmdline(pid) for pid in session_pids([process.pid])):
                    time.sleep(3)  # well inside it
                    (os.killpg if group else os.kill)(process.pid, signum)
                    sent = True
                time.sleep(0.5)
            assert process.poll() is not None, f"{' '.join(command)} did not finish in {timeout} s"
            end = time.time() + 10
            while (left := [p for p in session_pids([process.pid]) if _cmdline(p)]) and time.time() < end:
                time.sleep(0.5)
        finally:
            kill_sessions([process.pid])
        log.seek(0)
        assert sent, f"{process_name} never ran"
        return process.returncode, log.read(), [_cmdline(p) for p in left]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""  # gone, or a zombie being reaped


@pytest.mark.slow
def test_sweep_ctrl_c_and_sigterm_mid_trial_and_mid_fanout_then_resume(tmp_path):
    """Tune catches Ctrl-C itself and returns early: the sweep used to fan out its partial front and
    exit 0 (and Tune's handler, left installed, swallowed Ctrl-C during the fan-out); Ray's C++ crash
    handler turned SIGTERM into an abort (exit 134). Each must end the command with its documented code,
    one line, no Ray process left, and a rerun of the same command must finish the sweep."""
    ray_tmp = _ray_temp()
    try:
        env = {**ray_env(local_only=False), "RAY_TMPDIR": str(ray_tmp)}
        spec = _spec_file(tmp_path, budget={"trials": 2, "concurrent": 1}, space={**SPACE, "epochs": 2})
        out = tmp_path / "sweep"
        command = [sys.executable, "-m", "hgq_chip.cli", "sweep", str(spec), "--out", str(out)]
        code, text, left = _signal_when(command, env, signal.SIGINT, "ray::ImplicitFunc", group=True)
        assert code == 130, text[-3000:]
        assert text.strip().splitlines()[-1] == "hgq_chip: error: interrupted (Ctrl-C)" and left == []
        assert "fan-out" not in text and "Tuner.restore" not in text
        code, text, left = _signal_when(command, env, signal.SIGTERM, "ray::process_member", group=False)
        assert code == 143, text[-3000:]
        assert text.strip().splitlines()[-1] == "hgq_chip: error: terminated (SIGTERM)" and left == []
        assert "resuming" in text and "SIGTERM received" not in text
        front = json.loads((out / "front.json").read_text())
        assert front["trials"]["done"] == 2 and {m["status"] for m in front["members"]} == {"pending"}
        code, text, left = _signal_when(command, env, signal.SIGINT, "ray::process_member", group=True)
        assert code == 130 and left == [], text[-3000:]  # Ctrl-C during the fan-out is no longer swallowed
        code, text, seen = run_watched(command, env)
        assert code == 0 and seen == [], text[-3000:]
        front = json.loads((out / "front.json").read_text())
        _check_member(next(m for m in front["members"] if m["status"] != "pending"))
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.slow
def test_sweep_whose_every_trial_fails_exits_with_the_trials_error(tmp_path):
    """A loader that raises failed every trial with a 40-line Tune traceback each, then exited 0 with an
    empty front; now one progress line per failed trial and the loader's DataError (exit 11)."""
    ray_tmp = _ray_temp()
    try:
        env = {**ray_env(local_only=False), "RAY_TMPDIR": str(ray_tmp)}
        spec = _spec_file(tmp_path, budget={"trials": 1, "concurrent": 1},
                          data={"loader": "hgq_chip.sweeps.tasks:load", "args": {"path": str(tmp_path / "none")}})
        code, text, seen = run_watched([sys.executable, "-m", "hgq_chip.cli", "sweep", str(spec), "--out",
                                        str(tmp_path / "sweep")], env)
        assert code == DataError.exit_code and seen == [], text[-3000:]
        last = text.strip().splitlines()[-1]
        assert last.startswith("hgq_chip: error: every trial failed; the first with DataError: ") and "mnist" in last
        assert "Traceback" not in text and "[sweep] trial " in text and "FAILED (DataError" in text
        assert json.loads((tmp_path / "sweep" / "front.json").read_text())["trials"]["failed"] == 1
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_tune_sigint_handler_is_undone_and_its_firing_seen():
    """Tune.fit installs a SIGINT handler that swallows Ctrl-C (it only sets an event) and puts the previous
    handler back only when it fires: left installed, it swallowed Ctrl-C during the fan-out; fired as the last
    trial ended, the sweep went on to fan out and exited 0. Tune's own _setup_signal_catching, run here."""
    from ray.tune.tune import _setup_signal_catching

    from hgq_chip.sweeps.run import _tune_signals_and_logs

    def ours(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, ours)
    try:
        with _tune_signals_and_logs() as state:
            _setup_signal_catching()  # what Tuner.fit does; no Ctrl-C
        assert signal.getsignal(signal.SIGINT) == ours and not state["interrupted"]
        with _tune_signals_and_logs() as state:
            event = _setup_signal_catching()
            os.kill(os.getpid(), signal.SIGINT)  # swallowed by Tune's handler
            assert event.wait(5)
        assert signal.getsignal(signal.SIGINT) == ours and state["interrupted"]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_second_sweep_of_the_same_folder_is_refused_while_the_first_runs(tmp_path):
    """Two sweeps writing one --out each restored/overwrote the other's Tune experiment and front.json."""
    from hgq_chip.errors import OutputLockedError
    from hgq_chip.sweeps.run import locked

    with locked(tmp_path), pytest.raises(OutputLockedError, match="another hgq_chip sweep"), locked(tmp_path):
        pass
    with locked(tmp_path):  # released: free again, and no lock file left behind
        pass
    assert list(tmp_path.iterdir()) == []
