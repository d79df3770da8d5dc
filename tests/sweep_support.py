"""Shared by the sweep tests: a tiny spec, running a sweep CLI with its sockets watched, member checks."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from ray_cluster import kill_sessions, non_loopback, session_pids

SPACE = {"beta_start": {"loguniform": [1e-7, 1e-5]}, "beta_end": {"loguniform": [1e-5, 1e-3]},
         "init_bits": {"choice": [3, 5]}, "width": 8, "depth": 1, "epochs": 3, "batch_size": 64,
         "learning_rate": 1e-2, "jit_compile": False}
SPEC = {"name": "tiny", "model": "hgq_chip.sweeps.tasks:build", "data": {"loader": "hgq_chip.sweeps.tasks:load"},
        "sampler": "nsga2", "space": SPACE, "budget": {"trials": 2, "concurrent": 2},
        "fanout": {"random": 200, "members": 1}}


def spec_file(folder: Path, **changes) -> Path:
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump({**SPEC, **changes}))
    return path


def ray_temp() -> Path:
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


def check_member(member: dict) -> None:
    assert member["status"] == "ok", member.get("error")
    assert set(member["verify"]) == {"random 4x", "test"}
    for check in member["verify"].values():
        assert check["mismatches"] == 0 and check["values"] > 0
    assert member["lut"] > 0 and member["latency_cycles"] > 0 and 0 <= member["test_accuracy"] <= 1
    assert (Path(member["project"]) / "build_lib.sh").is_file()
