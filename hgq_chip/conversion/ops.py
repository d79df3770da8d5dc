"""The estimate's operations as the families emit them (a leaf: numpy and ``fixed/`` only).

An operation describes one step of a layer's firmware for ``hgq_chip.estimate``: formats are
k/i/f arrays in bits shaped like the tensor they type (no batch axis). Each family's rule emits
its layer's operations into ``LayerRecord.estimate_ops`` with the constructors here (the quantizer
casts it lists in ``LayerRecord.cast_stages`` are added by ``facts.py``, which knows the model
inputs' types); ``facts.py`` stores them in ``estimate_inputs.json`` and ``estimation/ops.op_cost``
prices them, one cost function per kind in :data:`KINDS`.
"""

from __future__ import annotations

import numpy as np

from ..fixed.format import ArrayFormat
from ..fixed.interval import Interval

# Every operation kind and its fields besides ``op`` (``estimation/ops.COSTS`` prices each kind;
# tests/test_registries.py checks both tables and that every emitted operation has these fields).
KINDS = {
    "cast": ("stage", "in_lo", "in_hi", "in_f", "out", "rounding", "overflow"),
    "cmvm": ("kernel", "rows", "positions", "bias"),
    "relu": ("out",),
    "table": ("index_width", "out_width", "elements"),
    "maxpool": ("out", "window"),
    "avgpool": ("out", "window"),
    "add": ("out", "n_inputs"),
    "minmax": ("out", "n_inputs"),
    "product": ("a_width", "b_width", "out"),
}


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


def relu_op(output: Interval) -> dict:
    """A ``relu`` on values whose result is ``output``."""
    return {"op": "relu", "out": interval_kif(output)}


def table_op(index_width: int, out_width: int, elements: int) -> dict:
    """A ``table`` read by ``elements`` values: 2**index_width entries of out_width bits."""
    return {"op": "table", "index_width": int(index_width), "out_width": int(out_width), "elements": int(elements)}


def pool_op(kind: str, output: Interval, window: int) -> dict:
    """A ``maxpool`` or ``avgpool`` (windowed or global) of ``window`` values per output."""
    return {"op": kind, "out": interval_kif(output), "window": max(1, int(window))}


def add_op(output: Interval, n_inputs: int) -> dict:
    """An elementwise sum (or difference) of ``n_inputs`` tensors: n - 1 adders per element."""
    return {"op": "add", "out": interval_kif(output), "n_inputs": int(n_inputs)}


def minmax_op(output: Interval, n_inputs: int) -> dict:
    """An elementwise maximum or minimum of ``n_inputs`` tensors."""
    return {"op": "minmax", "out": interval_kif(output), "n_inputs": int(n_inputs)}


def widths(kif_arrays: dict) -> np.ndarray:
    """Bits per element (k + i + f, at least 0) of a k/i/f dict."""
    return np.maximum(np.asarray(kif_arrays["k"]) + np.asarray(kif_arrays["i"]) + np.asarray(kif_arrays["f"]), 0)


def product_ops(factor_widths: list, output: Interval) -> list[dict]:
    """Elementwise products of variables: per element, the running product (its width the sum of
    its factors' widths, the full-precision ap_fixed product) times the next factor."""
    shape = output.lo.shape
    factor_widths = [np.broadcast_to(width, shape) for width in factor_widths]
    running, ops = factor_widths[0], []
    for width in factor_widths[1:]:
        ops.append({"op": "product", "a_width": np.array(running), "b_width": np.array(width),
                    "out": interval_kif(output)})
        running = np.where((running > 0) & (width > 0), running + width, 0)
    return ops
