"""``hgq_chip sweep`` under interruption and on a user's own Ray head: Ctrl-C and SIGTERM mid-trial
and mid-fan-out (then resume), a sweep whose every trial fails, Tune's SIGINT handler, the output
folder's lock, and joining a ``ray start --head`` with token authentication."""

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
from ray_cluster import (
    RAY,
    free_port,
    kill_sessions,
    non_loopback,
    ray_env,
    session_pids,
)
from sweep_support import SPACE, check_member, ray_temp, run_watched, spec_file

from hgq_chip.errors import DataError

pytest.importorskip("ray")
pytest.importorskip("optuna")


def test_join_captures_ray_stderr_and_names_a_refused_token():
    from hgq_chip.stderr_capture import captured_stderr
    from hgq_chip.sweeps.cluster import _token_refused

    with captured_stderr() as captured:
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
    ray_tmp, home = ray_temp(), tmp_path / "home"  # a private HOME holds the token (~/.ray/auth_token)
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
        spec = spec_file(tmp_path, budget={"trials": 1, "concurrent": 1}, space={**SPACE, "epochs": 2})
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
        check_member(next(m for m in front["members"] if m["status"] != "pending"))
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
    ray_tmp = ray_temp()
    try:
        env = {**ray_env(local_only=False), "RAY_TMPDIR": str(ray_tmp)}
        spec = spec_file(tmp_path, budget={"trials": 2, "concurrent": 1}, space={**SPACE, "epochs": 2})
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
        check_member(next(m for m in front["members"] if m["status"] != "pending"))
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.slow
def test_sweep_whose_every_trial_fails_exits_with_the_trials_error(tmp_path):
    """A loader that raises failed every trial with a 40-line Tune traceback each, then exited 0 with an
    empty front; now one progress line per failed trial and the loader's DataError (exit 11)."""
    ray_tmp = ray_temp()
    try:
        env = {**ray_env(local_only=False), "RAY_TMPDIR": str(ray_tmp)}
        bad = tmp_path / "bad_mnist"  # present (passes the pre-Ray check), unreadable in every trial
        bad.mkdir()
        for name in ("mnist_train.npz", "mnist_test.npz"):
            (bad / name).write_bytes(b"not an npz")
        spec = spec_file(tmp_path, budget={"trials": 1, "concurrent": 1},
                          data={"loader": "hgq_chip.sweeps.tasks:load", "args": {"path": str(bad)}})
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
