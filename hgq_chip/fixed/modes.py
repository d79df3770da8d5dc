"""Rounding and overflow modes shared by the reference, the Keras op and ap_fixed."""

from __future__ import annotations

import enum


class _ParsableMode(str, enum.Enum):
    """A mode that also accepts its ap_fixed spelling (``AP_RND``) and any letter case."""

    @classmethod
    def parse(cls, value):
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).upper().removeprefix("AP_"))
        except ValueError:
            raise ValueError(f"unsupported {cls.__name__.lower()} mode {value!r}; use one of {[m.value for m in cls]}") from None


class Rounding(_ParsableMode):
    """How bits below the last fractional bit are dropped.

    RND is ap_fixed's AP_RND (ties go towards +inf); TRN is AP_TRN (floor);
    RND_CONV is AP_RND_CONV (ties go to the even neighbour, as tf.round/np.round and
    therefore QKeras' quantizers do).
    """

    RND = "RND"
    TRN = "TRN"
    RND_CONV = "RND_CONV"


class Overflow(_ParsableMode):
    """What happens to values outside the representable range.

    WRAP is two's-complement wrap (AP_WRAP), SAT clips to the range (AP_SAT),
    SAT_SYM clips to a range symmetric around zero (AP_SAT_SYM).
    """

    WRAP = "WRAP"
    SAT = "SAT"
    SAT_SYM = "SAT_SYM"
