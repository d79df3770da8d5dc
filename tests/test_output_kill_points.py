"""Killed and concurrent writes of one output folder: after a SIGKILL at any point the folder holds
the complete old project or the complete new one, and the next run cleans up and succeeds.

The kill points are the steps of ``hgq_chip.conversion.output_dir`` (its test hook
``HGQ_CHIP_TEST_KILL_AFTER``). The fast loop writes a small stand-in project through the same
module in a Keras-free child (both the exchange and the rename-aside swap); the slow loop kills
real ``hgq_chip convert --force`` runs at every step and at random times.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hgq_chip
from hgq_chip.conversion import output_dir as od
from hgq_chip.conversion.manifest import MANIFEST_FILE
from mlp_models import MLPSpec, saved_model

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}

# A stand-in project: 40 files in 4 folders, every byte naming the version, written through the module.
WRITER = """
import sys
from pathlib import Path
from hgq_chip.conversion import output_dir as od
import time
target, version, mode = sys.argv[1:4]
if mode == "rename":
    od.exchange = lambda a, b: False
with od.replace_atomically(target, force=mode != "slow") as staging:
    if mode == "slow":  # hold the lock long enough for a second writer to meet it
        print("writing", flush=True)
        time.sleep(3)
    for folder in range(4):
        (staging / f"f{folder}").mkdir()
        for index in range(10):
            (staging / f"f{folder}" / f"{index}.txt").write_text(f"{version} {folder} {index}\\n" * 50)
    (staging / "hgq_chip_project.json").write_text('{"version": "%s", "inputs": [], "outputs": []}' % version)
"""


def tree(folder: Path) -> dict:
    """Relative path -> sha256 of every file under ``folder`` (folders: None)."""
    return {str(p.relative_to(folder)): (None if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*"))}


def leftovers(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}."))


def _write(script, target, version, mode, kill=None):
    env = {**ENV, od.KILL_ENV: kill} if kill else ENV
    return subprocess.run([sys.executable, str(script), str(target), version, mode], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("mode,steps", [("exchange", od.STEPS), ("rename", od.FALLBACK_STEPS)])
def test_kill_at_every_step_leaves_old_or_new_project_and_next_run_recovers(tmp_path, mode, steps):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    target = tmp_path / "out" / "prj"
    refs = {}
    for version in ("v1", "v2"):
        assert _write(script, tmp_path / "ref" / version, version, mode).returncode == 0
        refs[version] = tree(tmp_path / "ref" / version)
    assert refs["v1"] != refs["v2"]
    assert _write(script, target, "v1", mode).returncode == 0
    for step in steps:
        done = _write(script, target, "v2", mode, kill=step)
        assert done.returncode == -signal.SIGKILL, (step, done.stderr)
        if target.exists():
            assert tree(target) in (refs["v1"], refs["v2"]), step
        else:  # only between the two renames of the fallback swap: the old project is complete aside
            assert mode == "rename" and step in ("old_set_aside", "old_marked"), step
            (aside,) = [p for p in target.parent.iterdir() if od.OLD_TAG in p.name]
            assert {k: v for k, v in tree(aside).items() if k != od.OLD_MARKER} == refs["v1"]
        assert _write(script, target, "v1", mode).returncode == 0, step
        assert tree(target) == refs["v1"] and leftovers(target) == [], step


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill_models")
    saved_model(root / "a.keras", [MLPSpec(n_in=4, widths=(5, 2), granularity="per-element", seed=1)])
    saved_model(root / "b.keras", [MLPSpec(n_in=4, widths=(6, 2), granularity="per-channel", seed=2)], seed=1)
    return root


# Files whose bytes differ between two converts of one model (hls4ml's random stamp, the folder name
# in hls4ml_config.yml, zip timestamps in the saved model): compared by presence only.
VOLATILE = {"build_lib.sh", "hls4ml_config.yml", "keras_model.keras"}


def stable(folder: Path) -> dict:
    """``tree`` with the volatile files by presence, and the manifest hashed without their SHA-256s."""
    out = {k: ("present" if Path(k).name in VOLATILE else v) for k, v in tree(folder).items()}
    manifest = folder / MANIFEST_FILE
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        data["sha256"] = {k: ("present" if Path(k).name in VOLATILE else v) for k, v in data["sha256"].items()}
        out[MANIFEST_FILE] = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    return out


def _convert_cmd(models, name, target):
    return [sys.executable, "-m", "hgq_chip.cli", "convert", str(models / name), "--backend", "Vitis",
            "--output-dir", str(target), "--force", "--quiet"]


def _references(models, tmp_path):
    refs = {}
    for name in ("a.keras", "b.keras"):
        hgq_chip.convert(models / name, tmp_path / "ref" / name, log=lambda m: None)
        refs[name] = stable(tmp_path / "ref" / name)
    assert refs["a.keras"] != refs["b.keras"]
    return refs


def _holds(target, refs):
    """The name of the model whose complete project ``target`` is."""
    held = [name for name, ref in refs.items() if stable(target) == ref]
    assert len(held) == 1, sorted(set(stable(target).items()) ^ set(refs["a.keras"].items()))[:6]
    return held[0]


@pytest.mark.slow
def test_convert_force_killed_at_every_step_and_at_random_times(models, tmp_path):
    """~16 real converts: after every kill the project is the complete old or new one."""
    refs = _references(models, tmp_path)
    target = tmp_path / "out" / "prj"
    assert subprocess.run(_convert_cmd(models, "a.keras", target), env=ENV, cwd=ROOT).returncode == 0
    rng = random.Random(15)
    # Random kills land in the write-and-swap phase: a random time after the "writing" message.
    kills = [(step, None) for step in od.STEPS] + [(None, rng.uniform(0.0, 1.5)) for _ in range(6)]
    for step, delay in kills:
        before = tree(target)
        new = "b.keras" if _holds(target, refs) == "a.keras" else "a.keras"
        env = {**ENV, od.KILL_ENV: step} if step else ENV
        cmd = [c for c in _convert_cmd(models, new, target) if c != "--quiet"]
        child = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if delay is not None:
            for line in child.stderr:
                if "[hgq_chip] writing" in line:
                    break
            time.sleep(delay)
            child.send_signal(signal.SIGKILL)
        child.stderr.read()
        code = child.wait(timeout=120)
        assert code in (-signal.SIGKILL, 0), (step, delay, code)  # a late random kill may find it done
        assert tree(target) == before or _holds(target, refs) == new, (step, delay)
        pids = {name.split("-")[-2] for name in leftovers(target) if "hgq_chip-" in name}
        if step is not None and od.STEPS.index(step) >= od.STEPS.index("cleaned"):
            assert pids <= {str(child.pid)}, (step, pids)  # earlier kills' leftovers were removed
    final = subprocess.run(_convert_cmd(models, "b.keras", target), env=ENV, cwd=ROOT, capture_output=True,
                           text=True)
    assert final.returncode == 0, final.stderr
    assert _holds(target, refs) == "b.keras" and leftovers(target) == []


def test_second_writer_of_a_locked_folder_fails_typed_and_touches_nothing(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    target = tmp_path / "prj"
    first = subprocess.Popen([sys.executable, str(script), str(target), "v1", "slow"], env=ENV, cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline() == "writing\n"  # holds the lock now
    before = tree(tmp_path)
    second = _write(script, target, "v2", "slow")
    assert second.returncode == 1 and "OutputLockedError" in second.stderr and f"pid {first.pid}" in second.stderr
    assert tree(tmp_path) == before
    assert first.wait(timeout=60) == 0
    assert (target / "f0" / "0.txt").read_text().startswith("v1 ") and leftovers(target) == []
    third = _write(script, target, "v2", "slow")  # without force: the project exists now
    assert third.returncode == 1 and "OutputExistsError" in third.stderr


@pytest.mark.slow
def test_two_concurrent_converts_give_one_complete_project(models, tmp_path):
    """Without --force both used to exit 0, the later deleting the earlier's project."""
    refs = _references(models, tmp_path)
    target = tmp_path / "prj"
    cmds = [[c for c in _convert_cmd(models, name, target) if c != "--force"] for name in ("a.keras", "b.keras")]
    children = [subprocess.Popen(cmd, env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True) for cmd in cmds]
    results = [(child.wait(timeout=180), child.stderr.read()) for child in children]
    codes = sorted(code for code, _ in results)
    assert codes[0] == 0 and codes[1] in (8, 15), results  # exists (ran after) or locked (ran during)
    loser = next(err for code, err in results if code != 0)
    assert loser.splitlines()[-1].startswith("hgq_chip: error: ") and "Traceback" not in loser
    winner = ("a.keras", "b.keras")[[code for code, _ in results].index(0)]
    assert _holds(target, refs) == winner and (target / MANIFEST_FILE).is_file()
    assert leftovers(target) == []
