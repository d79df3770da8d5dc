"""Faults around the commands: Ctrl-C, a closed pipe, TensorFlow's start-up noise, internal errors,
and loading a saved model with plain Keras. Run in subprocesses where the behaviour is the process's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hgq_chip.cli import main
from hgq_chip.cli_runtime import EXIT_BROKEN_PIPE, EXIT_INTERNAL, EXIT_INTERRUPTED
from bad_input_cases import keras_archive
from test_bad_inputs import assert_one_error_line, project, snapshot  # noqa: F401  (project: the fixture)

ROOT = Path(__file__).resolve().parents[1]


def child_env(**extra) -> dict:
    """The environment of a CLI child: this worktree's hgq_chip, no TF_CPP_MIN_LOG_LEVEL from the test run."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "HGQ_CHIP_DEBUG")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def cli(*argv) -> list[str]:
    return [sys.executable, "-m", "hgq_chip.cli", *map(str, argv)]


@pytest.mark.parametrize("quiet", [False, True], ids=["default", "quiet"])
def test_tensorflow_start_up_lines_are_silenced(project, tmp_path, quiet):
    """A command that loads Keras prints only its own error line: no oneDNN/CUDA/absl lines from TensorFlow."""
    np.save(tmp_path / "x3.npy", np.zeros((5, 3), np.float32))
    argv = cli("verify", project / "model.keras", project / "prj", "--data", tmp_path / "x3.npy",
               *(["--quiet"] if quiet else []))
    run = subprocess.run(argv, capture_output=True, text=True, env=child_env(), timeout=300)
    assert run.returncode == 11, run.stderr
    lines = run.stderr.splitlines()
    if not quiet:
        assert lines[0].startswith("[hgq_chip] loading")
        lines = lines[1:]
    assert_one_error_line("\n".join(lines), "expects an array of shape (samples, 4), got (5, 3)")


def test_closed_stdout_pipe_exits_quietly(project):
    """`hgq_chip estimate DIR | head -1`: the reader is gone before the first write; no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        run = subprocess.run(cli("estimate", project / "prj"), stdout=write_end, stderr=subprocess.PIPE,
                             text=True, env=child_env(), timeout=300)
    finally:
        os.close(write_end)
    assert run.returncode == EXIT_BROKEN_PIPE and run.stderr == "", run.stderr


def _sigint_default():
    """A job started with `&` by a non-interactive shell (a CI runner) inherits SIGINT ignored, and Python
    keeps an ignored SIGINT ignored: give the child the default disposition a terminal's Ctrl-C meets."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_exits_130_with_one_line_and_no_changed_file(project):
    before = snapshot(project)
    child = subprocess.Popen(cli("verify", project / "model.keras", project / "prj", "--random", "2000"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
                             preexec_fn=_sigint_default)
    first = child.stderr.readline()
    assert first.startswith("[hgq_chip] loading"), first
    child.send_signal(signal.SIGINT)
    out, rest = child.communicate(timeout=300)
    assert child.returncode == EXIT_INTERRUPTED, first + rest
    assert_one_error_line(rest, "interrupted (Ctrl-C)")
    assert snapshot(project) == before


def test_internal_error_is_one_line_unless_debugging(project, capsys, monkeypatch):
    import importlib

    estimate_module = importlib.import_module("hgq_chip.estimation.estimate")  # the package re-exports the function

    def broken(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(estimate_module, "estimate", broken)
    assert main(["estimate", str(project / "prj")]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("hgq_chip: internal error: RuntimeError: boom; second line (please report")
    monkeypatch.setenv("HGQ_CHIP_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(["estimate", str(project / "prj")])


def test_ctrl_c_during_report_leaves_the_old_page_and_no_staging(project, tmp_path, capsys, monkeypatch):
    import hgq_chip.report.page as page

    out = tmp_path / "r.md"
    assert main(["report", str(project / "prj"), "--format", "md", "--output", str(out)]) == 0
    capsys.readouterr()
    before = snapshot(project, tmp_path)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(page, "render_markdown", interrupted)
    code = main(["report", str(project / "prj"), "--format", "md", "--output", str(out), "--plots"])
    assert code == EXIT_INTERRUPTED
    assert_one_error_line(capsys.readouterr().err, "interrupted")
    assert snapshot(project, tmp_path) == before  # the old page, no report_files/, no staging folder


def test_ctrl_c_while_saving_an_import_keeps_the_old_output(tmp_path, capsys, monkeypatch):
    """import-qkeras --force saves through a staged file: an interrupted save leaves the old OUTPUT intact."""
    import hgq_chip.qkeras_import as qkeras_import

    (tmp_path / "q.h5").write_text("a QKeras file")
    keras_archive(tmp_path / "o.keras")  # an earlier output: --force may replace it
    before = snapshot(tmp_path)

    class HalfSaved:
        def save(self, path):
            Path(path).write_text("half")
            raise KeyboardInterrupt

    monkeypatch.setattr(qkeras_import, "from_qkeras", lambda *a, **k: HalfSaved(), raising=False)
    code = main(["import-qkeras", str(tmp_path / "q.h5"), str(tmp_path / "o.keras"), "--force", "--quiet"])
    assert code == EXIT_INTERRUPTED
    assert_one_error_line(capsys.readouterr().err, "interrupted")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("imports", ["import hgq_chip, keras", "import keras, hgq_chip"])
def test_plain_keras_loads_a_saved_model_after_import_hgq_chip(project, imports):
    """`import hgq_chip` (light: no Keras) registers our layers once Keras is imported, in either order."""
    script = (
        f"import sys, numpy as np\n{imports}\n"
        "assert 'hgq_chip.layers' in sys.modules\n"
        "a = keras.saving.load_model(sys.argv[1])\n"
        "b = hgq_chip.load_model(sys.argv[1])\n"
        "x = np.linspace(-2, 2, 12, dtype='float32').reshape(3, 4)\n"
        "assert np.array_equal(np.asarray(a(x)), np.asarray(b(x)))\n"
        "print(type(a.layers[1]).__name__)\n"
    )
    run = subprocess.run([sys.executable, "-c", script, str(project / "model.keras")], capture_output=True,
                         text=True, env=child_env(TF_CPP_MIN_LOG_LEVEL="3"), timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "HQuantize"


def test_import_hgq_chip_alone_imports_no_keras():
    script = "import sys, hgq_chip, hgq_chip.cli\nprint(sorted({'keras', 'tensorflow'} & set(sys.modules)))\n"
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=child_env(), timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "[]", run.stderr


def test_staging_left_by_a_killed_report_is_removed_by_the_next_run(project, tmp_path, capsys):
    """A SIGKILLed run leaves its hidden staging folder; the next report removes it (and keeps a live run's)."""
    from hgq_chip.report.output import STAGING_PREFIX

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"{STAGING_PREFIX}{int(dead.stdout)}-abc"
    (stale / "report_files").mkdir(parents=True)
    live = tmp_path / f"{STAGING_PREFIX}{os.getppid()}-def"  # a running process: never touched
    live.mkdir()
    assert main(["report", str(project / "prj"), "--format", "md", "--output", str(tmp_path / "r.md")]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["r.md", live.name])
