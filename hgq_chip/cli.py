"""Command-line entry point: parses arguments, calls the API, maps typed errors to exit codes."""

from __future__ import annotations

import argparse
import os
import sys

from ._version import __version__
from .cli_runtime import import_tensorflow_quietly, run_command
from .estimation import cli as estimate_cli
from .qkeras_import.cli import add_import_qkeras_command
from .qkeras_import.cli import check_before_keras as check_import_before_keras
from .report.cli import add_report_command
from .sampling_options import VERIFY_BATCH
from .sweeps.cli import add_sweep_command

BACKENDS = "Vitis|Vivado"
IO_TYPES = "io_parallel|io_stream"
STRATEGIES = "latency|distributed_arithmetic"


def _log(args):
    return (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))


def _run_convert(args) -> int:
    from . import api
    from .conversion.reports import format_summary, summarize

    log = _log(args)
    conversion = api.convert(
        args.model, args.output_dir, backend=args.backend, io_type=args.io_type, part=args.part,
        clock_period=args.clock_period, reuse_factor=args.reuse_factor, strategy=args.strategy,
        force=args.force, project_name=args.project_name, log=log, replace_non_project=args.replace_non_project,
    )
    print(format_summary(summarize(conversion.records)))
    print(f"project: {conversion.output_dir} (per-weight types: weight_types.csv, summary: summary.json)")
    return 0


def _load_data(path, model, loaded=None) -> list:
    """The ``--data`` arrays in model-input order, checked against the model's inputs (DataError)."""
    from .input_data import input_specs, inputs_from_file

    return inputs_from_file(path, input_specs(model), "--data", loaded)


def _check_verify_options(args):
    """Value checks of --random/--seed/--scale/--batch-size (the API's own checks, named as flags)
    and reading --data, before the model is loaded.

    Returns the --data file's content (see input_data.read_array_file) or None.
    """
    from .sampling_options import CLI_NAMES, check_sampling_options

    check_sampling_options(args.random, args.seed, args.scale, args.batch_size, CLI_NAMES)
    if args.data is None:
        return None
    from .input_data import read_array_file

    return read_array_file(args.data, "--data")


def _check_convert_before_keras(args) -> None:
    """convert's option, output-folder and model-file checks, which need no Keras: a typo fails at
    once instead of after TensorFlow's import (seconds idle, tens of seconds on a loaded machine)."""
    from .conversion.hls_config import backend_name, check_io_type, check_options
    from .conversion.output_dir import check_output_dir
    from .model_file import check_model_path

    backend_name(args.backend)
    check_io_type(args.io_type)
    check_options(args.reuse_factor, args.clock_period, args.part, args.strategy)
    check_output_dir(args.output_dir, force=args.force or args.replace_non_project,
                     replace_non_project=args.replace_non_project, reads=(args.model,))
    check_model_path(args.model)


def _check_verify_before_keras(args) -> None:
    """verify's option, --data, model-file and project checks, which need no Keras (see convert's)."""
    from .conversion.csim import project_name_of
    from .model_file import check_model_path

    args.loaded_data = _check_verify_options(args)
    check_model_path(args.model)
    if not _is_rtl_project(args.project_dir):  # an `hgq_chip rtl` project has no build_lib.sh
        project_name_of(args.project_dir)


def _is_rtl_project(directory) -> bool:
    """Whether ``directory``'s manifest says ``kind: rtl`` (read without Keras)."""
    from .conversion.manifest import read_manifest
    from .errors import ProjectError

    try:
        return read_manifest(directory).get("kind") == "rtl"
    except ProjectError:
        return False


# Checks a command makes before TensorFlow is imported (needing no Keras).
_BEFORE_KERAS = {"convert": _check_convert_before_keras, "verify": _check_verify_before_keras,
                 "import-qkeras": check_import_before_keras}


def _run_verify(args) -> int:
    loaded = args.loaded_data if hasattr(args, "loaded_data") else _check_verify_options(args)
    from . import api

    log = _log(args)
    log(f"[hgq_chip] loading {args.model}")
    model = api.load_model(args.model)
    x = _load_data(args.data, model, loaded) if args.data else None
    x = x[0] if x is not None and len(x) == 1 else x
    from .sampling_options import CLI_NAMES

    report = api.verify(model, args.project_dir, x, random=args.random, seed=args.seed, scale=args.scale, log=log,
                        allow_large=args.allow_large, batch_size=args.batch_size, names=CLI_NAMES)
    print(f"mismatches: {report.n_mismatches} of {report.n_values} values ({report.n_samples} samples)")
    if not report.ok:
        out, index, keras_value, csim_value = report.first_mismatch
        print(f"first mismatch: output {out}, sample {index[0]}, element {index[1]}: "
              f"keras {keras_value!r}, {'rtl' if hasattr(report, 'latency_cycles') else 'csim'} {csim_value!r}")
        from .errors import MismatchError

        raise MismatchError(report.describe())
    print(report.describe())
    return 0


def _run_rtl(args) -> int:
    from . import api

    project = api.rtl(args.model, args.output_dir, stages=args.stages, clock_period=args.clock_period,
                      strategy=args.strategy, force=args.force, replace_non_project=args.replace_non_project,
                      log=_log(args))
    print(f"RTL: {project.describe()}")
    print(f"project: {project.output_dir} (ports: PORTS.md, top: src/model.v, constraints: src/model.xdc, "
          "src/model.sdc)")
    return 0


def _add_rtl(subparsers) -> None:
    p = subparsers.add_parser("rtl", help="write the pipelined Verilog of a calibrated model",
                              description="Trace a calibrated hgq_chip model into pipelined Verilog (da4ml): "
                                          "sources, a top with documented ports (PORTS.md), XDC/SDC constraints. "
                                          "`hgq_chip verify` then simulates it with Verilator, bit for bit.")
    p.add_argument("model", help="the model, saved with model.save('name.keras')")
    p.add_argument("--output-dir", required=True,
                   help="project folder: new or empty, or an earlier hgq_chip project with --force; never the "
                        "current directory, home, a filesystem root or the model's folder")
    p.add_argument("--stages", type=int, default=None, metavar="N",
                   help="exactly N pipeline stages (latency N cycles); the error names the range this model allows")
    p.add_argument("--clock-period", type=float, default=None, metavar="NS",
                   help="clock period in ns for the XDC/SDC constraints; without --stages it also picks the stage "
                        "count from hgq_chip's timing model (default: 5)")
    p.add_argument("--strategy", default="latency", metavar=STRATEGIES,
                   help="constant products as summed signed digits (latency) or da4ml's optimized adder graphs "
                        "(distributed_arithmetic); default: latency")
    p.add_argument("--force", action="store_true",
                   help="replace --output-dir if it holds an earlier hgq_chip project (swapped atomically)")
    p.add_argument("--replace-non-project", action="store_true",
                   help="also replace a folder hgq_chip did not write, deleting everything in it (implies --force)")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(handler=_run_rtl)


def _add_convert(subparsers) -> None:
    p = subparsers.add_parser("convert", help="write the hls4ml project of a calibrated model",
                              description="Derive every fixed-point type of a calibrated hgq_chip model and write "
                                          "its hls4ml project; prints the per-layer summary.")
    p.add_argument("model", help="the model, saved with model.save('name.keras')")
    p.add_argument("--backend", required=True, metavar=BACKENDS, help="hls4ml backend")
    p.add_argument("--output-dir", required=True,
                   help="project folder: new or empty, or an earlier project with --force; never the current "
                        "directory, home, a filesystem root or the model's folder")
    p.add_argument("--io-type", default="io_parallel", metavar=IO_TYPES,
                   help="io_stream needs per-layer activation bits (default: io_parallel)")
    p.add_argument("--part", default=None, help="FPGA part (default: the backend's)")
    p.add_argument("--clock-period", type=float, default=5.0, metavar="NS", help="clock period in ns (default: 5)")
    p.add_argument("--reuse-factor", type=int, default=1, metavar="N", help="hls4ml reuse factor (default: 1)")
    p.add_argument("--strategy", default="latency", metavar=STRATEGIES, help="hls4ml strategy (default: latency)")
    p.add_argument("--project-name", default="myproject", help="C++ top function name (default: myproject)")
    p.add_argument("--force", action="store_true",
                   help="replace --output-dir if it holds an earlier hgq_chip project (swapped atomically)")
    p.add_argument("--replace-non-project", action="store_true",
                   help="also replace a folder convert did not write, deleting everything in it (implies --force)")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(handler=_run_convert)


def _add_verify(subparsers) -> None:
    p = subparsers.add_parser("verify", help="compare the project's C simulation with the model, bit for bit",
                              description="Compile the project's C simulation (g++), run it and the Keras model on "
                                          "the same inputs and count differing output values; exits with status "
                                          "10 on any mismatch.")
    p.add_argument("model", help="the model the project was converted from (.keras)")
    p.add_argument("project_dir", help="the directory written by `hgq_chip convert` (C simulation, g++) or "
                                       "`hgq_chip rtl` (Verilator, one sample per clock, latency checked)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", metavar="X.npy|X.npz",
                        help="inputs, samples first: a .npy (np.save) for a one-input model, or an .npz with one "
                             "array per model input, keyed by input name (np.savez)")
    source.add_argument("--random", type=int, metavar="N",
                        help="N random samples over the calibrated input range widened --scale times")
    p.add_argument("--seed", type=int, default=0, help="random seed for --random (default: 0)")
    p.add_argument("--scale", type=float, default=4.0, metavar="K",
                   help="--random draws over the calibrated range made K times as wide (default: 4)")
    p.add_argument("--batch-size", type=int, default=VERIFY_BATCH, metavar="N",
                   help="samples run through Keras and the firmware at a time; memory holds one batch "
                        f"(default: {VERIFY_BATCH})")
    p.add_argument("--allow-large", action="store_true",
                   help="compile the C simulation even when it is predicted to take over an hour or more memory "
                        "than is available (refused otherwise, exit code 17)")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(handler=_run_verify)


def _exit_status_help() -> str:
    from .cli_runtime import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_TERMINATED, error_classes

    codes = ", ".join(f"{c.exit_code} {c.__name__}" for c in error_classes())
    return (f"Exit status: 0 success, 2 usage, {codes}, {EXIT_INTERRUPTED} Ctrl-C, {EXIT_TERMINATED} SIGTERM, "
            f"{EXIT_BROKEN_PIPE} closed "
            "output pipe; any other failure is a bug (1, 'internal error'; HGQ_CHIP_DEBUG=1 shows the "
            "traceback). See docs/errors.md.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hgq_chip",
        description="Train Keras models with learned bit-widths and turn them into bit-exact FPGA firmware.",
        epilog=_exit_status_help(),
    )
    parser.add_argument("--version", action="version", version=f"hgq_chip {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_convert(subparsers)
    _add_rtl(subparsers)
    _add_verify(subparsers)
    estimate_cli.add_estimate_command(subparsers)
    estimate_cli.add_synth_command(subparsers)
    add_import_qkeras_command(subparsers)
    add_report_command(subparsers)
    add_sweep_command(subparsers)
    return parser


def _needs_keras(args) -> bool:
    """Whether the command loads Keras (so TensorFlow is imported first, quietly); estimate DIR must not."""
    if args.command == "estimate":
        return not os.path.isdir(args.source)
    if args.command == "sweep":
        return False  # trials and fan-out run in Ray workers; the driver reads JSON only
    if args.command == "report":
        return args.pareto is not None  # the Pareto index format and its checkpoints' estimates
    return True


def main(argv=None) -> int:
    """Run one command; returns its exit code (see hgq_chip/errors.py and docs/errors.md)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0

    def run(args):
        if args.command in _BEFORE_KERAS:
            _BEFORE_KERAS[args.command](args)
        if _needs_keras(args):
            import_tensorflow_quietly(quiet=getattr(args, "quiet", False),
                                      any_backend=args.command in ("convert", "import-qkeras"))
        return args.handler(args)

    return run_command(run, args)


if __name__ == "__main__":
    sys.exit(main())
