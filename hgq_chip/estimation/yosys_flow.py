"""The yosys scripts ``hgq_chip synth`` runs on a pipelined netlist, and how their output is read.

Two flows, both on the pipelined Verilog da4ml writes (``src/{top}.v``, ``src/{top}_stage*.v``,
``src/static/*.v``, ``src/memfiles/``):

- **Xilinx**: ``synth_xilinx -flatten -family xc7|xcup -noiopad``, ``stat`` (LUT1-6, INV, CARRY4,
  FD*, DSP48E1/E2, RAMB18/36) and ``ltp -noff t:FD* %n``: the longest path of cells between
  flip-flops (``ltp`` alone does not stop at Xilinx FF cells and would report the path through
  every stage). Yosys 0.70 maps carry chains to CARRY4 for ``xcup`` too (no CARRY8).
- **Lattice ECP5** (for nextpnr): ``synth_ecp5 -json``, ``stat`` and ``ltp -noff t:TRELLIS_FF %n``.

Every path in a script is relative to the working directory: the pip yosys (WebAssembly) sees
``/tmp`` as a private folder of its own (see ``yosys_tool``).
Source of the recipes: /work/shared/design/rtl-toolchain-notes.md section 3 (measured 2026-12-07).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import HGQChipError
from . import constants as C

FAMILIES = ("xc7", "xcup")
# Yosys flip-flop cell names: Xilinx FDRE/FDSE/FDCE/FDPE, Lattice TRELLIS_FF.
FF_SELECTION = {"xilinx": "t:FD*", "ecp5": "t:TRELLIS_FF"}


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
            raise HGQChipError("yosys printed no cell statistics (the design is empty or yosys stopped early)")
        lines, pattern = new[-1].splitlines()[1:], r"\s+(?P<n>\d+)\s+(?P<name>\$?[A-Za-z_][\w$]*)\s*"
    cells: dict[str, int] = {}
    for line in lines:
        match = re.fullmatch(pattern, line)
        if not match:
            break
        if match.group("name") != "$scopeinfo":  # newer yosys keeps flattened hierarchy as zero-area markers
            cells[match.group("name")] = int(match.group("n"))
    return cells


def parse_ltp(text: str) -> int:
    """The length (cells) of yosys ``ltp``'s longest topological path; 0 for a design without logic.

    ``ltp`` prints ``Longest topological path in model (length=15):``. Raises HGQChipError
    when the line is missing.
    """
    found = re.findall(r"Longest topological path in \S+ \(length=(\d+)\)", text)
    if not found:
        if "No loops found" in text or text.strip() == "":
            return 0
        raise HGQChipError("yosys ltp printed no longest path")
    return int(found[-1])


def netlist_sources(src: Path, top: str, cwd: Path) -> str:
    """``read_verilog`` commands for the pipelined netlist in ``src`` (no wrapper), relative to ``cwd``."""

    def rel(path: Path) -> str:
        return os.path.relpath(path, cwd)

    static = sorted(rel(p) for p in (src / "static").glob("*.v"))
    stages = sorted((p for p in src.glob(f"{top}_stage*.v")), key=lambda p: int(re.sub(r"\D", "", p.stem[-4:]) or 0))
    design = [rel(p) for p in stages] + [rel(src / f"{top}.v")]
    # -defer: static modules are elaborated only with the parameters the design uses.
    # da4ml marks its table ROMs rom_style="distributed", which yosys (0.23 and 0.70 alike)
    # then refuses ("no valid mapping found for memory"): unset it, so the ROM becomes LUTs.
    return (f"read_verilog -defer {' '.join(static)}; read_verilog {' '.join(design)}; "
            f"hierarchy -top {top}; setattr -unset rom_style")


def working_directory(src: Path) -> Path:
    """Table contents ($readmemh) are found relative to the working directory: ``memfiles/`` when present."""
    memfiles = src / "memfiles"
    return memfiles if memfiles.is_dir() else src


def xilinx_script(src: Path, top: str, family: str, stat_file: Path, ltp_file: Path) -> str:
    """synth_xilinx of the netlist, its ``stat`` into ``stat_file`` and flip-flop-to-flip-flop ``ltp`` into ``ltp_file``."""
    cwd = working_directory(src)
    return (f"{netlist_sources(src, top, cwd)}; synth_xilinx -top {top} -flatten -family {family} "
            f"{C.YOSYS_SYNTH_OPTIONS}; tee -q -o {os.path.relpath(stat_file, cwd)} stat; "
            f"tee -q -o {os.path.relpath(ltp_file, cwd)} ltp -noff {FF_SELECTION['xilinx']} %n")


def ecp5_script(src: Path, top: str, json_file: Path, stat_file: Path, ltp_file: Path) -> str:
    """synth_ecp5 of the netlist to ``json_file`` (nextpnr's input), its ``stat`` and ``ltp``."""
    cwd = working_directory(src)
    return (f"{netlist_sources(src, top, cwd)}; synth_ecp5 -top {top} -json {os.path.relpath(json_file, cwd)}; "
            f"tee -q -o {os.path.relpath(stat_file, cwd)} stat; "
            f"tee -q -o {os.path.relpath(ltp_file, cwd)} ltp -noff {FF_SELECTION['ecp5']} %n")
