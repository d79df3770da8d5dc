"""Test inputs for a fixed-point format: ties, edges, wrap periods, far outside (float32).

Shared by the three-way grid (test_fixed_exact.py) and the quantizer layers' check against
it (test_quantizer_layer_exact.py). The Keras op's float32 domain: abs(x) * 2**f < 2**128, and
nonzero abs(x) and abs(x) * 2**f normal floats (TensorFlow flushes subnormals to zero).
"""

from __future__ import annotations

import numpy as np

SMALLEST_NORMAL = 2.0**-126


def in_keras_domain(x: np.ndarray, f) -> np.ndarray:
    """Where the float32 Keras op is meant to be exact (see the module docstring)."""
    a = np.abs(np.asarray(x, np.float64))
    scaled = a * 2.0 ** np.asarray(f, np.float64)
    normal = (a >= SMALLEST_NORMAL) & (scaled >= SMALLEST_NORMAL) & (scaled < 2.0**128)
    return np.isfinite(a) & ((a == 0) | normal)


def to_float32(x) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.asarray(x, np.float64).astype(np.float32)


def exact_in_float32(x: np.ndarray) -> np.ndarray:
    """The elements of float64 ``x`` that float32 holds exactly (ties must stay ties)."""
    x = np.asarray(x, np.float64)
    return x[to_float32(x).astype(np.float64) == x]


def format_values(k: int, i: int, f: int, rng: np.random.Generator) -> np.ndarray:
    """float32 test inputs for the formats (k, i, f, *): ties, edges, a dense grid, far outside."""
    s = 2.0**-f
    lo = -k * 2.0**i  # the SAT minimum; SAT_SYM's is -hi
    hi = (2.0 ** (i + f) - 1) * s
    period = 2.0 ** (i + k)  # WRAP's period in value units
    parts = []

    # Exactly at the edges, one step beyond, and fractions of a step around them.
    anchors = np.array([0.0, lo, hi, -hi, period, -period, period / 2, -period / 2, 2 * period, -2 * period])
    offsets = np.array([-2, -1.5, -1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75, 1, 1.5, 2]) * s
    parts.append(exact_in_float32((anchors[:, None] + offsets[None, :]).ravel()))

    # Ties (odd multiples of s/2): every code of small formats, edges/zero/random codes of big ones.
    j_lo, j_hi = round(lo / s), round(hi / s)
    codes = j_hi - j_lo + 1
    if codes <= 512:
        j = np.arange(j_lo - 4, j_hi + 5)
    else:
        j = np.concatenate(
            [
                np.arange(j_lo - 4, j_lo + 60),
                np.arange(j_hi - 60, j_hi + 5),
                np.arange(-32, 33),
                rng.integers(j_lo - codes // 4, j_hi + codes // 4, 400),
            ]
        )
    parts.append(exact_in_float32((j + 0.5) * s))
    # Ties shifted by whole wrap periods, as far out as float32 keeps them ties.
    q_max = 2 ** max(0, 22 - (f + i + k))
    far_ties = (rng.integers(j_lo, j_hi + 1, 300) + 0.5) * s + rng.integers(-q_max, q_max + 1, 300) * period
    parts.append(exact_in_float32(far_ties))

    # A dense grid of s/8 multiples over three times the range, and random values near it.
    span = hi - lo + s
    parts.append(np.round(np.linspace(lo - span, hi + span, 700) / (s / 8)) * (s / 8))
    parts.append(rng.uniform(lo - 4 * s, hi + 4 * s, 200))

    # Far outside: +-2**(i+8), +-1000*max, random large magnitudes up to float32's limit.
    big = max(hi, s)
    parts.append(
        np.array([2.0 ** (i + 8), -(2.0 ** (i + 8)), 1000 * big, -1000 * big, 1000 * big + s / 2, -1000 * big - s / 2])
    )
    e_max = 127 - max(f, 0)
    sign = rng.choice([-1.0, 1.0], 200)
    parts.append(sign * rng.uniform(1, 2, 200) * 2.0 ** rng.integers(i + 1, e_max, 200))
    # Huge values whose scaled ulp is half, one, two and four wrap spans (rounding traps).
    for shift in (-1, 0, 1, 2):
        mantissa = rng.integers(2**23, 2**24, 8)
        mantissa[:4] |= 1  # odd mantissas are the ones that used to wrap to -span
        sign = rng.choice([-1.0, 1.0], 8)
        parts.append(sign * mantissa * 2.0 ** (i + shift))

    # Tiny but normal (even after scaling by 2**f).
    parts.append(np.array([2.0**-100, -(2.0**-100), 3 * 2.0**-90, -3 * 2.0**-90, 1e-30, -1e-30]))

    x = to_float32(np.concatenate(parts))
    x = x[in_keras_domain(x, f)]
    return np.unique(x)
