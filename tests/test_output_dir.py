"""Output folders of `convert`: every unsafe folder is refused with nothing touched, leftovers of
killed runs are cleaned, a held lock is refused, projects get the umask's permissions.

Refusals go through the CLI (exit code, one-line message, no traceback) and compare the
affected folders' file lists and contents before and after. Only four tests convert for real.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import keras
import pytest

import hgq_chip
from hgq_chip.cli import main
from hgq_chip.conversion import output_dir as od
from hgq_chip.conversion.manifest import MANIFEST_FILE, is_project
from hgq_chip.errors import OutputExistsError, OutputLockedError, UnsafeOutputError
from mlp_models import MLPSpec, saved_model

SPECS = [MLPSpec(n_in=4, widths=(5, 2), granularity="per-element", seed=1)]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.keras"
    saved_model(path, SPECS)
    return path


@pytest.fixture
def world(tmp_path, model_file, monkeypatch):
    """tmp/work (the current directory, with a user file), tmp/models/model.keras, tmp/h/home (HOME)."""
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "notes.txt").write_text("my notes")
    (tmp_path / "models").mkdir()
    shutil.copy(model_file, tmp_path / "models" / "model.keras")
    (tmp_path / "h" / "home").mkdir(parents=True)
    (tmp_path / "h" / "home" / ".bashrc").write_text("export A=1")
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setenv("HOME", str(tmp_path / "h" / "home"))
    return tmp_path


def snapshot(folder: Path) -> dict:
    """Every path under ``folder`` (hidden ones too) with its bytes (None for folders)."""
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes()) for p in sorted(folder.rglob("*"))}


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def fake_project(folder: Path, text: str = "old firmware") -> Path:
    folder.mkdir(parents=True)
    (folder / MANIFEST_FILE).write_text('{"inputs": [], "outputs": []}\n')
    (folder / "firmware.cpp").write_text(text)
    return folder


def listed_project_with_synthesis_run(folder: Path) -> Path:
    """A project whose manifest lists its files, holding a synthesis run convert did not write."""
    fake_project(folder)
    (folder / MANIFEST_FILE).write_text('{"inputs": [], "outputs": [], "files": ["firmware.cpp"]}\n')
    (folder / "synthesis").mkdir()
    (folder / "synthesis" / "vivado_hls.log").write_text("a day of synthesis")
    return folder


def _convert_argv(world, out, *extra):
    return ["convert", world / "models" / "model.keras", "--backend", "Vitis", "--output-dir", out, "--quiet", *extra]


# (case, output dir relative to the world or absolute, extra flags, exit code, words in the message)
REFUSALS = [
    ("current_directory", ".", ["--force"], 14, "is the current directory"),
    ("ancestor_of_current_directory", "{world}", ["--force"], 14, "ancestor of the current directory"),
    ("home_folder", "{world}/h/home", ["--force"], 14, "is your home folder"),
    ("ancestor_of_home", "{world}/h", ["--force"], 14, "ancestor of your home folder"),
    ("filesystem_root", "/", ["--force"], 14, "filesystem root"),
    ("folder_holding_the_model", "{world}/models", ["--force"], 14, "which this command reads"),
    ("symlink_to_folder_holding_the_model", "{world}/link", ["--force"], 14, "which this command reads"),
    ("the_model_file_itself", "{world}/models/model.keras", ["--force"], 14, "which this command reads"),
    ("output_is_a_file", "{world}/work/notes.txt", ["--force"], 14, "is a file, not a folder"),
    ("parent_is_a_file", "{world}/work/notes.txt/prj", [], 14, "is a file, not a folder"),
    ("non_project_folder_even_with_force", "{world}/work/mine", ["--force"], 14, "--replace-non-project"),
    ("non_project_folder_without_force", "{world}/work/mine", [], 14, "--replace-non-project"),
    ("project_without_force", "{world}/work/prj", [], 8, "--force"),
    ("project_holding_a_users_files_even_with_force", "{world}/work/listed", ["--force"], 14, "did not write"),
]


@pytest.mark.parametrize("case,out,extra,code,words", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_unsafe_output_refused_through_cli_with_nothing_touched(world, capsys, case, out, extra, code, words):
    (world / "link").symlink_to(world / "models")
    (world / "work" / "mine").mkdir()
    (world / "work" / "mine" / "thesis.tex").write_text("years of work")
    fake_project(world / "work" / "prj")
    listed_project_with_synthesis_run(world / "work" / "listed")
    before = snapshot(world)
    got, stdout, err = run_cli(capsys, *_convert_argv(world, out.format(world=world), *extra))
    assert got == code, err
    assert err.startswith("hgq_chip: error: ") and err.count("\n") == 1 and words in err, err
    assert "Traceback" not in err and stdout == ""
    assert snapshot(world) == before


def test_unwritable_parent_refused(world, monkeypatch, capsys):
    """Running as root, permissions cannot deny anything, so the access check itself is stubbed."""
    monkeypatch.setattr(od.os, "access", lambda path, mode: Path(path) != world / "work")
    before = snapshot(world)
    got, _, err = run_cli(capsys, *_convert_argv(world, world / "work" / "new" / "prj"))
    assert got == 14 and "no permission to write into" in err and str(world / "work") in err
    assert snapshot(world) == before


def test_api_refuses_like_cli_and_checks_before_loading(world):
    before = snapshot(world)
    with pytest.raises(UnsafeOutputError, match="current directory"):
        hgq_chip.convert(world / "models" / "model.keras", ".", force=True, log=lambda m: None)
    with pytest.raises(UnsafeOutputError, match="which this command reads"):
        hgq_chip.convert(str(world / "models" / "model.keras"), world / "models", replace_non_project=True)
    assert snapshot(world) == before
    (world / "work" / "mine").mkdir()
    (world / "work" / "mine" / "a.txt").write_text("a")
    before = snapshot(world)
    with pytest.raises(UnsafeOutputError, match="replace_non_project=True"):
        hgq_chip.convert(world / "no-such-model.keras", world / "work" / "mine", force=True)
    fake_project(world / "work" / "prj")
    before = snapshot(world)
    with pytest.raises(OutputExistsError):
        hgq_chip.convert(world / "no-such-model.keras", world / "work" / "prj")
    assert snapshot(world) == before


def test_replace_non_project_flag_replaces_user_folder_and_umask_applies(world, capsys):
    """The explicit flag replaces a user folder; folders get 0o777 & ~umask (not mkdtemp's 0o700)."""
    mine = world / "work" / "mine"
    mine.mkdir()
    (mine / "old.txt").write_text("replace me")
    previous = os.umask(0o002)
    try:
        got, stdout, err = run_cli(capsys, *_convert_argv(world, mine, "--replace-non-project"))
    finally:
        os.umask(previous)
    assert got == 0, err
    assert is_project(mine) and not (mine / "old.txt").exists()
    config = (mine / "hls4ml_config.yml").read_text()  # names the project folder, not the staging folder
    assert f"OutputDir: {mine}\n" in config and od.STAGING_TAG not in config
    folders = [mine, *(p for p in mine.rglob("*") if p.is_dir())]
    assert {oct(p.stat().st_mode & 0o777) for p in folders} == {oct(0o775)}
    assert sorted(p.name for p in (world / "work").iterdir()) == ["mine", "notes.txt"]  # no lock, no staging


def test_force_replaces_only_what_convert_and_the_c_simulation_wrote(world, capsys):
    """A project's manifest lists its files: --force replaces it with the C simulation's library
    beside them, refuses while a file of the user's is inside, and --replace-non-project overrides."""
    prj = world / "work" / "prj"
    assert run_cli(capsys, *_convert_argv(world, prj))[0] == 0
    (prj / "firmware" / "myproject-1a2b.so").write_bytes(b"library")
    (prj / "firmware" / ".myproject-1a2b.so.built").write_text("7 1")
    assert run_cli(capsys, *_convert_argv(world, prj, "--force"))[0] == 0
    (prj / "NOTES.md").write_text("my notes")
    (prj / "firmware" / "myproject_tb_extra.cpp").write_text("my testbench")
    before = snapshot(world)
    got, _, err = run_cli(capsys, *_convert_argv(world, prj, "--force"))
    assert got == UnsafeOutputError.exit_code and "NOTES.md, firmware/myproject_tb_extra.cpp" in err, err
    assert snapshot(world) == before
    got, _, err = run_cli(capsys, *_convert_argv(world, prj, "--force", "--replace-non-project"))
    assert got == 0, err
    assert is_project(prj) and not (prj / "NOTES.md").exists()


def test_existing_empty_folder_is_used_without_force(world, capsys):
    empty = world / "work" / "empty"
    empty.mkdir(mode=0o700)
    got, _, err = run_cli(capsys, *_convert_argv(world, empty))
    assert got == 0, err
    assert is_project(empty) and oct(empty.stat().st_mode & 0o777) == oct(0o777 & ~current_umask())


def test_leftovers_of_killed_runs_removed_and_lookalikes_kept(world, capsys):
    prj = fake_project(world / "work" / "prj")
    staging = world / "work" / f".prj.{od.STAGING_TAG}-1-aaaa"
    (staging / "firmware").mkdir(parents=True)
    (staging / od.STAGING_MARKER).touch()
    (staging / "firmware" / "half.cpp").write_text("half")
    complete = fake_project(world / "work" / f".prj.{od.STAGING_TAG}-2-bbbb")  # killed after unmarking
    old = fake_project(world / "work" / f".prj.{od.OLD_TAG}-3-cccc")
    (old / od.OLD_MARKER).touch()
    empty = world / "work" / f".prj.{od.STAGING_TAG}-4-dddd"
    empty.mkdir()
    lookalike = world / "work" / f".prj.{od.STAGING_TAG}-5-eeee"
    lookalike.mkdir()
    (lookalike / "user.txt").write_text("not ours")
    (world / "work" / f".prj{od.LOCK_SUFFIX}").write_text("12345\n")  # a killed run's lock file
    got, _, err = run_cli(capsys, "convert", world / "models" / "model.keras", "--backend", "Vitis",
                          "--output-dir", prj, "--force")
    assert got == 0, err
    for gone in (staging, complete, old, empty):
        assert not gone.exists() and f"removed {gone.name}" in err
    assert (lookalike / "user.txt").read_text() == "not ours" and "left" in err and lookalike.name in err
    assert sorted(p.name for p in (world / "work").iterdir()) == [lookalike.name, "notes.txt", "prj"]
    assert (prj / "summary.json").is_file() and not (prj / "firmware.cpp").exists()


def test_verify_refused_while_the_project_is_locked(world, capsys):
    """A convert (or another verify) holding the project's lock: verify exits 15 before reading or
    compiling anything, instead of building inside a folder being swapped out."""
    prj = fake_project(world / "work" / "prj")
    (prj / "build_lib.sh").write_text("PROJECT=myproject\n")
    with od.FolderLock(prj.resolve()):
        before = snapshot(world)
        got, _, err = run_cli(capsys, "verify", world / "models" / "model.keras", prj, "--random", "10", "--quiet")
        assert got == OutputLockedError.exit_code and f"pid {os.getpid()}" in err and err.count("\n") == 1
        assert snapshot(world) == before


def test_verify_takes_the_project_lock_convert_respects(world, capsys, monkeypatch):
    """While verify compiles a project, a convert --force of the same folder is refused (exit 15)."""
    import hgq_chip.conversion.verification as verification

    prj = fake_project(world / "work" / "prj")
    seen = {}

    def convert_meanwhile(*args, **kwargs):
        seen["convert"] = run_cli(capsys, *_convert_argv(world, prj, "--force"))
        raise RuntimeError("stop here")

    monkeypatch.setattr(verification, "check_project_matches_model", convert_meanwhile)
    with pytest.raises(RuntimeError, match="stop here"):
        verification.verify_batches(keras.saving.load_model(world / "models" / "model.keras"), prj, [])
    got, _, err = seen["convert"]
    assert got == OutputLockedError.exit_code and f"pid {os.getpid()}" in err
    assert (prj / "firmware.cpp").read_text() == "old firmware"
    assert not (world / "work" / ".prj.hgq_chip.lock").exists()  # released


def test_set_aside_project_restored_when_target_missing(world, capsys):
    """A run killed between setting the old project aside and renaming the new one in (no exchange)."""
    old = fake_project(world / "work" / f".prj.{od.OLD_TAG}-3-cccc", "the old project")
    (old / od.OLD_MARKER).touch()
    got, _, err = run_cli(capsys, *_convert_argv(world, world / "work" / "prj"))
    assert got == OutputExistsError.exit_code and "--force" in err  # restored, so it exists now
    prj = world / "work" / "prj"
    assert sorted(p.name for p in prj.iterdir()) == sorted([MANIFEST_FILE, "firmware.cpp"])
    assert (prj / "firmware.cpp").read_text() == "the old project"
    assert sorted(p.name for p in (world / "work").iterdir()) == ["notes.txt", "prj"]


def test_locked_output_refused_with_nothing_touched(world, capsys):
    prj = fake_project(world / "work" / "prj")
    with od.FolderLock(prj.resolve()) as lock:
        before = snapshot(world)
        got, _, err = run_cli(capsys, *_convert_argv(world, prj, "--force"))
        assert got == OutputLockedError.exit_code and f"pid {os.getpid()}" in err and err.count("\n") == 1
        assert snapshot(world) == before
        assert lock.path.exists()
    assert not lock.path.exists()  # released locks leave no file
