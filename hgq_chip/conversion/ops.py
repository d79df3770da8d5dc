"""The estimate's operations as the families emit them (a leaf: numpy and ``fixed/`` only).

An operation describes one step of a layer's firmware for ``hgq_chip.estimate``: formats are
k/i/f arrays in bits shaped like the tensor they type (no batch axis). Rules build them with
the constructors here; ``facts.py`` stores them in ``estimate_inputs.json`` and
``estimation/ops.op_cost`` prices them.
"""

from __future__ import annotations

import numpy as np

from ..fixed.format import ArrayFormat
from ..fixed.interval import Interval


def kif(fmt: ArrayFormat, shape) -> dict:
    """The k/i/f arrays of ``fmt`` broadcast to ``shape`` (int64)."""
    return {key: np.broadcast_to(getattr(fmt, key), shape).astype(np.int64) for key in "kif"}


def interval_kif(interval: Interval) -> dict:
    """The k/i/f arrays of the narrowest formats holding ``interval`` (an operation's ``out``)."""
    fmt = interval.to_format()
    return {"k": fmt.k, "i": fmt.i, "f": fmt.f}


_interval_kif = interval_kif


def covering_rows(kif_arrays: dict, channels: int) -> dict:
    """Per input channel (the trailing ``channels`` elements: the last axis, or the flattened
    contracted axes of an HEinsumDense), the widest format over the other axes (positions)."""
    k, i, f = (np.asarray(kif_arrays[key]).reshape(-1, channels) for key in "kif")
    live = (k + i + f) > 0
    low = np.iinfo(np.int64).min
    cover_k = np.where(live, k, 0).max(axis=0)
    cover_i = np.where(live, i, low).max(axis=0)
    cover_f = np.where(live, f, low).max(axis=0)
    dead = ~live.any(axis=0)
    return {"k": np.where(dead, 0, cover_k), "i": np.where(dead, 0, cover_i), "f": np.where(dead, 0, cover_f)}


def cast_op(stage: str, source: Interval, fmt: ArrayFormat, shape) -> dict:
    """A ``cast`` operation: quantizer stage ``stage`` casting values in ``source`` to ``fmt``."""
    source = source.broadcast_to(shape)
    return {"op": "cast", "stage": stage, "in_lo": source.lo, "in_hi": source.hi, "in_f": source.f,
            "out": kif(fmt, shape), "rounding": fmt.rounding.value, "overflow": fmt.overflow.value}


def cmvm_op(kernel, bias, in_kif: dict, positions: int) -> dict:
    """A ``cmvm`` operation: ``kernel`` (``(*taps, channels, outputs)``) applied at ``positions``
    output positions to inputs typed ``in_kif`` (the cast's output; rows: per channel, the widest
    format over the positions), plus ``bias`` (None: zeros)."""
    kernel = np.asarray(kernel, np.float64)
    channels = kernel.shape[-2]
    rows = covering_rows(in_kif, channels)
    taps = kernel.reshape(-1, kernel.shape[-1])  # (taps * channels, outputs)
    n_taps = taps.shape[0] // channels
    row_kif = {key: np.tile(rows[key], n_taps) for key in "kif"}
    bias = np.zeros(kernel.shape[-1]) if bias is None else bias
    return {"op": "cmvm", "kernel": taps, "rows": row_kif, "positions": int(positions),
            "bias": np.asarray(bias, np.float64)}
