"""What precision derivation produces for each Keras layer: the single source of types."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..fixed.format import ArrayFormat, FixedFormat
from ..fixed.interval import Interval
from ..fixed.modes import Overflow

# A zero-width tensor (constant 0) still needs a C++ type; this one-bit type holds 0.
ZERO_FORMAT = FixedFormat(0, 0, 1)

# Significand bits (implicit bit included) of the dtypes Keras may compute in: every integer
# of magnitude <= 2**bits is exact there, so a fixed-point value m * 2**-f (integer m) is exact
# while |m| <= 2**bits (ignoring exponent range, far beyond any fixed-point type here).
MANTISSA_BITS = {"float32": 24, "float64": 53}


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


@dataclass(frozen=True)
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
    # The dtype Keras computes this layer in, and every set of values it computes that a float
    # of that dtype must hold exactly (see ``FloatValues``); ``float_exactness_problems`` reads them.
    compute_dtype: str = "float32"
    float_values: list = field(default_factory=list)
    # For the resource estimate: the intervals of the layer's inputs (None for a raw model input)
    # and the per-element formats of its activation quantizers, by hls4ml stage name.
    inputs: list = field(default_factory=list)
    input_shapes: list = field(default_factory=list)
    quantizer_formats: dict[str, ArrayFormat] = field(default_factory=dict)
    # The layer's operations for the estimate, emitted by its rule (conversion/ops.py), after
    # the quantizer casts named in ``cast_stages``: {stage name: index of the input it casts}
    # (None: derive lists every quantizer stage of the layer, reading input 0; {}: the rule
    # emitted its casts itself, e.g. HMultiHeadAttention's).
    estimate_ops: list = field(default_factory=list)
    cast_stages: dict | None = None
    # Constant tables the rule derived, by name: handlers and RTL traces render these, never
    # recompute them. Arrays as the firmware holds them (e.g. an activation's ``lut``, HSoftmax's
    # ``exp_table``/``inv_table`` in raw-bit order) or by index value (``inputs``/``outputs`` of an
    # activation; HSoftmax's ``exp``/``inverse``: (index values in increasing order, entries)).
    tables: dict = field(default_factory=dict)


@dataclass(frozen=True)
class FloatValues:
    """Values Keras computes in a layer, by the significant bits they need.

    ``what`` names the tensor (e.g. "accumulator"). Every value, and every intermediate of the
    Keras ops producing it, is an integer code m times a power of two with |m| <= 2**bits. A
    float whose significand has M bits holds every integer of magnitude <= 2**M, so it holds
    all of them exactly iff ``bits <= M`` (``fits``); with ``bits = M + 1`` some code
    (2**M + 1, or 2**(M+1) - 1) is not representable.
    """

    what: str
    bits: int

    def fits(self, dtype: str) -> bool:
        return self.bits <= MANTISSA_BITS[dtype]


# Codes are bounded in float64: at or above 2**53 a bound may have been rounded down to 2**53.
_EXACT_BOUND = 2.0**53


def code_bits(max_code) -> int:
    """The smallest b with every code <= 2**b, from a bound on the codes' magnitude.

    ``max_code`` (an array; its maximum counts) is computed in float64: a true bound above
    2**53 never comes out below 2**53 (rounding is monotone), so a bound of 2**53 or more gives
    at least 54 bits and ``bits <= 53`` stays a sound test.
    """
    top = float(np.max(np.asarray(max_code, np.float64), initial=0.0))
    if not np.isfinite(top):
        return 10**6
    if top <= 1.0:
        return 0
    mantissa, exponent = np.frexp(top)  # top = mantissa * 2**exponent, mantissa in [0.5, 1)
    bits = int(exponent) - 1 if mantissa == 0.5 else int(exponent)
    return max(bits, 54) if top >= _EXACT_BOUND else bits


def sum_bits(term_magnitudes, f) -> int:
    """Bits of any partial sum of terms that are multiples of 2**-f with these magnitudes.

    Keras (a float matmul, convolution, pooling or Add) may add the terms in any order, and
    fused multiply-adds or blocked kernels add any subset first: every such partial sum, and
    every term, is a multiple of 2**-f of magnitude at most the sum of the magnitudes.
    ``term_magnitudes`` is that sum per output element (``f`` broadcasts against it).
    """
    codes = np.asarray(term_magnitudes, np.float64) * 2.0 ** np.asarray(f, np.float64)
    return code_bits(codes)


def interval_bits(interval: Interval) -> int:
    """Bits of the values of ``interval`` (each element on its own grid 2**-f)."""
    return sum_bits(np.maximum(np.abs(interval.lo), np.abs(interval.hi)), interval.f)


def quantizer_output_bits(fmt: ArrayFormat) -> int:
    """Bits ``hgq_chip.fixed.quantize_ops.quantize`` needs to compute casts into ``fmt`` exactly.

    With n = i + f magnitude bits, SAT and SAT_SYM clip the rounded code to 2**n - 1 (which
    must be exact: n bits) and -2**n or -(2**n - 1); WRAP reduces the code modulo 2**(k + n),
    whose remainders reach 2**(k + n) - 1: k + n bits. Rounding itself is exact for any float
    input (a float of magnitude >= 2**(M-1) is already an integer), and so is the final scaling
    by 2**-f. Zero-width elements always give 0.
    """
    live = fmt.width > 0
    if not np.any(live):
        return 0
    n = (fmt.i + fmt.f)[live]
    if fmt.overflow is Overflow.WRAP:
        n = n + fmt.k[live]
    return int(n.max())
