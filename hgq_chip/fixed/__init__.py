"""Fixed-point formats and the exact quantizer every part of hgq_chip agrees with."""

from .format import ArrayFormat, FixedFormat, parse_ap_type
from .hls import render_ap_type, render_hls4ml_precision
from .interval import Interval
from .minimal import bits_of_constant, fractional_bits, minimal_format, minimal_format_per_element
from .modes import Overflow, Rounding
from .quantize_np import quantize as quantize_np
from .quantize_np import quantize_to as quantize_to_np

__all__ = [
    "ArrayFormat",
    "FixedFormat",
    "Interval",
    "Overflow",
    "Rounding",
    "bits_of_constant",
    "fractional_bits",
    "minimal_format",
    "minimal_format_per_element",
    "parse_ap_type",
    "quantize_np",
    "quantize_to_np",
    "render_ap_type",
    "render_hls4ml_precision",
]
