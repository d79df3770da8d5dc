"""synth(): the model's RTL (through da4ml) synthesized by yosys ``synth_xilinx``.

The RTL is combinational (no pipeline registers), so FF counts are 0; LUT, CARRY and DSP
counts are what the arithmetic costs on a Xilinx 7-series fabric.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..conversion.output_dir import check_output_dir, replace_atomically
from ..errors import HGQChipError, ProjectError, ToolMissingError, UnsupportedConfigurationError
from . import constants as C
from .yosys_tool import YosysTool, find_yosys

DA4ML_HINT = "install the RTL extra: pip install 'hgq_chip[rtl]' (da4ml)"
TOP = "model_rtl"
RTL_MARKER = "hgq_chip_rtl.json"  # marks a --rtl-dir folder synth wrote, so a later synth may replace it


@dataclass
class SynthReport:
    tool: str
    strategy: str
    cells: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    mismatches: int | None = None  # traced logic vs Keras (da4ml interpreter); None if not checked
    rtl_dir: str | None = None
    yosys: dict | None = None  # YosysTool.to_dict(): version, banner, source ("path"/"pip"), executable

    def count(self, prefix: str) -> int:
        return sum(n for name, n in self.cells.items() if name.startswith(prefix))

    @property
    def lut(self) -> int:
        # INV is a LUT1 on the fabric.
        return self.count("LUT") + self.cells.get("INV", 0)

    @property
    def carry(self) -> int:
        return self.count("CARRY")

    @property
    def dsp(self) -> int:
        return self.count("DSP")

    @property
    def ff(self) -> int:
        return sum(n for name, n in self.cells.items() if re.fullmatch(r"FD[A-Z]+", name))

    @property
    def bram(self) -> float:
        return self.count("RAMB36") + self.count("RAMB18") / 2

    def to_dict(self) -> dict:
        return {"tool": self.tool, "strategy": self.strategy, "lut": self.lut, "carry": self.carry, "dsp": self.dsp,
                "ff": self.ff, "bram": self.bram, "cells": self.cells, "seconds": round(self.seconds, 2),
                "trace_mismatches": self.mismatches, "rtl_dir": self.rtl_dir, "yosys": self.yosys}


def require_da4ml() -> None:
    try:
        import da4ml  # noqa: F401
    except ImportError as error:
        raise ToolMissingError(f"da4ml is not installed; {DA4ML_HINT}") from error


def write_rtl(comb, directory: Path) -> Path:
    """da4ml's Verilog for the combinational logic; returns the source directory."""
    from da4ml.codegen import VerilogModel

    VerilogModel(comb, TOP, directory).write()
    return directory / "src"


def parse_stat(text: str) -> dict[str, int]:
    """Cell counts from yosys ``stat`` (the last design's cell block).

    Yosys 0.23 prints ``Number of cells:   9`` then ``  CARRY4   2`` lines; newer releases
    (the pip yosys) print ``   9 cells`` then ``   2   CARRY4`` lines. Raises HGQChipError
    when neither is there.
    """
    old = text.rsplit("Number of cells:", 1)
    if len(old) == 2:
        lines, pattern = old[1].splitlines()[1:], r"\s+(?P<name>\$?[A-Za-z_][\w$]*)\s+(?P<n>\d+)\s*"
    else:
        new = re.split(r"^\s*\d+\s+cells\s*$", text, flags=re.MULTILINE)
        if len(new) < 2:
            raise HGQChipError("yosys printed no cell statistics; see its log")
        lines, pattern = new[-1].splitlines()[1:], r"\s+(?P<n>\d+)\s+(?P<name>\$?[A-Za-z_][\w$]*)\s*"
    cells: dict[str, int] = {}
    for line in lines:
        match = re.fullmatch(pattern, line)
        if not match:
            break
        if match.group("name") != "$scopeinfo":  # newer yosys keeps flattened hierarchy as zero-area markers
            cells[match.group("name")] = int(match.group("n"))
    return cells


def run_yosys(src: Path, tool: YosysTool, timeout: float = 3600) -> dict[str, int]:
    """Synthesize da4ml's RTL in ``src`` with ``tool``; the cell counts of ``stat``.

    Every path in the script is relative to the working directory: the pip yosys sees
    ``/tmp`` as a private folder of its own, so absolute temporary paths would not resolve.
    """
    # Table contents ($readmemh) are found relative to the working directory.
    memfiles = src / "memfiles"
    cwd = memfiles if memfiles.is_dir() else src

    def rel(path: Path) -> str:
        return os.path.relpath(path, cwd)

    static = sorted(rel(p) for p in (src / "static").glob("*.v"))
    stat_file = src / "yosys_stat.txt"
    # -defer: static modules are elaborated only with the parameters the design uses.
    # da4ml marks its table ROMs rom_style="distributed", which yosys (0.23 and 0.70 alike)
    # then refuses ("no valid mapping found for memory"): unset it, so the ROM becomes LUTs.
    script = (f"read_verilog -defer {' '.join(static)}; read_verilog {rel(src / f'{TOP}.v')}; "
              f"hierarchy -top {TOP}; setattr -unset rom_style; "
              f"synth_xilinx -top {TOP} -flatten -family xc7 {C.YOSYS_SYNTH_OPTIONS}; tee -q -o {rel(stat_file)} stat")
    try:
        done = subprocess.run([*tool.command, "-q", "-p", script], cwd=cwd, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise HGQChipError(f"{tool.describe()} did not finish in {timeout:g} s") from error
    if done.returncode != 0 or not stat_file.is_file():
        raise HGQChipError(f"{tool.describe()} failed (exit {done.returncode}):\n{(done.stderr or done.stdout)[-2000:]}")
    return parse_stat(stat_file.read_text())


def synth(model, strategy: str = "latency", tool: str = "yosys", rtl_dir=None, check: bool = True,
          dsp_min_product_bits: int = C.DSP_MIN_PRODUCT_BITS, yosys: str | YosysTool | None = "auto") -> SynthReport:
    """Trace the model to RTL with da4ml, synthesize it with yosys and count cells.

    ``model`` is a calibrated ``keras.Model``, a ``.keras`` file or a converted project
    directory (its ``keras_model.keras``). ``check`` first compares the traced logic
    with Keras on random inputs (da4ml's interpreter, no simulator needed). ``yosys``:
    ``"auto"`` (yosys on PATH, else the pip one), ``"pip"``, an executable's path, or a
    ``YosysTool`` (see ``yosys_tool.find_yosys``); the report names its version.
    Raises ToolMissingError (no usable yosys, no da4ml), UnsafeOutputError (``rtl_dir``),
    ProjectError/ModelFileError (``model``), CalibrationError (an uncalibrated model), all before
    anything is written or yosys runs.
    """
    from .estimate import check_strategy

    if tool != "yosys":
        raise UnsupportedConfigurationError(f"unknown synthesis tool {tool!r}; only yosys is supported")
    strategy = check_strategy(strategy)
    keep = rtl_dir is not None
    reads = [model] if isinstance(model, (str, os.PathLike)) else []
    if keep:  # refuse an unsafe folder before the slow work (rules: hgq_chip.conversion.output_dir)
        check_output_dir(rtl_dir, force=True, reads=reads, marker=RTL_MARKER, what="--rtl-dir", replace_flag=None)
    yosys = yosys if isinstance(yosys, YosysTool) else find_yosys(yosys)
    require_da4ml()
    model = load_for_synth(model)
    _check_calibrated(model)  # before tracing and yosys: an uncalibrated model has no activation types
    from .rtl import check_trace, trace_model

    start = time.time()
    _, _, comb = trace_model(model, strategy, dsp_min_product_bits)
    report = SynthReport(tool, strategy, yosys=yosys.to_dict())  # runs the pip yosys's first-use compile now
    if check:
        report.mismatches = check_trace(model, comb)
    if keep:  # written beside rtl_dir and swapped in: an earlier RTL folder is replaced atomically
        with replace_atomically(rtl_dir, force=True, reads=reads, marker=RTL_MARKER, what="--rtl-dir",
                                replace_flag=None) as staging:
            report.cells = run_yosys(write_rtl(comb, staging), yosys)
            (staging / RTL_MARKER).write_text(json.dumps({"top": TOP, "strategy": strategy}) + "\n")
        report.rtl_dir = str(rtl_dir)
    else:
        directory = Path(tempfile.mkdtemp(prefix="hgq_chip_rtl_"))
        try:
            report.cells = run_yosys(write_rtl(comb, directory), yosys)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    report.seconds = time.time() - start
    return report


def _check_calibrated(model) -> None:
    """CalibrationError naming the quantizers that never recorded a range (as ``convert`` and
    ``estimate`` refuse such a model); yosys otherwise got a netlist without activation types."""
    from ..calibration import uncalibrated_quantizers
    from ..errors import CalibrationError

    missing = uncalibrated_quantizers(model)
    if missing:
        raise CalibrationError(
            f"activation ranges were never recorded for {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}; "
            "train the model or call hgq_chip.calibrate(model, x) on representative inputs, save it, then synth")


def load_for_synth(source):
    """A keras.Model from a model, a .keras file, or a project folder holding ``keras_model.keras``.

    Raises ProjectError (a folder without that file) and ModelFileError (a bad .keras file).
    """
    from ..model_file import load_model

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            path = path / "keras_model.keras"
            if not path.is_file():
                raise ProjectError(f"{source} holds no keras_model.keras; pass the .keras model file")
        return load_model(path)
    return source


def format_synth(report: SynthReport) -> str:
    used = report.yosys or {}
    which = f" {used['version']} ({'pip package ' if used['source'] == 'pip' else ''}{used['executable']})" if used else ""
    lines = [f"{report.tool}{which} synth_xilinx of the da4ml RTL ({report.strategy} strategy, combinational):",
             f"  LUT {report.lut}  CARRY {report.carry}  DSP {report.dsp}  FF {report.ff}  BRAM {report.bram:g}"]
    if report.mismatches is not None:
        verdict = "bit-exact" if report.mismatches == 0 else f"{report.mismatches} MISMATCHING values"
        lines.append(f"  traced logic vs Keras on random inputs: {verdict}")
    lines.append(f"  cells: {', '.join(f'{k} {v}' for k, v in sorted(report.cells.items()))}")
    lines.append(f"  {report.seconds:.1f} s" + (f"; RTL in {report.rtl_dir}" if report.rtl_dir else ""))
    return "\n".join(lines)
