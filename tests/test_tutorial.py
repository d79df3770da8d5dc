"""Every code block of docs/tutorial.md runs, in order, in one empty folder: Python blocks as
scripts in a child process, shell blocks through bash (the `hgq_chip` command of this
environment). The tutorial trains scikit-learn's digits for 10 epochs, converts, verifies (g++),
estimates, writes and verifies the pipelined RTL (Verilator) and writes the report."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TUTORIAL = REPO / "docs" / "tutorial.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def code_blocks(text: str) -> list[tuple[str, str]]:
    """``[(language, code), ...]`` of the fenced blocks, in page order."""
    return [(lang, code) for lang, code in FENCE.findall(text)]


def test_the_tutorial_has_python_and_shell_blocks_only():
    blocks = code_blocks(TUTORIAL.read_text())
    languages = [lang for lang, _ in blocks]
    assert {"python", "bash"} == set(languages), languages
    commands = " ".join(code for lang, code in blocks if lang == "bash")
    for step in ("convert", "verify", "estimate", "rtl", "report"):
        assert f"hgq_chip {step} " in commands, f"the tutorial lost its `hgq_chip {step}` step"
    # Every fence is a block the test runs: none with another language or none at all.
    assert TUTORIAL.read_text().count("```") == 2 * len(blocks)


@pytest.mark.slow
def test_every_tutorial_block_runs(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    for index, (lang, code) in enumerate(code_blocks(TUTORIAL.read_text())):
        argv = [sys.executable, "-c", code] if lang == "python" else ["bash", "-euo", "pipefail", "-c", code]
        start = time.monotonic()
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False)
        assert done.returncode == 0, f"tutorial block {index} ({lang}) failed:\n{code}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        print(f"block {index} ({lang}): {time.monotonic() - start:.1f} s")
    assert (tmp_path / "out" / "prj" / "report.html").is_file()
    assert (tmp_path / "out" / "rtl" / "PORTS.md").is_file()
