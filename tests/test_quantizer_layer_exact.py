"""The fourth column of the three-way grid: each activation quantizer layer's inference call.

test_fixed_exact.py proves NumPy reference == ``fixed.quantize_ops.quantize`` == ap_fixed C++
on ties, edges, wrap periods and far-outside values of every grid format. Here an
``ActivationQuantizer`` (per-element: one element per grid format, its f and recorded range
set so that its format is exactly that one) quantizes the same values in inference mode; its
output must equal the NumPy reference bit for bit (np.array_equal), so the layer inherits
the grid's proof. The formats really are the grid's: the test checks ``fixed_format()`` first.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from grid_values import format_values
from hgq_chip.fixed import FixedFormat
from hgq_chip.fixed.quantize_np import quantize as quantize_np
from hgq_chip.quantizers import ActivationQuantizer
from hgq_chip.testing.ap_harness_source import MODE_COMBINATIONS, default_formats

pytestmark = pytest.mark.keras_level  # also run under JAX in CI (docs/backends.md, "Backends in CI")

KIF = sorted({(fmt.k, fmt.i, fmt.f) for fmt in default_formats()})
MODE_IDS = [f"{r.value}-{o.value}" for r, o in MODE_COMBINATIONS]


def quantizer_with_formats(formats: list[FixedFormat], rounding, overflow) -> ActivationQuantizer:
    """A per-element quantizer over ``len(formats)`` features whose element j has format j."""
    q = ActivationQuantizer("per-element", init_f=0.0, rounding=rounding.value, overflow=overflow.value)
    q.build((None, len(formats)))
    q.f.assign(np.array([fmt.f for fmt in formats], np.float32))
    # The extreme values of each format: calibration would record exactly these as the range.
    q.range_lo.assign(np.array([fmt.min if fmt.k else 0.0 for fmt in formats], np.float32))
    q.range_hi.assign(np.array([fmt.max for fmt in formats], np.float32))
    q.range_seen.assign(1.0)
    return q


def grid_columns(formats: list[FixedFormat]) -> np.ndarray:
    """(values, features) float32: column j holds format j's grid inputs (cycled to equal length)."""
    columns = [format_values(fmt.k, fmt.i, fmt.f, np.random.default_rng([fmt.k, fmt.i + 16, fmt.f + 16]))
               for fmt in formats]
    rows = max(c.size for c in columns)
    return np.stack([np.resize(c, rows) for c in columns], axis=1).astype(np.float32)


@pytest.mark.parametrize("mode", MODE_COMBINATIONS, ids=MODE_IDS)
def test_activation_quantizer_inference_equals_the_grid_reference(mode):
    rounding, overflow = mode
    formats = [FixedFormat(k, i, f, rounding, overflow) for k, i, f in KIF]
    q = quantizer_with_formats(formats, rounding, overflow)
    got_format = q.fixed_format()
    assert np.array_equal(got_format.k, [fmt.k for fmt in formats])
    assert np.array_equal(got_format.i, [fmt.i for fmt in formats])
    assert np.array_equal(got_format.f, [fmt.f for fmt in formats])

    x = grid_columns(formats)
    assert x.size >= 100_000
    layer_out = keras.ops.convert_to_numpy(q(x, training=False))
    reference = quantize_np(x, got_format.k, got_format.i, got_format.f, rounding, overflow)
    bad = layer_out != reference
    if bad.any():
        row, col = np.argwhere(bad)[0]
        pytest.fail(f"{bad.sum()} of {bad.size} differ; first: x = {float(x[row, col])!r} in {formats[col]}: "
                    f"layer {float(layer_out[row, col])!r}, reference {float(reference[row, col])!r}", pytrace=False)
    assert np.array_equal(layer_out, q.quantize_np(x))
