"""Test helpers that check hgq_chip's arithmetic against the real ap_fixed types."""

from .ap_harness import (
    ApHarness,
    ap_cast,
    ap_cast_many,
    ap_types_include_dir,
    build_harness,
    default_formats,
    get_harness,
)

__all__ = [
    "ApHarness",
    "ap_cast",
    "ap_cast_many",
    "ap_types_include_dir",
    "build_harness",
    "default_formats",
    "get_harness",
]
