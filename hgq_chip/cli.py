"""Command-line entry point: parses arguments, calls the API, maps typed errors to exit codes."""

from __future__ import annotations

import argparse
import sys

from ._version import __version__
from .errors import HGQChipError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hgq_chip",
        description="Train Keras models with learned bit-widths and turn them into bit-exact FPGA firmware.",
    )
    parser.add_argument("--version", action="version", version=f"hgq_chip {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except HGQChipError as error:
        print(f"hgq_chip: error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
