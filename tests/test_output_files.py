"""The other commands that write what a user names: report --output, import-qkeras OUT.keras,
synth --rtl-dir, ParetoCheckpoint folders. Each refuses what it does not own, with nothing
touched, and writes its file in one rename.
"""

from __future__ import annotations

import os
import zipfile

import pytest

import hgq_chip
from hgq_chip.cli import main
from hgq_chip.conversion import output_file as of
from hgq_chip.errors import UnsafeOutputError
from hgq_chip.training.pareto import ParetoCheckpoint
from mlp_models import MLPSpec, saved_model
from test_output_dir import snapshot

SPECS = [MLPSpec(n_in=4, widths=(5, 2), granularity="per-element", seed=1)]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    saved_model(root / "model.keras", SPECS)
    hgq_chip.convert(root / "model.keras", root / "prj", log=lambda m: None)
    return root


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A working folder with a user's notes and a small zip, as the current directory."""
    (tmp_path / "notes.txt").write_text("my notes")
    (tmp_path / "folder").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.err


def _refused(capsys, folders, argv, code, words):
    before = [snapshot(f) for f in folders]
    got, err = _cli(capsys, *argv)
    assert got == code and words in err, err
    assert err.startswith("hgq_chip: error: ") and err.count("\n") == 1
    assert [snapshot(f) for f in folders] == before


REPORT_REFUSALS = [
    ("user_file", "{user}/notes.txt", "was not written by hgq_chip"),
    ("project_file_it_reads", "{prj}/summary.json", "which this command reads"),
    ("project_folder", "{prj}", "which this command reads"),
    ("a_folder", "{user}/folder", "is a folder, not a file"),
    ("below_a_file", "{user}/notes.txt/r.html", "is a file, not a folder"),
]


@pytest.mark.parametrize("case,output,words", REPORT_REFUSALS, ids=[r[0] for r in REPORT_REFUSALS])
def test_report_output_refused_with_nothing_touched(project, user, capsys, case, output, words):
    output = output.format(user=user, prj=project / "prj")
    _refused(capsys, [user, project / "prj"], ["report", project / "prj", "--output", output], 14, words)


def test_report_replaces_its_own_page_only_and_checks_plot_folder(project, user, capsys):
    out = user / "page.html"
    assert _cli(capsys, "report", project / "prj", "--output", out)[0] == 0
    first = out.read_text()
    assert _cli(capsys, "report", project / "prj", "--output", out, "--format", "markdown")[0] == 0
    assert out.read_text().startswith("# hgq_chip report: ") and first.startswith("<!DOCTYPE html>")
    (user / "report_files").write_text("a file where the plots would go")
    _refused(capsys, [user], ["report", project / "prj", "--output", out, "--plots"], 14, "is a file")
    assert sorted(p.name for p in user.iterdir()) == ["folder", "notes.txt", "page.html", "report_files"]


def test_report_plots_never_replace_a_users_file_in_report_files(project, user, capsys):
    """report_files/ is the report's only if it is new, empty or lists the plots an earlier report wrote."""
    pytest.importorskip("matplotlib")
    plots = user / "report_files"
    plots.mkdir()
    (plots / "bit_histograms.png").write_text("MY OWN IMAGE")
    _refused(capsys, [user], ["report", project / "prj", "--plots", "--output", user / "page.html"], 14,
             "no hgq_chip report wrote")
    (plots / "bit_histograms.png").unlink()
    assert _cli(capsys, "report", project / "prj", "--plots", "--output", user / "page.html")[0] == 0
    written = sorted(p.name for p in plots.iterdir())
    assert "bit_histograms.png" in written
    assert _cli(capsys, "report", project / "prj", "--plots", "--output", user / "page.html")[0] == 0  # its own
    (plots / "bit_histograms.png").unlink()
    (plots / "bit_histograms.png").write_text("MY OWN IMAGE, same name, added later")
    (plots / "mine.txt").write_text("notes beside the plots")
    _refused(capsys, [user], ["report", project / "prj", "--plots", "--output", user / "page.html"], 14,
             "was not written by an hgq_chip report")
    assert _cli(capsys, "report", project / "prj", "--output", user / "page.html")[0] == 0  # no plots: untouched
    assert (plots / "mine.txt").read_text() == "notes beside the plots"


IMPORT_REFUSALS = [
    ("non_keras_file_even_with_force", "{user}/notes.keras", ["--force"], 14, "not a Keras archive"),
    ("a_folder", "{user}/folder.keras", ["--force"], 14, "is a folder, not a file"),
    ("below_a_file", "{user}/notes.txt/m.keras", [], 14, "is a file, not a folder"),
    ("keras_file_without_force", "{user}/old.keras", [], 8, "--force"),
    ("the_data_it_reads", "{user}/x.keras", ["--data", "{user}/x.keras", "--force"], 14, "which this command reads"),
]


@pytest.mark.parametrize("case,output,extra,code,words", IMPORT_REFUSALS, ids=[r[0] for r in IMPORT_REFUSALS])
def test_import_qkeras_output_refused_before_reading(user, capsys, case, output, extra, code, words):
    """The checks come before the QKeras model is read (here it is not even a model)."""
    (user / "notes.keras").write_text("not a zip")
    (user / "folder.keras").mkdir()
    with zipfile.ZipFile(user / "old.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    (user / "x.keras").write_bytes((user / "old.keras").read_bytes())
    (user / "q.h5").write_text("placeholder")
    argv = ["import-qkeras", user / "q.h5", output.format(user=user), *(e.format(user=user) for e in extra)]
    _refused(capsys, [user], argv, code, words)


@pytest.mark.parametrize("rtl_dir,words", [(".", "current directory"), ("folder", "choose a new or empty folder"),
                                           ("models", "which this command reads")])
def test_synth_rtl_dir_refused_before_any_work(project, user, capsys, rtl_dir, words):
    (user / "folder" / "mine.v").write_text("module mine; endmodule")
    (user / "models").mkdir()
    (user / "models" / "model.keras").write_bytes((project / "model.keras").read_bytes())
    _refused(capsys, [user], ["synth", user / "models" / "model.keras", "--rtl-dir", rtl_dir], 14, words)


def test_atomic_file_write_leaves_old_file_or_new_and_no_partials(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def broken(partial):
        partial.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        of.write_atomically(target, broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"] and target.read_text() == "old"
    dead = tmp_path / f".out.txt.{of.PARTIAL_TAG}-999999999-abcd"  # beyond pid_max: no such process
    dead.write_text("left by a killed run")
    alive = tmp_path / f".out.txt.{of.PARTIAL_TAG}-{os.getpid()}-abcd"  # a running writer's
    alive.write_text("in progress")
    of.write_atomically(target, lambda partial: partial.write_text("new"))
    assert target.read_text() == "new" and not dead.exists() and alive.exists()


def test_pareto_checkpoint_deletes_only_its_own_files(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    own = folder / "epoch=0001-val_accuracy=0.500000-ebops=10.keras"
    theirs = [folder / "notes.keras", tmp_path / "epoch=0002-val_accuracy=0.600000-ebops=9.keras"]
    for path in [own, *theirs]:
        path.write_text("x")
    checkpoint = ParetoCheckpoint(str(folder))
    checkpoint._write({}, [str(own), *map(str, theirs)], [])  # stale list as a hand-edited pareto.json could give
    assert not own.exists() and all(path.read_text() == "x" for path in theirs)
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(UnsafeOutputError, match="is a file"):
        ParetoCheckpoint(str(tmp_path / "file")).on_train_begin()


def test_report_format_follows_an_md_output_unless_given(project, user, capsys):
    assert _cli(capsys, "report", project / "prj", "--output", user / "rep.md")[0] == 0
    assert (user / "rep.md").read_text().startswith("# hgq_chip report: ")
    assert _cli(capsys, "report", project / "prj", "--output", user / "rep.html")[0] == 0
    assert (user / "rep.html").read_text().startswith("<!DOCTYPE html>")
    assert _cli(capsys, "report", project / "prj", "--output", user / "forced.md", "--format", "html")[0] == 0
    assert (user / "forced.md").read_text().startswith("<!DOCTYPE html>")
