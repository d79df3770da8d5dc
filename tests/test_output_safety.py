"""New-user findings of issue 33 about output folders and errors, each fixed by kind:

- a folder's lock is taken on its resolved path, so a symbolic link name cannot bypass it;
- ``convert --force`` compares the bytes of generated files with the manifest's SHA-256 and
  refuses to discard hand edits;
- a symbolic link to nothing is never followed as an output path;
- ``report``'s default page inside the project is part of the project for ``convert --force``;
- convert/verify check their file and options before TensorFlow is imported;
- the Python API prints progress on stderr, never stdout;
- a typed hgq_chip error raised while Keras deserializes a model surfaces as itself.

One model is converted once for the module; the tests copy that project.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import pytest
from mlp_models import MLPSpec, saved_model

import hgq_chip
from hgq_chip.cli import main
from hgq_chip.conversion import output_dir as od
from hgq_chip.conversion.manifest import MANIFEST_FILE, changed_files, is_project
from hgq_chip.errors import (
    ModelFileError,
    OutputLockedError,
    UnsafeOutputError,
    UnsupportedConfigurationError,
)

SPECS = [MLPSpec(n_in=4, widths=(3,), granularity="per-layer", seed=3)]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    model, _ = saved_model(root / "model.keras", SPECS)
    hgq_chip.convert(model, root / "prj", backend="Vitis", log=lambda message: None)
    return root


@pytest.fixture
def world(converted, tmp_path, monkeypatch):
    """tmp/model.keras and tmp/prj (a copy of the converted project); the current directory is tmp/work."""
    shutil.copy(converted / "model.keras", tmp_path / "model.keras")
    shutil.copytree(converted / "prj", tmp_path / "prj", symlinks=True)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def convert_argv(world, out, *extra):
    return ["convert", world / "model.keras", "--backend", "Vitis", "--output-dir", out, "--quiet", *extra]


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes()) for p in sorted(folder.rglob("*"))
            if not p.is_symlink()}


@pytest.mark.parametrize("held_through_link", [False, True])
def test_lock_holds_for_every_name_of_the_project(world, capsys, held_through_link):
    """verify holds the project through one name; convert --force through the other is refused (15)."""
    alias = world / "alias"
    alias.symlink_to(world / "prj")
    held, other = (alias, world / "prj") if held_through_link else (world / "prj", alias)
    before = snapshot(world / "prj")
    with od.project_in_use(held):
        got, _, err = run_cli(capsys, *convert_argv(world, other, "--force"))
    assert got == OutputLockedError.exit_code, err
    assert "in use by another hgq_chip command" in err and err.count("\n") == 1
    assert snapshot(world / "prj") == before


def test_force_refuses_to_discard_hand_edits(world, capsys):
    """A generated file edited since convert wrote it: --force refuses (14) and names it; the advised
    --replace-non-project discards the edit; an unedited project is replaced by --force alone."""
    prj = world / "prj"
    source = prj / "firmware" / "myproject.cpp"
    source.write_text(source.read_text() + "\n// my hand-tuned pragma\n")
    assert changed_files(prj) == ["firmware/myproject.cpp"]
    before = snapshot(world)
    got, _, err = run_cli(capsys, *convert_argv(world, prj, "--force"))
    assert got == UnsafeOutputError.exit_code, err
    assert "firmware/myproject.cpp" in err and "edited since convert wrote them" in err
    assert "--replace-non-project" in err and err.count("\n") == 1
    assert snapshot(world) == before
    got, _, err = run_cli(capsys, *convert_argv(world, prj, "--force", "--replace-non-project"))
    assert got == 0, err
    assert "hand-tuned" not in source.read_text() and changed_files(prj) == []
    got, _, err = run_cli(capsys, *convert_argv(world, prj, "--force"))
    assert got == 0, err


def test_manifest_records_a_digest_of_every_generated_file(world):
    import json

    manifest = json.loads((world / "prj" / MANIFEST_FILE).read_text())
    regular = [name for name in manifest["files"] if not (world / "prj" / name).is_symlink()]
    assert regular and sorted(manifest["sha256"]) == sorted(regular)


@pytest.mark.parametrize("below", ["", "sub/prj"])
def test_dangling_symlink_output_is_refused_before_writing(world, capsys, below):
    """--output-dir a link to a missing folder (or a path through one): exit 14, nothing created."""
    link = world / "work" / "out"
    link.symlink_to(world / "nowhere" / "deep")
    out = link / below if below else link
    got, _, err = run_cli(capsys, *convert_argv(world, out))
    assert got == UnsafeOutputError.exit_code, err
    assert "does not exist; refusing to follow it" in err and err.count("\n") == 1
    assert not (world / "nowhere").exists() and link.is_symlink()
    with pytest.raises(UnsafeOutputError, match="refusing to follow it"):
        hgq_chip.convert(world / "model.keras", out, log=lambda message: None)
    assert not (world / "nowhere").exists()


def test_report_in_the_project_is_replaced_with_it(world, capsys):
    """report's default page goes into the project and is recorded there: convert --force replaces
    the project (page included) instead of refusing; an edited page makes --force refuse."""
    prj = world / "prj"
    got, _, err = run_cli(capsys, "report", prj)
    assert got == 0 and (prj / "report.html").is_file(), err
    assert not (world / f".prj{od.LOCK_SUFFIX}").exists()  # the lock taken for the page is released
    got, _, err = run_cli(capsys, *convert_argv(world, prj, "--force"))
    assert got == 0, err
    assert is_project(prj) and not (prj / "report.html").exists()
    assert run_cli(capsys, "report", prj, "--format", "md")[0] == 0
    (prj / "report.md").write_text((prj / "report.md").read_text() + "\nmy conclusions\n")
    got, _, err = run_cli(capsys, *convert_argv(world, prj, "--force"))
    assert got == UnsafeOutputError.exit_code and "report.md" in err, err


def test_demo_takes_the_option_its_errors_advise(world):
    """ci/demo.sh passes its arguments to examples/train_convert_verify.py, whose output check
    advises --replace-non-project: the example accepts it and the check then passes."""
    sys.path.insert(0, str(REPO / "examples"))
    try:
        import train_convert_verify as demo
    finally:
        sys.path.remove(str(REPO / "examples"))
    mine = world / "work" / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    with pytest.raises(UnsafeOutputError, match="--replace-non-project"):
        od.check_output_dir(mine, force=True)
    args = demo.parse_args(["--output-dir", str(mine), "--replace-non-project"])
    assert args.replace_non_project
    od.check_output_dir(args.output_dir, force=True, replace_non_project=args.replace_non_project)


@pytest.mark.parametrize("command", ["convert", "verify", "import-qkeras"])
def test_typo_fails_before_tensorflow_is_imported(world, command):
    """A missing model file is refused (exit 3) without importing TensorFlow or Keras."""
    argv = {"convert": ["convert", "typo.keras", "--backend", "Vitis", "--output-dir", "out", "--quiet"],
            "verify": ["verify", "typo.keras", str(world / "prj"), "--random", "5", "--quiet"],
            "import-qkeras": ["import-qkeras", "typo.keras", "out.keras", "--quiet"]}[command]
    script = ("import sys; from hgq_chip.cli import main; code = main(sys.argv[1:]); "
              "print(code, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, env=env,
                          cwd=world / "work", timeout=120, check=False)
    assert done.stdout.split() == [str(ModelFileError.exit_code), "False", "False"], done.stderr
    assert "typo.keras" in done.stderr and "not found" in done.stderr


def test_api_progress_goes_to_stderr(world, capsys):
    hgq_chip.convert(world / "model.keras", world / "prj", force=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "[hgq_chip] loading" in captured.err


@keras.saving.register_keras_serializable("hgq_chip_test_safety")
class RefusingLayer(keras.layers.Layer):
    """A layer whose ``from_config`` refuses the saved configuration with a typed error."""

    def get_config(self):
        return {**super().get_config(), "option": "unsupported"}

    @classmethod
    def from_config(cls, config):
        raise UnsupportedConfigurationError(f"layer {config['name']!r}: option 'unsupported' is not supported; "
                                            "use option 'plain'")

    def call(self, x):
        return x


def test_typed_error_while_loading_surfaces_as_itself(tmp_path, capsys):
    inputs = keras.Input((3,))
    keras.Model(inputs, RefusingLayer(name="refuser")(inputs)).save(tmp_path / "m.keras")
    with pytest.raises(UnsupportedConfigurationError, match="use option 'plain'"):
        hgq_chip.load_model(tmp_path / "m.keras")
    with pytest.raises(UnsupportedConfigurationError, match="use option 'plain'"):
        hgq_chip.convert(tmp_path / "m.keras", tmp_path / "prj", log=lambda message: None)
    got, _, err = run_cli(capsys, "convert", tmp_path / "m.keras", "--backend", "Vitis", "--output-dir",
                          tmp_path / "prj", "--quiet")
    assert got == UnsupportedConfigurationError.exit_code and "use option 'plain'" in err, err
    assert "re-save" not in err and "cannot load" not in err and not (tmp_path / "prj").exists()


@pytest.mark.parametrize("signum", [2, 15], ids=["ctrl_c", "sigterm"])
def test_signal_in_the_final_cleanup_finishes_the_replacement(world, capsys, monkeypatch, signum):
    """Ctrl-C/SIGTERM while convert --force deletes the replaced folder (after the swap): the
    deletion finishes, one note says so, and the command succeeds (it reported 130/143 although the
    new project was in place)."""
    import signal

    original = od.remove_marked
    sent = []

    def interrupted(folder, marker):
        if not sent:
            sent.append(signum)
            os.kill(os.getpid(), signum)  # handled before the next Python line: mid-deletion
        return original(folder, marker)

    monkeypatch.setattr(od, "remove_marked", interrupted)
    got, _, err = run_cli(capsys, *[a for a in convert_argv(world, world / "prj", "--force") if a != "--quiet"])
    assert sent and got == 0, err
    name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
    assert f"note: {name} arrived while" in err and "replacement was finished" in err
    assert is_project(world / "prj") and changed_files(world / "prj") == []
    assert sorted(p.name for p in world.iterdir()) == ["model.keras", "prj", "work"]  # no half-deleted folder


def test_stale_csim_run_folders_are_removed(world, tmp_path):
    """The temporary folder of a C simulation run killed outright (SIGKILL) is removed by the next run."""
    import tempfile

    import numpy as np

    from hgq_chip.conversion.csim import RUN_PREFIX, CSimulation

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = Path(tempfile.gettempdir()) / f"{RUN_PREFIX}{dead.pid}-abcd1234"
    (stale / "inputs").mkdir(parents=True)
    mine = Path(tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{os.getpid()}-"))  # a live run's: kept
    simulation = CSimulation(world / "prj")
    simulation._library = world / "prj" / "unused.so"  # no build: zero samples return at once
    assert simulation.run([np.zeros((0, 4))], [3])[0].shape == (0, 3)
    assert not stale.exists() and mine.is_dir()
    mine.rmdir()


def test_verify_of_a_read_only_project_is_a_project_error(world, capsys, monkeypatch):
    """A project on a read-only file system (where g++ cannot write its library): ProjectError (16)
    with the copy-it advice, before g++ runs; simulated, since root may write into any folder."""
    import errno
    import tempfile

    from hgq_chip.conversion import csim

    prj = (world / "prj").resolve()
    real = tempfile.TemporaryFile

    def read_only(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve().is_relative_to(prj):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(csim.tempfile, "TemporaryFile", read_only)
    monkeypatch.setattr(csim, "run_stopping_group", lambda *a, **k: pytest.fail("g++ ran"))
    got, _, err = run_cli(capsys, "verify", world / "model.keras", prj, "--random", "5", "--quiet")
    assert got == 16 and "Read-only file system" in err and "verify the copy" in err, err
    assert err.count("\n") == 1


def test_closed_stdout_is_one_error_line(world):
    """`hgq_chip estimate DIR >&-`: one line and exit 141 before any work (was an internal error)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(["bash", "-c", f'"{sys.executable}" -m hgq_chip.cli estimate "{world / "prj"}" >&-'],
                          capture_output=False, stderr=subprocess.PIPE, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 141 and done.stderr.startswith("hgq_chip: error: standard output is closed")
    assert done.stderr.count("\n") == 1


def test_scale_advice_is_a_finite_number():
    """--scale 1e300 advised "a scale of at most inf"; the largest fitting scale is (limit - |centre|) / half-width."""
    import numpy as np

    from hgq_chip.sampling_options import check_sample_bounds

    with pytest.raises(UnsupportedConfigurationError, match=r"at most 6\.8e\+38 ") as info:
        check_sample_bounds(0, np.array([1.0, -0.5]), np.array([0.5, 0.25]), "float32", 1e300)
    assert "at most inf" not in str(info.value)
    check_sample_bounds(0, np.array([1.0]), np.array([0.5]), "float32", 6.8e38)  # the advised scale fits


@pytest.mark.slow
def test_sigkill_of_verify_stops_its_gcc(world):
    """SIGKILL of verify while g++ compiles the project: the build's process group is stopped too
    (group_guard.py), so nothing goes on writing into the project."""
    import signal
    import time

    prj = (world / "prj").resolve()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    verify = subprocess.Popen([sys.executable, "-m", "hgq_chip.cli", "verify", str(world / "model.keras"), str(prj),
                               "--random", "5", "--quiet"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)

    def in_project(command_part: str = "") -> list[int]:
        """Processes other than verify whose working folder is the project (and whose command line holds ``command_part``)."""
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and int(entry.name) != verify.pid and \
                        Path(os.readlink(entry / "cwd")).resolve() == prj and \
                        command_part in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    deadline = time.monotonic() + 300
    while not in_project("myproject.cpp") and verify.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert in_project("myproject.cpp"), "g++ never compiled the project"
    verify.send_signal(signal.SIGKILL)
    verify.wait()
    # Without the guard g++ compiled on for many seconds (hls4ml's templates at -O3); with it, the
    # group gets SIGTERM at once (SIGKILL after group_guard.GRACE_SECONDS at the latest).
    deadline = time.monotonic() + 3
    while in_project() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert in_project() == []


def _marked_processes(marker: str) -> list[int]:
    """Live processes (not zombies) whose environment holds ``HGQ_CHIP_TEST_MARK=marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            if f"HGQ_CHIP_TEST_MARK={marker}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def _sigkill_leaves_no_descendant(tmp_path, code: str) -> None:
    """Run ``code`` (Python; it starts ``tmp_path/fake_tool``, a script that records its own and its
    grandchild's pids, then sleeps) in a process, SIGKILL that process once the grandchild runs, and
    check that no process it started survives it by more than a few seconds."""
    import signal
    import time
    import uuid

    marker = uuid.uuid4().hex
    started = tmp_path / "started"
    tool = tmp_path / "fake_tool"
    tool.write_text(f"#!/bin/sh\nsleep 120 &\necho $$ $! > {started}.tmp && mv {started}.tmp {started}\nsleep 120\n")
    tool.chmod(0o755)
    env = {**os.environ, "HGQ_CHIP_TEST_MARK": marker,
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    runner = subprocess.Popen([sys.executable, "-c", code, str(tool), str(tmp_path)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and runner.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert started.exists(), f"the fake tool never started: {runner.stderr.read().decode()[-2000:] if runner.poll() is not None else 'timeout'}"
        tool_pids = [int(pid) for pid in started.read_text().split()]
        assert set(tool_pids) <= set(_marked_processes(marker))  # the check below can see them
        runner.send_signal(signal.SIGKILL)
        runner.wait()
        # The guard gets SIGTERM at once (parent-death signal) and stops its group; the fake tool's
        # sleeps end on SIGTERM, so well before group_guard.GRACE_SECONDS.
        deadline = time.monotonic() + 4
        while _marked_processes(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _marked_processes(marker) == []
    finally:
        for pid in _marked_processes(marker):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if runner.poll() is None:
            runner.kill()
            runner.wait()


def test_sigkill_of_a_tool_run_stops_the_tool_and_its_children(tmp_path):
    """SIGKILL of a process in ``run_tool`` (synth's yosys, nextpnr) leaves no tool process running."""
    _sigkill_leaves_no_descendant(tmp_path, "import sys; from hgq_chip.estimation.tool_run import run_tool; "
                                            "run_tool([sys.argv[1]], sys.argv[2], sys.argv[2] + '/log', 'fake', "
                                            "'minutes', progress=None)")


def test_sigkill_during_the_verilator_build_stops_the_build(tmp_path):
    """SIGKILL of a process building an RTL simulation (Verilator's perl, make, cc1plus; here a fake
    ``verilator`` through the real ``RTLSimulation.build``) leaves no build process running."""
    (tmp_path / "prj" / "src").mkdir(parents=True)
    (tmp_path / "prj" / "src" / "top.v").write_text("module top(); endmodule\n")
    _sigkill_leaves_no_descendant(tmp_path, "import os, sys; from hgq_chip.hdl import verilator as v; "
                                            "v.verilator_environment = lambda: ([sys.argv[1]], dict(os.environ)); "
                                            "v.RTLSimulation(sys.argv[2] + '/prj', 'top', 8, 8).build()")
