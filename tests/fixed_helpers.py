"""Helpers shared by the fixed-point format tests."""

from __future__ import annotations

import numpy as np

from hgq_chip.fixed import FixedFormat, quantize_np


def q(values, fmt: FixedFormat) -> np.ndarray:
    return quantize_np(values, fmt.k, fmt.i, fmt.f, fmt.rounding, fmt.overflow)


def representable(values, k, i, f) -> bool:
    """Whether every value is exactly a (k, i, f) number (invalid formats hold nothing)."""
    if k + i + f < 0:
        return False
    values = np.asarray(values, np.float64)
    return bool(np.array_equal(quantize_np(values, k, i, f, "TRN", "WRAP"), values))


def all_values(fmt: FixedFormat) -> np.ndarray:
    """Every number of a (small) format, from its minimum to its maximum."""
    return np.arange(round(fmt.min / fmt.step), round(fmt.max / fmt.step) + 1) * fmt.step
