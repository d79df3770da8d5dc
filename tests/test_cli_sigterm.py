"""SIGTERM (``kill PID``, a batch scheduler stopping a job) while ``hgq_chip verify`` compiles or runs
the C simulation: exit 143 with one line, and nothing left behind — no g++ or simulation child
still running, no temporary folder, the project unchanged. One more g++ build (the compile case)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from hgq_chip.cli_runtime import EXIT_TERMINATED
from test_bad_inputs import assert_one_error_line, project, snapshot  # noqa: F401  (project: the fixture)
from test_cli_faults import child_env, cli


def descendants(pid: int) -> dict[int, str]:
    """The live processes below ``pid`` (from /proc), with their command lines."""
    parents, commands = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            commands[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found, frontier = {}, [pid]
    while frontier:
        current = frontier.pop()
        for child, parent in parents.items():
            if parent == current and child not in found:
                found[child] = commands.get(child, "")
                frontier.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


def terminate_when(argv, env, wanted: str, timeout: float = 240.0):
    """Start ``argv``, wait for a descendant whose command line holds ``wanted``, SIGTERM the command;
    returns (process, its stderr, the descendants seen at that moment)."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + timeout
    seen = {}
    while time.monotonic() < deadline and process.poll() is None:
        seen = descendants(process.pid)
        if any(wanted in command for command in seen.values()):
            break
        time.sleep(0.01)
    assert process.poll() is None, f"the command ended before a {wanted!r} process appeared: {process.stderr.read()}"
    assert any(wanted in c for c in seen.values()), f"no {wanted!r} process within {timeout} s"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    return process, err, seen


def assert_nothing_left(seen: dict[int, str], tmp: Path) -> None:
    time.sleep(0.2)
    left = {pid: command for pid, command in seen.items() if alive(pid)}
    assert not left, f"still running after SIGTERM: {left}"
    assert not list(tmp.iterdir()), f"left in the temporary folder: {list(tmp.iterdir())}"


@pytest.mark.slow
def test_sigterm_while_the_simulation_runs_stops_its_child(project, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    subprocess.run(cli("verify", project / "model.keras", project / "prj", "--random", "10", "--quiet"),
                   check=True, env=child_env(), capture_output=True, timeout=300)  # compiled before the kill
    before = snapshot(project)
    argv = cli("verify", project / "model.keras", project / "prj", "--random", "100000000", "--batch-size", "200000")
    process, err, seen = terminate_when(argv, child_env(TMPDIR=str(tmp)), "csim_child.py")
    assert process.returncode == EXIT_TERMINATED, err
    assert_one_error_line("\n".join(line for line in err.splitlines() if not line.startswith("[hgq_chip]")),
                          "terminated (SIGTERM)")
    assert_nothing_left(seen, tmp)
    assert snapshot(project) == before


@pytest.mark.slow
def test_sigterm_while_g_plus_plus_compiles_stops_the_compiler(project, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    for library in (copy / "prj" / "firmware").glob("*.so"):
        library.unlink()
    argv = cli("verify", copy / "model.keras", copy / "prj", "--random", "10")
    process, err, seen = terminate_when(argv, child_env(TMPDIR=str(tmp)), "g++")
    assert process.returncode == EXIT_TERMINATED, err
    assert_nothing_left(seen, tmp)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux only: prctl(PR_SET_PDEATHSIG)")
def test_simulation_child_dies_with_a_killed_parent(tmp_path):
    """SIGKILL cannot be handled: the child asks Linux to kill it when its parent dies."""
    import json
    import sys

    from hgq_chip.conversion.csim import CHILD_SCRIPT

    # A parent that starts the child on a job whose library sleeps (libc's sleep, 60 s), then is SIGKILLed.
    work = tmp_path / "job"
    work.mkdir()
    (work / "progress").write_bytes(bytes(8))
    libc = next(p for p in ("/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6", "/lib64/libc.so.6")
                if os.path.exists(p))
    script = (f"import json, os, subprocess, sys\n"
              f"job = {{'library': {libc!r}, 'function': 'sleep', 'samples': 1, 'inputs': [], 'outputs': [], "
              f"'parent': os.getpid()}}\n"
              f"open({str(work / 'job.json')!r}, 'w').write(json.dumps(job))\n"
              f"child = subprocess.Popen([sys.executable, '-I', '-S', {str(CHILD_SCRIPT)!r}, {str(work)!r}])\n"
              f"print(child.pid, flush=True)\n"
              f"child.wait()\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child_pid = int(parent.stdout.readline())
    time.sleep(1.0)  # the child has loaded the job and called prctl
    assert alive(child_pid)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child_pid), "the simulation child outlived its SIGKILLed parent"
    json.loads((work / "job.json").read_text())
