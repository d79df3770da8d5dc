"""`hgq_chip estimate` and `hgq_chip synth`: thin wrappers over estimate() and synth()."""

from __future__ import annotations

import json

from . import constants as C

STRATEGIES = "latency|distributed_arithmetic"


def _run_estimate(args) -> int:
    from .estimate import estimate, format_estimate

    result = estimate(args.source, strategy=args.strategy, clock_period=args.clock_period,
                      dsp_min_product_bits=args.dsp_threshold)
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_estimate(result))
    return 0


def _run_synth(args) -> int:
    from .synth import format_synth, synth

    report = synth(args.source, strategy=args.strategy, tool=args.tool, rtl_dir=args.rtl_dir,
                   check=not args.no_check, dsp_min_product_bits=args.dsp_threshold)
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_synth(report))
    if report.mismatches:
        from ..errors import MismatchError

        raise MismatchError(f"the traced RTL differs from Keras in {report.mismatches} values (a bug: please report)")
    return 0


def _common(p) -> None:
    p.add_argument("--strategy", default="latency", metavar=STRATEGIES, help="hls4ml strategy (default: latency)")
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
    p.add_argument("--clock-period", type=float, default=5.0, metavar="NS", help="clock period in ns (default: 5)")
    _common(p)
    p.set_defaults(handler=_run_estimate)


def add_synth_command(subparsers) -> None:
    p = subparsers.add_parser("synth", help="synthesize the model's RTL (da4ml) with yosys and count cells",
                              description="Trace the model's arithmetic to Verilog with da4ml, check it against "
                                          "Keras on random inputs, synthesize it with yosys synth_xilinx and "
                                          "print LUT/CARRY/DSP/FF counts. Needs yosys and the rtl extra.")
    p.add_argument("source", metavar="DIR|MODEL.keras", help="converted project directory or calibrated model file")
    p.add_argument("--tool", default="yosys", choices=["yosys"], help="synthesis tool (default: yosys)")
    p.add_argument("--rtl-dir", default=None,
                   help="keep the generated RTL in this folder (new, empty, or an earlier --rtl-dir, which is "
                        "replaced; default: a temporary folder)")
    p.add_argument("--no-check", action="store_true", help="skip comparing the traced logic with Keras")
    _common(p)
    p.set_defaults(handler=_run_synth)
