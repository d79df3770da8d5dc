"""One report page (HTML or Markdown) for a converted model: totals, per-layer summary,
types, resource estimate and plots.

The page is assembled as sections of blocks (text, table, image) and then rendered, so
the HTML and Markdown versions always hold the same content.
"""

from __future__ import annotations

import contextlib
import html
import os
from pathlib import Path

import numpy as np

from ..conversion.manifest import register_added_files
from ..conversion.output_dir import project_in_use
from ..conversion.output_file import check_output_file
from ..errors import HGQChipError, UnsafeOutputError, UnsupportedConfigurationError
from . import plots as charts
from .conversion import INPUT_FILES, Conversion, load_conversion, load_pareto, load_trajectories
from .output import PLOTS_LIST, StagedReport, check_plot_dir, listed_plots
from .section import Section

FORMATS = {"html": "report.html", "md": "report.md", "markdown": "report.md"}
PLOT_DIR = "report_files"
HLS_TYPE_KEYS = ("result", "weight", "bias", "accum", "table")


def estimate_of(source):
    """(estimate dict, None) from hgq_chip.estimate, or (None, why it is unavailable).

    A project folder is estimated with the strategy and clock period it was converted with.
    """
    try:
        from ..estimation import estimate
        from ..estimation.options import stored_options
    except ImportError as error:
        return None, f"hgq_chip.estimate is not available ({error})"
    try:
        stored = stored_options(source) if Path(source).is_dir() else None
        options = {k: stored[k] for k in ("strategy", "clock_period")} if stored else {}
        return estimate(source, **options).to_dict(), None
    except HGQChipError as error:
        return None, str(error)


def _layer_bits(conversion: Conversion) -> dict[str, str]:
    text = {}
    for layer in {w.layer for w in conversion.weights}:
        kept = np.concatenate([w.kept for w in conversion.weights if w.layer == layer])
        text[layer] = f"{kept.mean():.2f} / {kept.max()}" if kept.size else "-"
    return text


def _keras_precision(layer: dict) -> str:
    """e.g. "float32 (17)": the dtype Keras computes the layer in and the most significant bits
    of any value it computes there (convert refused more than the dtype holds)."""
    if "keras_dtype" not in layer:
        return "-"  # a summary written before this column existed
    return f"{layer['keras_dtype']} ({layer.get('float_bits', '-')})"


def summary_section(conversion: Conversion) -> Section:
    s = conversion.summary
    section = Section("Summary")
    inputs = ", ".join(f"{name}: {t}" for name, t in s.get("inputs", {}).items()) or "-"
    section.blocks.append(("text", f"Total EBOPs: {s['total_ebops']}. Weights kept: {s['weights_kept']}, pruned: "
                                   f"{s['weights_pruned']}. Widest accumulator: {s['widest_accumulator']} bits. "
                                   f"Inputs: {inputs}."))
    bits = _layer_bits(conversion)
    rows = [[layer["layer"], layer["class"], layer["weights_kept"], layer["weights_pruned"], layer["ebops"],
             bits.get(layer["layer"], "-"), layer["accum"] or "-", _keras_precision(layer)]
            for layer in s["layers"]]
    rows.append(["total", "", s["weights_kept"], s["weights_pruned"], s["total_ebops"], "", "", ""])
    headers = ["layer", "class", "weights kept", "pruned", "EBOPs", "weight bits mean / max", "accumulator",
               "Keras dtype (widest value, bits)"]
    section.blocks.append(("table", headers, rows))
    return section


def types_section(conversion: Conversion) -> Section:
    rows = []
    for layer in conversion.summary["layers"]:
        for hls_name, types in layer["hls_types"].items():
            # Types of our own templates (HSoftmax's exp_table, sum, ...; ASQ/POST's code, ...).
            others = "; ".join(f"{key} {fmt}" for key, fmt in types.items() if key not in HLS_TYPE_KEYS)
            rows.append([layer["layer"], hls_name] + [types.get(key, "") for key in HLS_TYPE_KEYS] + [others])
    section = Section("Fixed-point types (hls4ml layers)")
    section.blocks.append(("text", "Every type below was derived by interval arithmetic and passed to hls4ml "
                                   "explicitly; per-weight types are in weight_types.csv."))
    section.blocks.append(("table", ["layer", "hls4ml layer", *HLS_TYPE_KEYS, "other types"], rows))
    return section


def estimate_section(estimate: dict | None, why: str | None) -> Section:
    section = Section("Resource estimate")
    if estimate is None:
        section.blocks.append(("text", f"No estimate: {why}"))
        return section
    keys = ["lut", "dsp", "ff", "bram", "cycles", "delay_ns"]
    rows = [[layer["layer"], layer["layer_class"]] + [layer[k] for k in keys] for layer in estimate["layers"]]
    total = estimate["total"]
    rows.append(["total", "", total["lut"], total["dsp"], total["ff"], total["bram"], total["latency_cycles"], ""])
    section.blocks.append(("text", f"Strategy {estimate['strategy']}, clock period {estimate['clock_period_ns']} ns: "
                                   f"latency {total['latency_cycles']} cycles = {total['latency_ns']:g} ns "
                                   "(estimated without synthesis by hgq_chip.estimate)."))
    section.blocks.append(("table", ["layer", "class", "LUT", "DSP", "FF", "BRAM", "cycles", "delay (ns)"], rows))
    return section


def plot_section(conversion: Conversion, plot_dir: Path, pareto=None, trajectories=None,
                 metric_name: str = "validation metric", rel: Path | None = None) -> Section:
    """Draw the plots into ``plot_dir``; the page links them as ``rel/NAME.png`` (default: plot_dir's name)."""
    section = Section("Plots")
    rel = Path(plot_dir.name) if rel is None else rel
    if conversion.weights:
        charts.plot_bit_histograms(conversion.weights, plot_dir / "bit_histograms.png")
        section.blocks.append(("image", rel / "bit_histograms.png", "Weight bit-widths per layer (red: pruned)."))
    if conversion.weights_of("kernel"):
        charts.plot_bit_heatmaps(conversion.weights, plot_dir / "kernel_bits.png")
        section.blocks.append(("image", rel / "kernel_bits.png", "Per-weight kernel bit-widths (red: pruned)."))
    if pareto is not None:
        entries = pareto if isinstance(pareto, list) else load_pareto(pareto)
        luts, why = pareto_luts(entries)
        charts.plot_pareto(entries, plot_dir / "pareto.png", metric_name=metric_name, luts=luts)
        note = "" if luts is not None else f" No LUT panel: {why}"
        section.blocks.append(("image", rel / "pareto.png", f"Pareto front of the training checkpoints.{note}"))
    if trajectories is not None:
        charts.plot_trajectories(trajectories, plot_dir / "adaqat_bits.png")
        section.blocks.append(("image", rel / "adaqat_bits.png", "AdaQAT bit-widths N during training."))
    return section


def pareto_luts(entries: list[dict]):
    """Estimated LUTs of each Pareto checkpoint (from its saved model), or (None, why not)."""
    if all("luts" in e for e in entries):
        return [e["luts"] for e in entries], None
    luts = []
    for entry in entries:
        if "path" not in entry or not Path(entry["path"]).is_file():
            return None, f"checkpoint {entry.get('path')!r} is missing"
        result, why = estimate_of(entry["path"])
        if result is None:
            return None, why
        luts.append(result["total"]["lut"])
    return luts, None


def render_markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if block[0] == "text":
                lines += [block[1], ""]
            elif block[0] == "table":
                _, headers, rows = block
                lines.append("| " + " | ".join(headers) + " |")
                lines.append("|" + "---|" * len(headers))
                lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
                lines.append("")
            else:
                _, path, caption = block
                lines += [f"![{caption}]({path.as_posix()})", "", f"*{caption}*", ""]
    return "\n".join(lines)


CSS = ("body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;margin:1em 0}"
       "th,td{border:1px solid #bbb;padding:3px 8px;text-align:right;font-size:90%}th{background:#eee}"
       "td:first-child,td:nth-child(2){text-align:left}img{max-width:100%;border:1px solid #ddd}")


def render_html(title: str, sections: list[Section]) -> str:
    e = html.escape
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{e(title)}</h1>"]
    for section in sections:
        parts.append(f"<h2>{e(section.title)}</h2>")
        for block in section.blocks:
            if block[0] == "text":
                parts.append(f"<p>{e(block[1])}</p>")
            elif block[0] == "table":
                _, headers, rows = block
                head = "".join(f"<th>{e(str(h))}</th>" for h in headers)
                body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
                parts.append(f"<table><tr>{head}</tr>{body}</table>")
            else:
                _, path, caption = block
                parts.append(f"<figure><img src='{e(path.as_posix())}' alt='{e(caption)}'>"
                             f"<figcaption>{e(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_rtl_report(directory, output=None, format: str = "html") -> Path:
    """One page about the ``hgq_chip rtl`` project in ``directory``: pipeline, Verilator verify counts and
    the saved synthesis / place-and-route results (``report/rtl.py``). Returns the page path.
    Raises ProjectError (not an RTL project) and UnsafeOutputError (``output``) before writing."""
    from . import rtl

    sections = rtl.rtl_sections(directory)
    output = Path(output) if output else Path(directory) / FORMATS[format]
    check_report_output(output, reads=rtl.input_files(directory))
    title = f"hgq_chip report: {Path(directory).resolve().name}"
    inside = Path(os.path.realpath(output)).is_relative_to(os.path.realpath(directory))
    # As for a convert project: a page inside the project is written under its lock and registered
    # in its manifest, so a later `hgq_chip rtl --force` replaces it with the project.
    with project_in_use(directory) if inside else contextlib.nullcontext():
        with StagedReport(output, None) as staged:
            page = staged.commit(render_html(title, sections) if format == "html" else render_markdown(title, sections))
        if inside:
            register_added_files(directory, [page])
    return page


def write_report(directory, output=None, format: str = "html", plots: bool = False, pareto=None,
                 trajectories=None, metric_name: str = "validation metric", rtl=None) -> Path:
    """Write one HTML (or Markdown: ``"md"``/``"markdown"``) page about the conversion in ``directory``.

    ``directory`` may also be an ``hgq_chip rtl`` project (:func:`write_rtl_report`); ``rtl``: the
    RTL project of the same model, whose results are shown after the HLS ones.

    ``output`` defaults to ``directory/report.html`` (``report.md``); plots go to a
    ``report_files`` folder beside it. A page (and plots) inside the project folder is written
    under the project's lock (OutputLockedError while a convert or verify holds it) and recorded
    in its manifest, so ``convert --force`` replaces it with the project. ``pareto`` is a ParetoCheckpoint directory or its
    pareto.json, ``trajectories`` AdaQAT bit-widths (dict or CSV); both imply plots.
    Every input is read and the output checked before anything is written: ProjectError
    for a missing or corrupt project, DataError for a bad --pareto/--adaqat file,
    UnsafeOutputError for an output that would overwrite an input or a file that is not
    an earlier report, ToolMissingError for plots without matplotlib. Returns the page path.
    """
    if format not in FORMATS:
        raise UnsupportedConfigurationError(f"unknown report format {format!r}; use one of {list(FORMATS)}")
    from . import rtl as rtl_report

    if rtl_report.is_rtl_dir(directory):
        if plots or pareto is not None or trajectories is not None or rtl is not None:
            raise UnsupportedConfigurationError(f"{directory} is an RTL project: its report has no plots, Pareto "
                                                "front, AdaQAT trajectories or --rtl; report the convert folder "
                                                "with --rtl DIR for those")
        return write_rtl_report(directory, output, format)
    conversion = load_conversion(directory)
    rtl_sections = rtl_report.rtl_sections(rtl) if rtl is not None else []
    output = Path(output) if output else conversion.directory / FORMATS[format]
    entries = load_pareto(pareto) if pareto is not None else None
    series = load_trajectories(trajectories) if trajectories is not None else None
    draw = plots or entries is not None or series is not None
    if draw:
        charts._matplotlib()  # ToolMissingError now rather than after the page's folder was made
    plot_dir = output.parent / PLOT_DIR if draw else None
    inputs = [conversion.directory / name for name in INPUT_FILES]
    inputs += [Path(p) for p in (pareto, trajectories) if isinstance(p, (str, os.PathLike))]
    inputs += [Path(e["path"]) for e in entries or [] if isinstance(e.get("path"), str)]
    inputs += rtl_report.input_files(rtl) if rtl is not None else []
    check_report_output(output, reads=inputs, plots=draw)
    estimate, why = estimate_of(conversion.directory)
    sections = [summary_section(conversion), types_section(conversion), estimate_section(estimate, why), *rtl_sections]
    title = f"hgq_chip report: {conversion.directory.resolve().name}"
    inside = Path(os.path.realpath(output)).is_relative_to(os.path.realpath(conversion.directory))
    # A page inside the project (the default) is written under the project's lock and registered in
    # its manifest, so a later `convert --force` replaces it with the project instead of refusing.
    with project_in_use(conversion.directory) if inside else contextlib.nullcontext():
        with StagedReport(output, plot_dir) as staged:
            if draw:
                sections.append(plot_section(conversion, staged.staged_plots, entries, series, metric_name,
                                             rel=Path(PLOT_DIR)))
            text = render_html(title, sections) if format == "html" else render_markdown(title, sections)
            page = staged.commit(text)
        if inside:
            plots = [plot_dir / name for name in [PLOTS_LIST, *listed_plots(plot_dir)]] if draw else []
            register_added_files(conversion.directory, [page, *plots])
    return page


def is_report(path: Path) -> bool:
    """True for a page :func:`write_report` wrote (HTML or Markdown), judged by its first bytes."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(300).decode("utf-8", errors="replace")
    except OSError:
        return False
    return head.startswith("# hgq_chip report: ") or (
        head.startswith("<!DOCTYPE html>") and "<title>hgq_chip report: " in head)


def check_report_output(output: Path, reads=(), plots: bool = False) -> None:
    """Refuse (UnsafeOutputError) a page path that is a folder, a file the report reads or any existing
    file that is not an earlier report (those are replaced); the plot folder beside it must be a folder."""
    check_output_file(output, reads=[r for r in reads if isinstance(r, (str, os.PathLike))], replace=True,
                      is_ours=is_report, what="report --output",
                      not_ours_hint="choose another --output (earlier reports are replaced)")
    plot_dir = output.parent / PLOT_DIR
    if os.path.lexists(plot_dir) and not plot_dir.is_dir():
        raise UnsafeOutputError(f"{plot_dir} (where the report's plots go) is a file; move it or choose another "
                                "--output folder")
    if plots:
        check_plot_dir(plot_dir)
