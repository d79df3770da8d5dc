"""The bit layout of the RTL top's ports: which bits hold which tensor element, in which format.

da4ml packs every input element into ``<top>_inp`` and every output element into ``<top>_out``
back to back, element 0 in the least significant bits, each with the width of its own
fixed-point format ``(k, i, f)``: ``k`` sign bits (0 or 1), ``i`` integer bits, ``f`` fractional
bits, width ``k + i + f``, two's complement; ``ap_fixed<k+i+f, k+i>`` (``ap_ufixed<i+f, i>`` when
``k = 0``). The formats are ``da4ml.types.minimal_kif`` of the traced intervals
(``da4ml.codegen.rtl.verilog.io_wrapper.hetero_io_map`` computes the same offsets). An element
of width 0 is a constant 0 and has no bits. Elements are the model's inputs (outputs) flattened
in C order, one tensor after the other in ``model.inputs`` (``model.outputs``) order.

``pack``/``unpack`` convert between values and port words (little-endian 32-bit words, as
Verilator stores wide ports), so ``verify`` drives the documented top itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedConfigurationError

MAX_ELEMENT_BITS = 53  # exact in float64 (the values compared with Keras)


@dataclass(frozen=True)
class Element:
    """One tensor element's place in a port: bits ``[lsb + width - 1 : lsb]`` holding ``(k, i, f)``."""

    tensor: str
    index: int  # flat, C order, within one sample of the tensor
    lsb: int
    k: int
    i: int
    f: int

    @property
    def width(self) -> int:
        return max(self.k + self.i + self.f, 0)

    @property
    def ap_type(self) -> str:
        if self.width == 0:
            return "constant 0"
        return f"ap_fixed<{self.width},{self.k + self.i}>" if self.k else f"ap_ufixed<{self.width},{self.i}>"


def layout(qints, tensors: list[tuple[str, int]]) -> tuple[list[Element], int]:
    """``(elements, port width in bits)`` for da4ml intervals ``qints`` (one per flat element) of
    ``tensors`` (``[(name, size)]``, sizes summing to ``len(qints)``)."""
    from .compat import load

    minimal_kif = load().minimal_kif
    names = [(name, j) for name, size in tensors for j in range(size)]
    if len(names) != len(qints):
        raise UnsupportedConfigurationError(
            f"internal error: the traced logic has {len(qints)} port elements, the model {len(names)}")
    elements, lsb = [], 0
    for (name, j), qint in zip(names, qints):
        k, i, f = (int(v) for v in minimal_kif(qint))
        elements.append(Element(name, j, lsb, k, i, f))
        lsb += k + i + f  # as hetero_io_map accumulates widths
    return elements, lsb


def runs(elements: list[Element]) -> list[dict]:
    """Consecutive elements of one tensor with one format, as ``{"tensor", "first", "count", "lsb",
    "width", "k", "i", "f", "type"}``: element ``first + n`` sits at bits ``lsb + n*width``."""
    grouped: list[dict] = []
    for e in elements:
        last = grouped[-1] if grouped else None
        if (last and last["tensor"] == e.tensor and (last["k"], last["i"], last["f"]) == (e.k, e.i, e.f)
                and last["first"] + last["count"] == e.index and last["lsb"] + last["count"] * last["width"] == e.lsb):
            last["count"] += 1
            continue
        grouped.append({"tensor": e.tensor, "first": e.index, "count": 1, "lsb": e.lsb, "width": e.width,
                        "k": e.k, "i": e.i, "f": e.f, "type": e.ap_type})
    return grouped


def words(bits: int) -> int:
    """32-bit words of a port of ``bits`` bits (at least 1)."""
    return max(1, (bits + 31) // 32)


def _check_widths(elements: list[Element]) -> None:
    wide = [e for e in elements if e.width > MAX_ELEMENT_BITS]
    if wide:
        raise UnsupportedConfigurationError(
            f"{wide[0].tensor}[{wide[0].index}] is {wide[0].width} bits wide; verify compares values in float64 "
            f"and handles port elements of up to {MAX_ELEMENT_BITS} bits")


def pack(values: np.ndarray, elements: list[Element], width: int) -> np.ndarray:
    """``(n, n_elements)`` values, each exactly on its element's grid and range, as ``(n, words)`` uint32."""
    _check_widths(elements)
    n = len(values)
    bits = np.zeros((n, words(width) * 32), np.uint8)
    for column, e in enumerate(elements):
        if e.width == 0:
            continue
        codes = np.round(values[:, column].astype(np.float64) * 2.0 ** e.f).astype(np.int64)
        codes &= (1 << e.width) - 1  # two's complement in width bits
        for b in range(e.width):
            bits[:, e.lsb + b] = (codes >> b) & 1
    return np.packbits(bits, axis=1, bitorder="little").view("<u4").reshape(n, -1)


def unpack(port: np.ndarray, elements: list[Element]) -> np.ndarray:
    """``(n, words)`` uint32 port values as ``(n, n_elements)`` float64 values."""
    _check_widths(elements)
    bits = np.unpackbits(np.ascontiguousarray(port, "<u4").view(np.uint8), axis=1, bitorder="little")
    out = np.zeros((len(port), len(elements)), np.float64)
    for column, e in enumerate(elements):
        if e.width == 0:
            continue
        codes = np.zeros(len(port), np.int64)
        for b in range(e.width):
            codes |= bits[:, e.lsb + b].astype(np.int64) << b
        if e.k:
            codes -= (codes >> (e.width - 1)) << e.width  # sign-extend
        out[:, column] = codes * 2.0 ** -e.f
    return out


def describe(top: str, inputs: list[Element], in_width: int, outputs: list[Element], out_width: int,
             latency: int, clock_period_ns: float) -> str:
    """PORTS.md: the top's ports, their bit layout and timing, for a human reader."""
    lines = [f"# Ports of `{top}`", "",
             f"- `clk`: rising edge; the constraints (`src/{top}.xdc`, `src/{top}.sdc`) ask for {clock_period_ns:g} ns.",
             f"- `{top}_inp[{max(in_width - 1, 0)}:0]`: every input element, packed (below).",
             f"- `{top}_out[{max(out_width - 1, 0)}:0]`: every output element, packed (below); a register.",
             ("- No reset, no valid/ready: one sample per clock. An input on the port at rising edge t is on the "
              f"output after rising edge t + {latency} ({latency} cycles of latency; {latency + 1} register banks "
              "including the input register)."), "",
             ("Each element is a two's complement fixed-point number with k sign bits (0 or 1), i integer bits "
             "and f fractional bits: width k+i+f, value = code x 2^-f; `ap_fixed<W,I>` has W = k+i+f bits, I = k+i "
             "of them above the binary point (`ap_ufixed` when k = 0). Element 0 is in the least significant bits; "
             "element j of a run sits at bits [lsb + (j-first)*width + width-1 : lsb + (j-first)*width]. "
             "Elements are numbered in C order within one sample of each tensor. Width 0: a constant 0, no bits."), ""]
    for title, port, elements in (("Inputs", f"{top}_inp", inputs), ("Outputs", f"{top}_out", outputs)):
        lines += [f"## {title} (`{port}`)", "", "| tensor | elements | bits | width each | k | i | f | type |",
                  "|---|---|---|---|---|---|---|---|"]
        for run in runs(elements):
            last = run["first"] + run["count"] - 1
            top_bit = run["lsb"] + run["count"] * run["width"] - 1
            span = f"[{top_bit}:{run['lsb']}]" if run["width"] else "-"
            which = f"{run['first']}" if run["count"] == 1 else f"{run['first']}..{last}"
            lines.append(f"| {run['tensor']} | {which} | {span} | {run['width']} | {run['k']} | {run['i']} | "
                         f"{run['f']} | `{run['type']}` |")
        lines.append("")
    return "\n".join(lines)
