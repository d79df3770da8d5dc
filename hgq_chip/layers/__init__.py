"""Keras layers with trainable bit-widths (names are the public API)."""

from .dense import HDense
from .quantize import HQuantize

__all__ = ["HDense", "HQuantize"]
