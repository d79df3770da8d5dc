"""Every bad CLI input of docs/errors.md: its exit code, one `hgq_chip: error:` line, no user file changed.

The rows live in bad_input_cases.py; one small model is converted for the module (no
C++ compilation: every row fails before the C simulation is built).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import hgq_chip
from bad_input_cases import CASES, MODEL_SPECS, render_doc
from hgq_chip.cli import main
from mlp_models import saved_model

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
SPECS = MODEL_SPECS


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    model, _ = saved_model(root / "model.keras", SPECS)
    hgq_chip.convert(model, root / "prj", backend="Vitis", log=lambda m: None)
    return root


def snapshot(*folders: Path) -> dict:
    """Every file under ``folders``: its bytes' hash and mode (what "no user file changed" compares)."""
    files = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                files[str(path)] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mode)
            elif path.is_dir():
                files[str(path)] = ("dir", path.stat().st_mode)
    return files


def run_cli(capsys, argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error_line(err: str, excerpt: str = "") -> None:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hgq_chip: error: "), err
    assert "Traceback" not in err and excerpt in lines[0], err


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.command}-{c.given}")
def test_bad_input_exits_with_its_code_and_one_line_touching_nothing(case, project, tmp_path, capsys):
    for name, write in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if write is None:
            shutil.copy(project / "prj" / name, path)
        else:
            write(path)
    before = snapshot(project, tmp_path)
    argv = [a.format(model=project / "model.keras", prj=project / "prj", t=tmp_path) for a in case.argv]
    code, _, err = run_cli(capsys, argv)
    assert code == case.error.exit_code, err
    assert_one_error_line(err, case.excerpt)
    assert snapshot(project, tmp_path) == before


def test_errors_doc_is_the_case_table():
    """docs/errors.md is generated from the cases and hgq_chip.errors, so a changed code or row fails here."""
    text = render_doc()
    if os.environ.get("HGQ_CHIP_WRITE_ERRORS_DOC"):
        DOC.write_text(text)
    assert DOC.read_text() == text, "docs/errors.md is stale: HGQ_CHIP_WRITE_ERRORS_DOC=1 pytest tests/test_bad_inputs.py"


def test_argparse_type_errors_are_usage_errors(project, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["verify", str(project / "model.keras"), str(project / "prj"), "--random", "abc"])
    assert exit_info.value.code == 2 and "invalid int value" in capsys.readouterr().err


def test_report_markdown_format_of_the_readme(project, tmp_path, capsys):
    """`--format md` (as the docs write it) gives the same page as `--format markdown`; re-running replaces it."""
    out = tmp_path / "r.md"
    assert run_cli(capsys, ["report", project / "prj", "--format", "md", "--output", out])[0] == 0
    page = out.read_text()
    assert page.startswith("# hgq_chip report") and "| layer | class |" in page
    assert run_cli(capsys, ["report", project / "prj", "--format", "markdown", "--output", out])[0] == 0
    assert out.read_text() == page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.md"]  # no staging folder left


def test_verify_npz_maps_arrays_to_inputs_by_name():
    """A one-input model takes an .npz's single array under any key; several inputs map by name, in model order."""
    from hgq_chip.errors import DataError
    from hgq_chip.input_data import inputs_from_file

    specs = [("a", (2,)), ("b", (3, None))]
    a, b = np.zeros((4, 2)), np.ones((4, 3, 7))
    assert [x.shape for x in inputs_from_file(None, specs, "t", loaded={"b": b, "a": a})] == [(4, 2), (4, 3, 7)]
    assert inputs_from_file(None, specs[:1], "t", loaded={"anything": a})[0] is not None
    with pytest.raises(DataError, match=r"'a' \(samples, 2\), 'b' \(samples, 3, any\)"):
        inputs_from_file(None, specs, "t", loaded={"a": a, "c": b})
    with pytest.raises(DataError, match="pass an .npz"):
        inputs_from_file(None, specs, "t", loaded=a)
    with pytest.raises(DataError, match="different numbers of samples"):
        inputs_from_file(None, specs, "t", loaded={"a": a, "b": b[:2]})
