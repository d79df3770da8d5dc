"""Conversion to hls4ml firmware: precision derivation, handlers, project writing, verification."""

from .project import Conversion, convert
from .verify import VerifyReport, verify

__all__ = ["Conversion", "VerifyReport", "convert", "verify"]
