"""Resource operations of the ASQ/POST firmware (``firmware_templates/nnet_asq_post.h``).

These layers run our own template, not hls4ml's dense/conv strategies, so the converter
describes their arithmetic directly, as operations the generic costs of ``estimation/ops.py`` price:

- ``cast`` of x (·1/β for ASQ) to the b-bit input codes (rounding and saturation);
- POT/POST: a ``cmvm`` whose rows are the codes m and, for POST, the shared products x·c,
  and whose entries are ±2**-s (one shifted term per live weight), plus a ``cmvm`` of the
  constant c for every input element that needs x·c; LSQ: a ``cmvm`` of the integer units;
- ASQ: the summary sum and the adapter (``cmvm``), the 1/β ``table`` and two ``product``
  ops of variable operands (x·r per input element, acc·β per output element).

Plain NumPy in, typed operations (``ops.py``) out: the estimate reads them back from JSON without Keras.
"""

from __future__ import annotations

import numpy as np

from ..fixed.format import FixedFormat
from ..fixed.interval import Interval
from .ops import CMVM, Cast, Op, Product, Relu, Table


def _kif(fmt: FixedFormat, count: int) -> dict:
    return {key: np.full(count, getattr(fmt, key), np.int64) for key in "kif"}


def _cmvm(kernel, rows: dict, positions: int = 1, bias=None) -> CMVM:
    kernel = np.asarray(kernel, np.float64)
    bias = np.zeros(kernel.shape[1]) if bias is None else np.asarray(bias, np.float64)
    # latency_only: the layer's arithmetic is fixed by our template, whatever the strategy.
    return CMVM(kernel=kernel, rows=rows, positions=int(positions), bias=bias, latency_only=True)


def _product(count: int, a: FixedFormat, b: FixedFormat) -> Product:
    out = FixedFormat(1, a.width + b.width, 0)
    return Product(a_width=a.width, b_width=b.width, out=_kif(out, count))


def shift_add_kernel(codes: np.ndarray, kind: str, level_shift_and_odd) -> tuple[np.ndarray, np.ndarray]:
    """POT/POST codes (patch rows x outputs) as constants on the rows [m; x·c]: ±2**-shift.

    Returns the (2 * rows, outputs) kernel and, per code row, whether its x·c row is used.
    ``level_shift_and_odd`` (from hgq_chip.quantizers.post) is passed in: this package stays
    free of the Keras-importing quantizers so `hgq_chip estimate DIR` starts fast.
    """
    codes = np.asarray(codes)
    kernel = np.zeros((2 * codes.shape[0], codes.shape[1]))
    live = codes != 0
    shift, odd = level_shift_and_odd(np.where(live, codes, 1), kind)
    value = np.where(live, np.sign(codes) * 2.0 ** -shift.astype(np.float64), 0.0)
    kernel[: codes.shape[0]] = np.where(odd, 0.0, value)
    kernel[codes.shape[0]:] = np.where(odd, value, 0.0)
    return kernel, (live & odd).any(axis=1)


def asq_post_operations(layer_facts: dict) -> list[Op]:
    """The operations of one ASQ/POST layer from the converter's numbers (see rules/asq_post.py).

    ``layer_facts``: ``types`` (the derived FixedFormats by name), ``code_source`` (Interval of
    what the code cast reads), ``n_elements`` (input elements per sample), ``positions`` (output
    positions), ``n_channels`` (input channels), ``kernel`` (patch rows x outputs: LSQ units, or
    the POT/POST shift-add kernel with ``uses_c`` per patch row and ``sqrt_half``), ``bias``,
    and for ASQ ``adapter`` (summary and adapter kernels) and ``table_entries``.
    """
    types = layer_facts["types"]
    n_elements, positions = layer_facts["n_elements"], layer_facts["positions"]
    code, source = types["code"], layer_facts["code_source"].broadcast_to((n_elements,))
    ops = []
    adaptive = "beta" in types
    if adaptive:
        adapter = layer_facts["adapter"]
        ops.append(_cmvm(np.ones((n_elements, 1)), _kif(types["in"], n_elements)))
        if "hidden" in types:
            ops.append(_cmvm(adapter["a1"][None, :], _kif(types["sum"], 1), bias=adapter["d1"]))
            ops.append(Relu(out=_kif(types["hidden"], adapter["a1"].size)))
            ops.append(_cmvm(adapter["a2"][:, None], _kif(types["hidden"], adapter["a2"].size), bias=adapter["d2"]))
        else:
            ops.append(_cmvm(adapter["a1"][None, :], _kif(types["sum"], 1), bias=adapter["d1"]))
        ops.append(Table(index_width=types["beta"].width, out_width=types["table"].width, elements=1))
        ops.append(_product(n_elements, types["in"], types["table"]))
    ops.append(Cast(stage="codes", in_lo=source.lo, in_hi=source.hi, in_f=source.f, out=_kif(code, n_elements),
                    rounding="RND", overflow="SAT"))
    kernel = np.asarray(layer_facts["kernel"], np.float64)
    rows = kernel.shape[0]
    if "xc" in types:
        per_channel = np.asarray(layer_facts["uses_c"]).reshape(-1, layer_facts["n_channels"]).any(axis=0)
        needing = n_elements // layer_facts["n_channels"] * int(per_channel.sum())
        if needing:
            ops.append(_cmvm([[layer_facts["sqrt_half"]]], _kif(code, 1), positions=needing))
        row_kif = {key: np.concatenate([_kif(code, rows // 2)[key], _kif(types["xc"], rows // 2)[key]]) for key in "kif"}
    else:
        row_kif = _kif(code, rows)
    ops.append(_cmvm(kernel, row_kif, positions=positions, bias=layer_facts["bias"]))
    if adaptive:
        ops.append(_product(positions * kernel.shape[1], types["accum"], types["beta"]))
    return ops


def code_source_interval(x: Interval, types: dict, exponent: int) -> Interval:
    """What the code cast reads: x (or x·r for ASQ) times 2**-exponent, per input element."""
    read = Interval.of_format(types["product"]) if "product" in types else x
    read = read.reshape((-1,))
    return Interval(read.lo * 2.0**-exponent, read.hi * 2.0**-exponent, read.f + exponent)
