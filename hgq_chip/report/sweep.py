"""The report page of a sweep folder (``hgq_chip report DIR`` where DIR holds ``front.json``).

``front.json`` (written by ``hgq_chip sweep``): ``{"name", "objectives", "trials": {"total",
"done", "failed", "running"}, "members": [...]}``, one member per global Pareto front point:
``trial``, ``params``, ``epoch``, ``val_accuracy``, ``ebops`` (exact, at the training ranges),
``path`` (the ``.keras`` checkpoint) and, after the fan-out, ``status`` (pending/ok/failed),
``test_accuracy``, ``ebops_firmware`` (exact, ranges calibrated on the training set), ``lut``,
``dsp``, ``latency_cycles``, ``latency_ns`` (``hgq_chip.estimate``), ``verify``, ``synth``,
``project``, ``error`` and, with the fan-out's ``rtl``, ``rtl`` (stages, latency, Verilator verify
counts) and ``objective_values`` (``lut`` / ``latency_ns`` with their sources): ``report/rtl.py``. The page: the counts, the front table and a plot of accuracy against
EBOPs and against estimated LUTs, each point coloured by its trial.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DataError, ToolMissingError
from . import plots as charts
from .output import StagedReport
from .page import FORMATS, PLOT_DIR, Section, check_report_output, render_html, render_markdown

FRONT_NAME = "front.json"
SPEC_MARKER = "sweep.json"  # written by hgq_chip sweep before its first trial (sweeps/run.py)
PLOT_NAME = "sweep_front.png"


def read_front(path) -> dict:
    """``front.json`` as a dict; DataError if it is unreadable or not a sweep front."""
    path = Path(path)
    try:
        front = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise DataError(f"cannot read the sweep front {path} ({type(error).__name__}: {error})") from error
    if not isinstance(front, dict) or not isinstance(front.get("members"), list) or not all(
            isinstance(m, dict) and {"trial", "val_accuracy", "ebops"} <= set(m) and _number(m["val_accuracy"])
            and _number(m["ebops"]) and isinstance(m["trial"], str) for m in front["members"]):
        raise DataError(f"{path} is not a sweep front (members of trial, val_accuracy, ebops: a name and two numbers)")
    return front


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_not_unfinished_sweep(directory) -> None:
    """ProjectError for a sweep folder without ``front.json`` yet (killed before its first trial finished)."""
    from ..errors import ProjectError

    if (Path(directory) / SPEC_MARKER).is_file() and not is_sweep_dir(directory):
        raise ProjectError(f"{directory} is a sweep folder whose first trial has not finished yet (no {FRONT_NAME}); "
                           "run the same `hgq_chip sweep` command again to resume it, then report")


def is_sweep_dir(directory) -> bool:
    return (Path(directory) / FRONT_NAME).is_file()


def plot_sweep_front(members: list[dict], path) -> Path:
    """Validation accuracy vs exact EBOPs and vs estimated LUTs (members with a ``lut``), coloured by trial."""
    if not members:
        raise ValueError("the sweep front is empty; nothing to plot")
    with_lut = [m for m in members if isinstance(m.get("lut"), (int, float))]
    panels = [("ebops", members, "exact EBOPs")] + ([("lut", with_lut, "estimated LUTs")] if with_lut else [])
    figure = charts._figure(5.5 * len(panels), 4.2)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    trials = sorted({m["trial"] for m in members})
    colours = charts._matplotlib().colormaps["tab10"]
    for ax, (key, rows, label) in zip(axes, panels):
        rows = sorted(rows, key=lambda m: m[key])
        ax.step([m[key] for m in rows], [m["val_accuracy"] for m in rows], where="post", color="0.6", linewidth=1)
        for index, trial in enumerate(trials):
            mine = [m for m in rows if m["trial"] == trial]
            if mine:
                ax.scatter([m[key] for m in mine], [m["val_accuracy"] for m in mine], color=colours(index % 10),
                           zorder=3, label=trial)
        if rows and min(m[key] for m in rows) > 0 and max(m[key] for m in rows) / min(m[key] for m in rows) > 20:
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("validation accuracy")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=7, title="trial", title_fontsize=7)
    figure.suptitle(f"Sweep: global Pareto front ({len(members)} members of {len(trials)} trials)")
    return charts._save(figure, path)


def _cell(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _verify_cell(member: dict) -> str:
    checks = member.get("verify") or {}
    return "; ".join(f"{name}: {c['mismatches']}/{c['values']}" for name, c in checks.items()) or "-"


def front_section(front: dict) -> Section:
    counts = front.get("trials", {})
    section = Section("Global Pareto front")
    text = (f"Sweep {front.get('name', '?')}: {counts.get('done', '?')} of {counts.get('total', '?')} trials done, "
            f"{counts.get('failed', 0)} failed; {len(front['members'])} front members. Verify column: mismatching "
            "values / values compared (C simulation vs Keras).")
    section.blocks.append(("text", text))
    rows = [[m["trial"], m.get("epoch"), _cell(m["val_accuracy"]), _cell(m.get("test_accuracy")), m["ebops"],
             _cell(m.get("lut")), _cell(m.get("dsp")), _cell(m.get("latency_cycles")), _verify_cell(m),
             _cell((m.get("synth") or {}).get("lut")), m.get("status", "pending"), m.get("error") or ""]
            for m in front["members"]]
    section.blocks.append(("table", ["trial", "epoch", "val acc", "test acc", "EBOPs", "est. LUT", "est. DSP",
                                     "latency (cycles)", "verify", "yosys LUT", "status", "error"], rows))
    return section


def write_sweep_report(directory, output=None, format: str = "html") -> Path:
    """One page (HTML or Markdown) about the sweep in ``directory``, with the front plot when
    matplotlib is installed. Returns the page path. DataError for a bad front.json."""
    directory = Path(directory)
    front = read_front(directory / FRONT_NAME)
    output = Path(output) if output else directory / FORMATS[format]
    check_report_output(output, reads=[directory / FRONT_NAME], plots=True)
    from .rtl import members_section, objectives_section

    sections = [front_section(front)] + [s for s in (members_section(front["members"]),
                                                      objectives_section(front["members"])) if s is not None]
    title = f"hgq_chip report: sweep {directory.resolve().name}"
    with StagedReport(output, output.parent / PLOT_DIR) as staged:
        if front["members"]:
            plot = Section("Plots")
            try:
                plot_sweep_front(front["members"], staged.staged_plots / PLOT_NAME)
                plot.blocks.append(("image", Path(PLOT_DIR) / PLOT_NAME,
                                    "Validation accuracy vs exact EBOPs and vs estimated LUTs, coloured by trial."))
            except ToolMissingError as error:  # no matplotlib: the table is still worth a page
                plot.blocks.append(("text", f"No plot: {error}"))
            sections.append(plot)
        text = render_html(title, sections) if format == "html" else render_markdown(title, sections)
        return staged.commit(text)
