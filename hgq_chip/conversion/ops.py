"""The estimate's operations as the families emit them: typed values (a leaf: numpy and ``fixed/`` only).

An operation describes one step of a layer's firmware for ``hgq_chip.estimate``: formats are
k/i/f arrays in bits shaped like the tensor they type (no batch axis). Each family's rule emits
its layer's operations into ``LayerRecord.estimate_ops`` as instances of the classes here (the
quantizer casts it lists in ``LayerRecord.cast_stages`` are added by ``facts.py``, which knows
the model inputs' types); ``facts.py`` stores them in ``estimate_inputs.json``
(:meth:`Op.to_json` / :func:`op_from_json`) and ``estimation/ops.COSTS`` prices each class
(``tests/test_registries.py`` checks that every class of :data:`OPERATIONS` has a cost and is emitted).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np

from ..fixed.format import ArrayFormat
from ..fixed.interval import Interval


@dataclass(frozen=True, eq=False, kw_only=True)
class Op:
    """One operation. ``reads_previous`` False: inside a layer of several branches (attention),
    this operation does not read the operation listed before it (liveness knows nothing of that
    one's used outputs)."""

    kind: ClassVar[str] = ""
    reads_previous: bool = True

    def to_json(self) -> dict:
        """``{"op": kind, field: value...}`` (arrays stay arrays: ``facts.py`` encodes them)."""
        return {"op": self.kind, **{f.name: getattr(self, f.name) for f in fields(self)}}

    def output_size(self) -> int:
        """Elements of the operation's output tensor."""
        return int(np.size(self.out["k"]))


@dataclass(frozen=True, eq=False, kw_only=True)
class Cast(Op):
    """Quantizer stage ``stage`` casting values in [in_lo, in_hi] (step 2**-in_f) to ``out``
    (k/i/f arrays) with the quantizer's ``rounding``/``overflow`` modes (their ``.value``)."""

    kind: ClassVar[str] = "cast"
    stage: str
    in_lo: object
    in_hi: object
    in_f: object
    out: dict
    rounding: str
    overflow: str


@dataclass(frozen=True, eq=False, kw_only=True)
class CMVM(Op):
    """Constant matrix-vector products: ``kernel`` ``(rows, outputs)`` applied at ``positions``
    output positions to inputs typed ``rows`` (k/i/f per row), plus ``bias`` (``(outputs,)``).
    ``latency_only``: the firmware builds the products digit by digit whatever the strategy
    (our own ASQ/POST template; hls4ml's DepthwiseConv, whose DA generator takes Dense/Conv only)."""

    kind: ClassVar[str] = "cmvm"
    kernel: np.ndarray
    rows: dict
    positions: int
    bias: np.ndarray
    latency_only: bool = False

    def output_size(self) -> int:
        return int(self.positions) * int(np.shape(self.kernel)[1])


@dataclass(frozen=True, eq=False, kw_only=True)
class Relu(Op):
    """max(x, 0) with result ``out``."""

    kind: ClassVar[str] = "relu"
    out: dict


@dataclass(frozen=True, eq=False, kw_only=True)
class Table(Op):
    """A table read by ``elements`` values: 2**index_width entries of out_width bits."""

    kind: ClassVar[str] = "table"
    index_width: int
    out_width: int
    elements: int

    def output_size(self) -> int:
        return int(self.elements)


@dataclass(frozen=True, eq=False, kw_only=True)
class MaxPool(Op):
    """The maximum of ``window`` values per output element ``out`` (windowed or global)."""

    kind: ClassVar[str] = "maxpool"
    out: dict
    window: int


@dataclass(frozen=True, eq=False, kw_only=True)
class AvgPool(Op):
    """The average of ``window`` values per output element ``out`` (windowed or global)."""

    kind: ClassVar[str] = "avgpool"
    out: dict
    window: int


@dataclass(frozen=True, eq=False, kw_only=True)
class Add(Op):
    """An elementwise sum (or difference) of ``n_inputs`` tensors: n - 1 adders per element."""

    kind: ClassVar[str] = "add"
    out: dict
    n_inputs: int


@dataclass(frozen=True, eq=False, kw_only=True)
class MinMax(Op):
    """An elementwise maximum or minimum of ``n_inputs`` tensors."""

    kind: ClassVar[str] = "minmax"
    out: dict
    n_inputs: int


@dataclass(frozen=True, eq=False, kw_only=True)
class Product(Op):
    """Products of two variable operands of ``a_width`` and ``b_width`` bits (one width, or one
    per element of ``out``)."""

    kind: ClassVar[str] = "product"
    a_width: object
    b_width: object
    out: dict


# Every operation class, by its JSON kind (``estimation/ops.COSTS`` prices each class).
OPERATIONS: dict[str, type] = {cls.kind: cls for cls in (Cast, CMVM, Relu, Table, MaxPool, AvgPool, Add, MinMax,
                                                         Product)}


def op_from_json(payload: dict) -> Op:
    """The operation :meth:`Op.to_json` wrote (arrays already decoded). KeyError for an unknown
    kind, TypeError for missing or unknown fields."""
    cls = OPERATIONS[payload["op"]]
    return cls(**{key: value for key, value in payload.items() if key != "op"})


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


def cast_op(stage: str, source: Interval, fmt: ArrayFormat, shape) -> Cast:
    """A ``cast`` operation: quantizer stage ``stage`` casting values in ``source`` to ``fmt``."""
    source = source.broadcast_to(shape)
    return Cast(stage=stage, in_lo=source.lo, in_hi=source.hi, in_f=source.f, out=kif(fmt, shape),
                rounding=fmt.rounding.value, overflow=fmt.overflow.value)


def cmvm_op(kernel, bias, in_kif: dict, positions: int, latency_only: bool = False) -> CMVM:
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
    return CMVM(kernel=taps, rows=row_kif, positions=int(positions), bias=np.asarray(bias, np.float64),
                latency_only=latency_only)


def relu_op(output: Interval) -> Relu:
    """A ``relu`` on values whose result is ``output``."""
    return Relu(out=interval_kif(output))


def table_op(index_width: int, out_width: int, elements: int) -> Table:
    """A ``table`` read by ``elements`` values: 2**index_width entries of out_width bits."""
    return Table(index_width=int(index_width), out_width=int(out_width), elements=int(elements))


def pool_op(cls: type, output: Interval, window: int) -> Op:
    """A :class:`MaxPool` or :class:`AvgPool` (``cls``; windowed or global) of ``window`` values per output."""
    return cls(out=interval_kif(output), window=max(1, int(window)))


def add_op(output: Interval, n_inputs: int) -> Add:
    """An elementwise sum (or difference) of ``n_inputs`` tensors: n - 1 adders per element."""
    return Add(out=interval_kif(output), n_inputs=int(n_inputs))


def minmax_op(output: Interval, n_inputs: int) -> MinMax:
    """An elementwise maximum or minimum of ``n_inputs`` tensors."""
    return MinMax(out=interval_kif(output), n_inputs=int(n_inputs))


def widths(kif_arrays: dict) -> np.ndarray:
    """Bits per element (k + i + f, at least 0) of a k/i/f dict."""
    return np.maximum(np.asarray(kif_arrays["k"]) + np.asarray(kif_arrays["i"]) + np.asarray(kif_arrays["f"]), 0)


def product_ops(factor_widths: list, output: Interval) -> list[Product]:
    """Elementwise products of variables: per element, the running product (its width the sum of
    its factors' widths, the full-precision ap_fixed product) times the next factor."""
    shape = output.lo.shape
    factor_widths = [np.broadcast_to(width, shape) for width in factor_widths]
    running, ops = factor_widths[0], []
    for width in factor_widths[1:]:
        ops.append(Product(a_width=np.array(running), b_width=np.array(width), out=interval_kif(output)))
        running = np.where((running > 0) & (width > 0), running + width, 0)
    return ops
