"""``hgq_chip report DIR``: the CLI face of :func:`hgq_chip.report.write_report`."""

from __future__ import annotations

from .page import FORMATS


def _run_report(args) -> int:
    from .page import write_report

    page_format = args.format
    if page_format is None:  # from --output's suffix: a page named .md gets Markdown
        page_format = "md" if args.output and args.output.lower().endswith((".md", ".markdown")) else "html"
    from .sweep import check_not_unfinished_sweep, is_sweep_dir, write_sweep_report

    check_not_unfinished_sweep(args.directory)
    if is_sweep_dir(args.directory):  # a folder written by `hgq_chip sweep`: its global front
        print(f"report: {write_sweep_report(args.directory, output=args.output, format=page_format)}")
        return 0
    path = write_report(args.directory, output=args.output, format=page_format, plots=args.plots,
                        pareto=args.pareto, trajectories=args.adaqat, metric_name=args.metric_name, rtl=args.rtl)
    print(f"report: {path}")
    return 0


def add_report_command(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="write an HTML/Markdown page about a converted model (types, estimate, plots)",
        description="Summarise a directory written by `hgq_chip convert`: per-layer EBOPs, pruning and "
                    "types, the resource estimate and, with --plots, bit-width histograms and heat maps "
                    "(and the Pareto front / AdaQAT trajectories when given). Plots need matplotlib "
                    "(pip install 'hgq_chip[plot]').",
    )
    p.add_argument("directory", help="the output directory of `hgq_chip convert`, of `hgq_chip rtl` (pipeline, "
                                      "verify and synth/pnr results), or of `hgq_chip sweep` (its global Pareto "
                                      "front: table and plot)")
    p.add_argument("--plots", action="store_true", help="draw PNG plots into report_files/ beside the page")
    p.add_argument("--format", default=None, choices=sorted(FORMATS),
                   help="page format: html, or md (= markdown) (default: md for an --output ending in .md, "
                        "else html)")
    p.add_argument("--output", default=None,
                   help="page path (default: DIRECTORY/report.html or report.md); an existing file is replaced "
                        "only if it is an earlier hgq_chip report")
    p.add_argument("--pareto", metavar="DIR|pareto.json", help="ParetoCheckpoint directory: plot its front")
    p.add_argument("--adaqat", metavar="CSV", help="AdaQAT bit-width log: plot the trajectories")
    p.add_argument("--rtl", metavar="DIR", default=None,
                   help="the `hgq_chip rtl` project of the same model: its pipeline, Verilator verify counts and "
                        "saved synth/pnr results go after the HLS sections")
    p.add_argument("--metric-name", default="validation metric", help="y-axis label of the Pareto plot")
    p.set_defaults(handler=_run_report)
