"""Rendering formats as ap_fixed C++ types and parsing hls4ml precision strings.

ap_fixed<W, I> counts the sign bit inside I, so W = k + i + f and I = k + i. Formats are read
by attribute (``k``, ``i``, ``f``, ``width``, ``rounding``, ``overflow``) and parsed into fields,
so ``format.py`` builds on this module without an import cycle.
"""

from __future__ import annotations

import re

from .modes import Overflow, Rounding

_AP_PATTERN = re.compile(r"^\s*(?:ap_)?(u?)(fixed|int)\s*<([^>]*)>\s*$")


def render_ap_type(fmt: FixedFormat) -> str:  # noqa: F821  (fixed.format, read by attribute)
    if fmt.width == 0:
        raise ValueError(
            f"{fmt} has zero width: a zero-bit value is a constant 0 and has no ap_fixed type; "
            "prune it instead of declaring it"
        )
    base = "ap_fixed" if fmt.k else "ap_ufixed"
    args = [str(fmt.width), str(fmt.k + fmt.i)]
    if fmt.rounding is not Rounding.TRN or fmt.overflow is not Overflow.WRAP:
        args += [f"AP_{fmt.rounding.value}", f"AP_{fmt.overflow.value}"]
    return f"{base}<{','.join(args)}>"


def render_hls4ml_precision(fmt: FixedFormat) -> str:  # noqa: F821
    """The string form hls4ml's configuration accepts, e.g. ``fixed<8,3,RND,SAT>``."""
    if fmt.width == 0:
        raise ValueError(f"{fmt} has zero width and no hls4ml precision")
    base = "fixed" if fmt.k else "ufixed"
    return f"{base}<{fmt.width},{fmt.k + fmt.i},{fmt.rounding.value},{fmt.overflow.value}>"


def parse_ap_fields(text: str) -> tuple[int, int, int, Rounding, Overflow]:
    """(k, i, f, rounding, overflow) of ``ap_fixed<..>``, ``fixed<..>``, ``ap_int<..>`` or an
    unsigned form; ValueError for anything else (``FixedFormat.from_hls`` builds the format)."""
    match = _AP_PATTERN.match(text)
    if not match:
        raise ValueError(f"cannot parse fixed-point type {text!r}; expected e.g. 'ap_fixed<8,3,AP_RND,AP_SAT>'")
    unsigned, kind, arg_text = match.groups()
    args = [a.strip() for a in arg_text.split(",") if a.strip()]
    k = 0 if unsigned else 1
    if kind == "fixed":
        if len(args) < 2:
            raise ValueError(f"{text!r}: fixed types need width and integer bits")
        width, integer, modes = int(args[0]), int(args[1]), args[2:]
    else:
        if len(args) < 1:
            raise ValueError(f"{text!r}: integer types need a width")
        width, integer, modes = int(args[0]), int(args[0]), args[1:]
    if width <= 0:
        raise ValueError(f"{text!r}: width must be positive")
    if len(modes) > 3 or (len(modes) == 3 and int(modes[2]) != 0):
        raise ValueError(f"{text!r}: saturation bits other than 0 are not supported")
    rounding = Rounding.parse(modes[0]) if len(modes) > 0 else Rounding.TRN
    overflow = Overflow.parse(modes[1]) if len(modes) > 1 else Overflow.WRAP
    i = integer - k
    f = width - integer
    return k, i, f, rounding, overflow
