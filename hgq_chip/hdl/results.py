"""What was measured on an RTL project, saved beside it: ``results/verify.json`` and ``results/synth.json``.

``hgq_chip verify`` on an RTL project (``hgq_chip.verify``) records each check under a label
(``random 4x seed 0``, ``data``): samples, values, mismatching values, the latency in cycles
and whether the outputs came at exactly that latency. ``hgq_chip synth`` of an RTL project
folder (and a sweep's fan-out) records the ``SynthReport.to_dict()`` of its run: yosys
``synth_xilinx`` cell counts (Xilinx) and, with ``--pnr ecp5``, nextpnr's Lattice ECP5
place-and-route (Fmax, latency in ns). ``hgq_chip report`` shows them (``report/rtl.py``).

Each file is rewritten whole and atomically (``atomic_write``): a killed command leaves the
previous complete file. The ``results/`` folder counts as a build product of the project, so
``--force`` replaces the project with it (``conversion.manifest.foreign_files``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..atomic_write import write_atomically

RESULTS_DIR = "results"
VERIFY_FILE = "verify.json"
SYNTH_FILE = "synth.json"


def _path(project_dir, name: str) -> Path:
    return Path(project_dir) / RESULTS_DIR / name


def read_result(project_dir, name: str) -> dict | None:
    """The saved ``results/NAME`` (a dict), or None when it is missing or unreadable (a report still renders)."""
    try:
        data = json.loads(_path(project_dir, name).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write(project_dir, name: str, data: dict) -> Path:
    path = _path(project_dir, name)
    path.parent.mkdir(exist_ok=True)
    text = json.dumps(data, indent=1, default=str) + "\n"
    return write_atomically(path, lambda partial: Path(partial).write_text(text))


def verify_label(random: int | None, seed: int, scale: float) -> str:
    """``"random 4x seed 0"`` for random samples drawn over the range widened ``scale`` times, else ``"data"``."""
    return "data" if random is None else f"random {scale:g}x seed {seed}"


def save_verify(project_dir, label: str, report) -> Path:
    """Record an ``RTLVerifyReport`` under ``label`` in ``results/verify.json`` (other labels are kept)."""
    checks = (read_result(project_dir, VERIFY_FILE) or {}).get("checks", {})
    checks[label] = {"samples": int(report.n_samples), "values": int(report.n_values),
                     "mismatches": int(report.n_mismatches), "latency_cycles": int(report.latency_cycles),
                     "latency_found": report.latency_found, "ok": bool(report.ok),
                     "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return _write(project_dir, VERIFY_FILE, {"tool": "verilator", "checks": checks})


def save_synth(project_dir, report_dict: dict) -> Path:
    """Record a synthesis run (``SynthReport.to_dict()``) in ``results/synth.json`` (the latest run only)."""
    return _write(project_dir, SYNTH_FILE, {**report_dict,
                                            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
