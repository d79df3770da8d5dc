"""One fixed-point cast on da4ml's symbolic arrays, with every rounding mode ap_fixed has, and a
table read (leaf helpers of the families' RTL traces, re-exported by ``_trace.py``).

da4ml's ``quantize`` rounds by TRN (floor) or RND (half up) only; a quantizer with
``RND_CONV`` (ties to even, ap_fixed's AP_RND_CONV) is built here from TRN: with ``_f`` the
input's fractional bits and ``f < _f`` the target's, ``b`` the bit of weight 2**-f of ``x``,

    RND_CONV(x) = TRN(x + 2**-(f+1) - 2**-_f + b * 2**-_f)

(scaled by 2**f, fraction r of x: r < 1/2 stays, r > 1/2 goes up, r = 1/2 goes up iff b = 1,
i.e. iff the floor is odd). Saturation then acts on the rounded value, as in ap_fixed.
"""

from __future__ import annotations

import numpy as np

from ...fixed.modes import Rounding


def cast(x, fmt, shape=None):
    """``x`` (a da4ml FixedVariableArray) cast into ``fmt`` (FixedFormat or ArrayFormat,
    broadcast to ``shape``, default ``x.shape``) with its rounding and overflow modes, exactly as
    ap_fixed (and :func:`hgq_chip.fixed.quantize_ops.quantize`) casts. Zero-width elements give 0."""
    shape = tuple(x.shape) if shape is None else tuple(shape)
    k, i, f = (np.broadcast_to(np.asarray(getattr(fmt, a), np.int64), shape) for a in "kif")
    rounding, overflow = Rounding.parse(fmt.rounding), fmt.overflow.value
    one_bit = (k == 1) & (i + f == 0)
    if overflow == "SAT_SYM" and one_bit.any():
        # ap_fixed's AP_SAT_SYM cannot drop the only negative code of a 1-bit signed type: it acts as
        # AP_SAT there (hgq_chip.fixed.quantize_np); da4ml would clip to [0, 0].
        symmetric = _cast(x, k, i, f, rounding, "SAT_SYM", shape)
        plain = _cast(x, k, i, f, rounding, "SAT", shape)
        both = np.concatenate([np.ravel(symmetric), np.ravel(plain)])
        return both[np.arange(one_bit.size) + one_bit.size * one_bit.ravel()].reshape(shape)
    return _cast(x, k, i, f, rounding, overflow, shape)


def _cast(x, k, i, f, rounding, overflow: str, shape):
    if rounding is not Rounding.RND_CONV:
        return x.quantize(k, i, f, overflow_mode=overflow, round_mode=rounding.value)
    _f = np.broadcast_to(np.asarray(x.kif[2], np.int64), shape)
    rounds = (f < _f) & (k + i + f > 0)
    if not rounds.any():
        return x.quantize(k, i, f, overflow_mode=overflow, round_mode="TRN")
    bit = x.quantize(np.zeros(shape, np.int64), 1 - f, f, overflow_mode="WRAP", round_mode="TRN")  # b * 2**-f
    offset = np.where(rounds, 2.0 ** (-f - 1) - 2.0 ** (-_f.astype(np.float64)), 0.0)
    scale = np.where(rounds, 2.0 ** (f - _f).astype(np.float64), 0.0)
    return (x + offset + bit * scale).quantize(k, i, f, overflow_mode=overflow, round_mode="TRN")


def lookup(x, values, entries, fmt):
    """A table read by every element of ``x``: the entry at the index value each element holds
    (``values``: the table's index values, ``entries``: what it holds there), typed ``fmt`` (a
    FixedFormat holding every entry). An index value the table lacks (da4ml's range of an element
    can be wider than the values it ever takes) reads 0."""
    step = min(float(np.min(np.diff(values))), 1.0) if len(values) > 1 else 1.0
    by_code = {round(v / step): float(e) for v, e in zip(np.asarray(values, np.float64), np.asarray(entries))}

    def read(points):
        points = np.asarray(points, np.float64)
        codes = np.rint(points / step).astype(np.int64).ravel()
        return np.array([by_code.get(int(c), 0.0) for c in codes]).reshape(points.shape)

    return x.apply(read).quantize(fmt.k, fmt.i, fmt.f)
