"""synth(): the model's pipelined RTL (da4ml) synthesized by yosys, optionally placed and routed by nextpnr.

The traced logic (checked bit-exact against Keras) is pipelined into ``stages`` register stages
(``pipelined.write_pipelined``) and synthesized by yosys ``synth_xilinx`` (Xilinx cell counts:
LUT, CARRY4, FF, DSP, BRAM, and the logic depth between flip-flops from ``ltp``); with
``pnr="ecp5"`` also by ``synth_ecp5`` and placed and routed by nextpnr-ecp5 (Lattice ECP5:
achieved Fmax, critical path, utilisation; latency = stages x achieved period). These are
open-tool numbers: Vivado's on a Xilinx part will differ. Each tool run prints progress on
stderr and is stopped after ``time_limit`` seconds (ToolTimeoutError, exit code 20).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..conversion.output_dir import check_output_dir, replace_atomically
from ..errors import (
    HGQChipError,
    ProjectError,
    ToolMissingError,
    UnsupportedConfigurationError,
)
from . import constants as C
from .pipelined import check_stages, write_pipelined
from .pnr import PnrReport, check_target, place_and_route, require_nextpnr
from .tool_run import DEFAULT_TIME_LIMIT_S, check_time_limit, run_tool
from .yosys_flow import (
    FAMILIES,
    ecp5_script,
    parse_ltp,
    parse_stat,
    working_directory,
    xilinx_script,
)
from .yosys_tool import YosysTool, find_yosys

__all__ = ["SynthReport", "format_synth", "load_for_synth", "parse_stat", "synth"]

DA4ML_HINT = "install the RTL extra: pip install 'hgq_chip[rtl]' (da4ml)"
TOP = "model_rtl"
RTL_MARKER = "hgq_chip_rtl.json"  # marks a --rtl-dir folder synth wrote, so a later synth may replace it
TIMEOUT_ADVICE = ("use fewer --stages (or a longer --clock-period), a smaller model, or --family xc7 without --pnr")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class SynthReport:
    """What ``synth`` measured. ``cells``: yosys synth_xilinx cell counts (Xilinx, CARRY4 even for xcup);
    ``depth``: cells on the longest flip-flop-to-flip-flop path (yosys ``ltp``); ``ecp5_cells``/``ecp5_depth``
    and ``pnr`` (a PnrReport) only with ``--pnr ecp5``. ``stages`` = latency in clock cycles."""

    tool: str
    strategy: str
    cells: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    mismatches: int | None = None  # traced logic vs Keras (da4ml interpreter); None if not checked
    rtl_dir: str | None = None
    yosys: dict | None = None  # YosysTool.to_dict(): version, banner, source ("path"/"pip"), executable
    stages: int | None = None
    family: str = "xc7"
    clock_period: float = 5.0  # ns: the target (constraints, nextpnr --freq)
    depth: int | None = None
    reg_bits: int | None = None  # da4ml's register bits before yosys removes constant/unused ones
    ecp5_cells: dict[str, int] | None = None
    ecp5_depth: int | None = None
    pnr: PnrReport | None = None

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

    @property
    def latency_ns(self) -> float | None:
        """stages x the achieved ECP5 clock period (ns); None without place and route."""
        return None if self.pnr is None else self.stages * self.pnr.period_ns

    def to_dict(self) -> dict:
        return {"tool": self.tool, "strategy": self.strategy, "stages": self.stages, "latency_cycles": self.stages,
                "clock_period_ns": self.clock_period,
                "xilinx": {"family": self.family, "note": "yosys synth_xilinx cell counts (CARRY4 also for xcup); "
                           "Vivado's will differ", "lut": self.lut, "carry4": self.carry, "ff": self.ff,
                           "dsp": self.dsp, "bram": self.bram, "logic_depth_cells": self.depth, "cells": self.cells},
                "lut": self.lut, "carry": self.carry, "dsp": self.dsp, "ff": self.ff, "bram": self.bram,
                "reg_bits": self.reg_bits,
                "ecp5": None if self.pnr is None and self.ecp5_cells is None else {
                    "cells": self.ecp5_cells, "logic_depth_cells": self.ecp5_depth,
                    "pnr": None if self.pnr is None else self.pnr.to_dict(),
                    "latency_ns": None if self.latency_ns is None else round(self.latency_ns, 3)},
                "cells": self.cells, "seconds": round(self.seconds, 2),
                "trace_mismatches": self.mismatches, "rtl_dir": self.rtl_dir, "yosys": self.yosys}


def require_da4ml() -> None:
    try:
        import da4ml  # noqa: F401
    except ImportError as error:
        raise ToolMissingError(f"da4ml is not installed; {DA4ML_HINT}") from error


def check_family(family: str) -> str:
    name = str(family).lower()
    if name not in FAMILIES:
        raise UnsupportedConfigurationError(f"--family {family!r}: use one of {', '.join(FAMILIES)}")
    return name


def expected_time(lut: float, tool: YosysTool | None) -> str:
    """A time order for the progress line: ~10 s CPU per 1k LUTs pipelined (yosys 0.70 as WebAssembly,
    measured 24 s CPU for 6.8k LUTs, rtl-toolchain-notes.md), 3-8x that wall time on a loaded machine."""
    cpu = max(5.0, 10.0 * lut / 1000.0) / (3.0 if tool is not None and tool.source == "path" else 1.0)
    return f"about {cpu:.0f} s of CPU for ~{lut:.0f} estimated LUTs, several times that on a loaded machine"


def run_yosys(script: str, src: Path, tool: YosysTool, what: str, expected: str,
              time_limit: float = DEFAULT_TIME_LIMIT_S, progress=_stderr) -> float:
    """Run one yosys ``script`` in ``src``'s working directory; its duration (s). Raises HGQChipError
    (yosys failed, with its last output) and ToolTimeoutError."""
    cwd = working_directory(src)
    done = run_tool([*tool.command, "-q", "-p", script], cwd, src / f"yosys_{what.split()[0]}.log",
                    f"{tool.describe()} {what}", expected, time_limit, TIMEOUT_ADVICE, progress)
    if done.returncode != 0:
        raise HGQChipError(f"{tool.describe()} {what} failed (exit {done.returncode}); its last output:\n{done.tail()}")
    return done.seconds


def _synthesize(comb, directory: Path, report: SynthReport, yosys: YosysTool, pnr: str | None,
                estimated_lut: float, time_limit: float, progress) -> None:
    chosen = report.stages is None
    stages = write_pipelined(comb, directory, TOP, report.stages, report.clock_period)
    report.stages = stages
    if chosen:
        progress(f"[hgq_chip] {stages} pipeline stages for a {report.clock_period:g} ns clock (hgq_chip rtl's rule; "
                 "--stages N to choose)")
    meta = json.loads((directory / "metadata.json").read_text())
    report.reg_bits = meta.get("reg_bits")
    src = directory / "src"
    expected = expected_time(estimated_lut, yosys)
    stat, ltp = src / "xilinx_stat.txt", src / "xilinx_ltp.txt"
    run_yosys(xilinx_script(src, TOP, report.family, stat, ltp), src, yosys,
              f"synth_xilinx -family {report.family} of the {stages}-stage netlist", expected, time_limit, progress)
    report.cells = parse_stat(stat.read_text())
    report.depth = parse_ltp(ltp.read_text())
    if pnr == "ecp5":
        netlist, stat, ltp = src / "ecp5.json", src / "ecp5_stat.txt", src / "ecp5_ltp.txt"
        run_yosys(ecp5_script(src, TOP, netlist, stat, ltp), src, yosys,
                  f"synth_ecp5 of the {stages}-stage netlist", expected, time_limit, progress)
        report.ecp5_cells = parse_stat(stat.read_text())
        report.ecp5_depth = parse_ltp(ltp.read_text())
        report.pnr = place_and_route(netlist, src, 1000.0 / report.clock_period, time_limit, progress,
                                     expected=expected.replace("LUTs", "LUTs (nextpnr: about as long as yosys)"))


def synth(model, strategy: str = "latency", tool: str = "yosys", rtl_dir=None, check: bool = True,
          dsp_min_product_bits: int = C.DSP_MIN_PRODUCT_BITS, yosys: str | YosysTool | None = "auto",
          stages: int | None = None, clock_period: float | None = None, family: str = "xc7",
          pnr: str | None = None, time_limit: float = DEFAULT_TIME_LIMIT_S, progress=_stderr) -> SynthReport:
    """Trace the model to RTL with da4ml, pipeline it, synthesize it with yosys (and place and route it).

    ``model`` is a calibrated ``keras.Model``, a ``.keras`` file or a converted project
    directory (its ``keras_model.keras``). ``stages`` (>= 1) is the pipeline depth = latency in
    cycles; without it the stage count comes from ``clock_period`` (ns, default 5): as ``hgq_chip rtl``
    chooses it (``hdl.pipeline.stages_for_clock``), or with ``pnr`` by the estimate's ECP5 model
    (``timing.stages_for_period``). ``family``: ``xc7`` or ``xcup``
    (yosys synth_xilinx; DSP48E1 or DSP48E2, CARRY4 in both). ``pnr="ecp5"``: also synth_ecp5
    and nextpnr-ecp5 at 1000 / ``clock_period`` MHz. ``time_limit``: seconds per tool run.
    ``check`` first compares the traced logic with Keras (da4ml's interpreter). ``yosys``:
    ``"auto"``, ``"pip"``, an executable's path or a ``YosysTool`` (``yosys_tool.find_yosys``).
    ``progress``: receives the progress lines (default: stderr; None: silent).
    Raises UnsupportedConfigurationError (options), ToolMissingError (no yosys, da4ml or
    nextpnr), UnsafeOutputError (``rtl_dir``), ProjectError/ModelFileError (``model``), CalibrationError (an
    uncalibrated model), all before anything is written; ToolTimeoutError (a tool passed ``time_limit``).
    """
    from .estimate import check_strategy, estimate
    from .timing import check_clock_period, stages_for_period

    if tool != "yosys":
        raise UnsupportedConfigurationError(f"unknown synthesis tool {tool!r}; only yosys is supported")
    strategy = check_strategy(strategy)
    family = check_family(family)
    pnr = check_target(pnr)
    time_limit = check_time_limit(time_limit)
    if stages is not None:
        check_stages(stages)
    period = check_clock_period(5.0 if clock_period is None else clock_period)
    say = progress or (lambda message: None)
    keep = rtl_dir is not None
    reads = [model] if isinstance(model, (str, os.PathLike)) else []
    if keep:  # refuse an unsafe folder before the slow work (rules: hgq_chip.conversion.output_dir)
        check_output_dir(rtl_dir, force=True, reads=reads, marker=RTL_MARKER, what="--rtl-dir", replace_flag=None)
    yosys = yosys if isinstance(yosys, YosysTool) else find_yosys(yosys)
    require_da4ml()
    if pnr:
        require_nextpnr()
    model = load_for_synth(model)
    _check_calibrated(model)  # before tracing and yosys: an uncalibrated model has no activation types
    from .rtl import check_trace, trace_model

    start = time.time()
    predicted = estimate(model, strategy=strategy, clock_period=period, dsp_min_product_bits=dsp_min_product_bits)
    if stages is None and pnr:
        stages = stages_for_period(predicted, period, "ecp5")
        say(f"[hgq_chip] {stages} pipeline stages for a {period:g} ns clock on the ECP5 (the estimate's timing "
            "model; --stages N to choose)")
    say("[hgq_chip] tracing the model's arithmetic (da4ml)")
    _, _, comb = trace_model(model, strategy, dsp_min_product_bits)
    report = SynthReport(tool, strategy, yosys=yosys.to_dict(), stages=stages, family=family, clock_period=period)
    if check:
        report.mismatches = check_trace(model, comb)
    if keep:  # written beside rtl_dir and swapped in: an earlier RTL folder is replaced atomically
        with replace_atomically(rtl_dir, force=True, reads=reads, marker=RTL_MARKER, what="--rtl-dir",
                                replace_flag=None) as staging:
            _synthesize(comb, staging, report, yosys, pnr, predicted.lut, time_limit, progress)
            (staging / RTL_MARKER).write_text(json.dumps({"top": TOP, "strategy": strategy, "stages": report.stages})
                                              + "\n")
        report.rtl_dir = str(rtl_dir)
    else:
        directory = Path(tempfile.mkdtemp(prefix="hgq_chip_rtl_"))
        try:
            _synthesize(comb, directory, report, yosys, pnr, predicted.lut, time_limit, progress)
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
    lines = [(f"{report.tool}{which} of the da4ml RTL, pipelined into {report.stages} stages "
             f"(latency {report.stages} clock cycles; {report.strategy} strategy)"),
             (f"Xilinx (yosys synth_xilinx -family {report.family}; CARRY4 cells also for xcup; Vivado's counts "
             "will differ):"),
             f"  LUT {report.lut}  CARRY4 {report.carry}  FF {report.ff}  DSP {report.dsp}  BRAM {report.bram:g}",
             f"  logic depth: {report.depth} cells on the longest flip-flop-to-flip-flop path (yosys ltp)"]
    if report.pnr is not None:
        p = report.pnr
        util = ", ".join(f"{k} {u}/{a} ({100 * u / a:.0f}%)" for k, (u, a) in sorted(p.utilization.items()))
        lines += [f"{p.device} (yosys synth_ecp5 + nextpnr-ecp5, open tools; not a Xilinx timing):",
                  f"  utilisation: {util}",
                  (f"  Fmax {p.fmax_mhz:.1f} MHz (target {p.target_mhz:g} MHz: "
                  f"{'met' if p.fmax_mhz >= p.target_mhz else 'missed'}); "
                  f"critical path {p.critical_path_ns:.2f} ns = {p.logic_ns:.2f} logic + {p.routing_ns:.2f} routing"),
                  f"  latency: {report.stages} cycles x {p.period_ns:.2f} ns = {report.latency_ns:.1f} ns",
                  (f"  logic depth: {report.ecp5_depth} cells (yosys ltp after synth_ecp5); place and route "
                  f"{p.seconds:.0f} s")]
    if report.mismatches is not None:
        verdict = "bit-exact" if report.mismatches == 0 else f"{report.mismatches} MISMATCHING values"
        lines.append(f"traced logic vs Keras on random inputs: {verdict}")
    lines.append(f"Xilinx cells: {', '.join(f'{k} {v}' for k, v in sorted(report.cells.items()))}")
    lines.append(f"{report.seconds:.1f} s" + (f"; RTL in {report.rtl_dir}" if report.rtl_dir else ""))
    return "\n".join(lines)
