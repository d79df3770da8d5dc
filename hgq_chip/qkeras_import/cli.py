"""``hgq_chip import-qkeras MODEL.h5 OUT.keras``: the CLI face of :func:`hgq_chip.from_qkeras`."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

from ..atomic_write import write_atomically
from ..conversion.output_file import check_output_file
from ..errors import ModelFileError, UnsupportedConfigurationError
from .quantizer_formats import DEFAULT_INPUT_F

GRANULARITIES = "per-element|per-channel|per-layer"


def _run_import(args) -> int:
    from ..cost import ebops_per_layer
    from . import from_qkeras

    x = args.checked_data if hasattr(args, "checked_data") else _check_arguments(args)
    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    model = from_qkeras(args.model, x=x, input_f=args.input_f, granularity=args.granularity, log=log)
    write_atomically(args.output, model.save, suffix=".keras")
    per_layer = ebops_per_layer(model)
    for name, value in per_layer.items():
        print(f"{name:<24}{value:>10} EBOPs")
    print(f"{'total':<24}{sum(per_layer.values()):>10} EBOPs")
    print(f"saved {args.output}")
    return 0


def check_before_keras(args) -> None:
    """The argument checks of :func:`_check_arguments`, run by the CLI before TensorFlow is imported."""
    args.checked_data = _check_arguments(args)


def _check_arguments(args):
    """Every check that needs no QKeras, before the child process starts; returns the --data array or None."""
    source, output = Path(args.model), Path(args.output)
    if not source.is_file():
        raise ModelFileError(f"QKeras model {args.model!r} not found; pass the .h5 file written by model.save")
    if not args.output.endswith(".keras"):
        raise UnsupportedConfigurationError(f"{args.output}: name the output NAME.keras (the Keras 3 format)")
    check_output_file(output, reads=[source] + ([Path(args.data)] if args.data else []), replace=args.force,
                      is_ours=zipfile.is_zipfile, what="import-qkeras output",
                      not_ours_hint="it is not a Keras archive; choose another name")
    if args.data is None:
        return None
    from ..errors import DataError
    from ..input_data import check_array, read_array_file

    x = read_array_file(args.data, "--data")
    if isinstance(x, dict):
        if len(x) != 1:
            raise DataError(f"--data {args.data!r} holds {len(x)} arrays ({sorted(x)}); pass one array (.npy)")
        x = next(iter(x.values()))
    return check_array(x, "x", None, "--data")


def add_import_qkeras_command(subparsers) -> None:
    p = subparsers.add_parser(
        "import-qkeras", help="turn a saved QKeras model (.h5) into an hgq_chip model (.keras)",
        description="Read a QKeras model (in a child Python with Keras 2; needs the `qkeras` extra) and "
                    "write the equivalent hgq_chip model: QKeras' quantized weights, per-weight bit-widths "
                    "starting at the QKeras quantizers', activation formats and ranges as in QKeras, ready to "
                    "fine-tune or convert.",
    )
    p.add_argument("model", help="the QKeras model, saved with model.save('name.h5')")
    p.add_argument("output", help="where to write the hgq_chip model (.keras)")
    p.add_argument("--data", metavar="X.npy",
                   help="representative inputs; needed only if the QKeras input is not quantized")
    p.add_argument("--input-f", type=int, default=DEFAULT_INPUT_F, metavar="N",
                   help=f"fractional bits for an unquantized QKeras input (default: {DEFAULT_INPUT_F})")
    p.add_argument("--granularity", default="per-element", metavar=GRANULARITIES,
                   help="granularity of the activation bit-widths (default: per-element)")
    p.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(handler=_run_import)
