"""``hgq_chip import-qkeras MODEL.h5 OUT.keras``: the CLI face of :func:`hgq_chip.from_qkeras`."""

from __future__ import annotations

import sys
import zipfile

from ..conversion.output_file import check_output_file, write_atomically
from ..errors import UnsupportedConfigurationError
from .quantizer_formats import DEFAULT_INPUT_F

GRANULARITIES = "per-element|per-channel|per-layer"


def _run_import(args) -> int:
    import numpy as np

    from ..cost import ebops_per_layer
    from . import from_qkeras

    if not args.output.endswith(".keras"):
        raise UnsupportedConfigurationError(f"{args.output}: name the output NAME.keras (the Keras 3 format)")
    check_output_file(args.output, reads=[args.model, args.data], replace=args.force, is_ours=zipfile.is_zipfile,
                      what="import-qkeras output", not_ours_hint="it is not a Keras archive; choose another name")
    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    x = np.load(args.data, allow_pickle=False) if args.data else None
    model = from_qkeras(args.model, x=x, input_f=args.input_f, granularity=args.granularity, log=log)
    write_atomically(args.output, model.save, suffix=".keras")
    per_layer = ebops_per_layer(model)
    for name, value in per_layer.items():
        print(f"{name:<24}{value:>10} EBOPs")
    print(f"{'total':<24}{sum(per_layer.values()):>10} EBOPs")
    print(f"saved {args.output}")
    return 0


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
