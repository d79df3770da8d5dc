"""What precision derivation produces for each Keras layer: the single source of types."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..fixed.format import ArrayFormat, FixedFormat
from ..fixed.interval import Interval

# A zero-width tensor (constant 0) still needs a C++ type; this one-bit type holds 0.
ZERO_FORMAT = FixedFormat(0, 0, 1)

# Keras computes in float32: sums are exact while they stay within its 24-bit mantissa.
FLOAT32_MANTISSA_BITS = 24


def format_of(interval: Interval, rounding="TRN", overflow="WRAP") -> FixedFormat:
    """The narrowest single type holding every value of ``interval`` (all elements)."""
    fmt = interval.covering().to_format(rounding, overflow)[()]
    return fmt if fmt.width > 0 else ZERO_FORMAT.with_modes(rounding, overflow)


def is_uniform(fmt: ArrayFormat) -> bool:
    return all(np.unique(a).size <= 1 for a in (fmt.k, fmt.i, fmt.f))


def quantizer_needs_mask(fmt: ArrayFormat) -> bool:
    """Per-element formats (or constant-zero elements) need hls4ml's FixedPointQuantizer;
    a single nonzero format is a plain cast into a type carrying the quantizer's modes."""
    return not is_uniform(fmt) or bool(np.any(fmt.width == 0))


@dataclass
class WeightTable:
    """One weight tensor as the firmware holds it: quantized values and per-weight formats."""

    values: np.ndarray
    formats: ArrayFormat

    @property
    def pruned(self) -> np.ndarray:
        return self.values == 0


@dataclass
class HLSLayerTypes:
    """Explicit hls4ml precisions for one hls4ml layer (keys: result, weight, bias, accum, table)."""

    name: str
    types: dict[str, FixedFormat]


@dataclass
class LayerRecord:
    layer_name: str
    layer_class: str
    output: Interval
    hls_layers: list[HLSLayerTypes] = field(default_factory=list)
    weights: dict[str, WeightTable] = field(default_factory=dict)
    ebops: int = 0
    accum: FixedFormat | None = None
    float32_exact: bool = True
    # For the resource estimate: the intervals of the layer's inputs (None for a raw model input)
    # and the per-element formats of its activation quantizers, by hls4ml stage name.
    inputs: list = field(default_factory=list)
    input_shapes: list = field(default_factory=list)
    quantizer_formats: dict[str, ArrayFormat] = field(default_factory=dict)
    # Layers on our own templates describe their arithmetic for the estimate directly
    # (operation dicts of hgq_chip.estimation; empty: the estimate reads the kernel).
    estimate_ops: list = field(default_factory=list)


def float32_exact_sum(term_magnitudes: np.ndarray, f: int) -> bool:
    """Whether float32 accumulates terms of these magnitudes (multiples of 2**-f) exactly."""
    bound = float(np.max(term_magnitudes, initial=0.0))
    return bound * 2.0**f < 2.0**FLOAT32_MANTISSA_BITS
