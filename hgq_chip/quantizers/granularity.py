"""Which elements share one fractional-bit variable."""

from __future__ import annotations

import enum


class Granularity(str, enum.Enum):
    ELEMENT = "per-element"
    CHANNEL = "per-channel"
    LAYER = "per-layer"

    @classmethod
    def parse(cls, value: "Granularity | str") -> "Granularity":
        if isinstance(value, Granularity):
            return value
        text = str(value).lower().replace("_", "-")
        if not text.startswith("per-"):
            text = "per-" + text
        try:
            return cls(text)
        except ValueError:
            raise ValueError(
                f"unknown granularity {value!r}; use one of {[g.value for g in cls]}"
            ) from None

    def variable_shape(self, tensor_shape) -> tuple:
        """Shape of the bit-width variable for a tensor (batch axis already removed).

        Channels are the last axis, as in Keras' channels_last layers and kernels.
        """
        tensor_shape = tuple(int(d) for d in tensor_shape)
        if self is Granularity.ELEMENT:
            return tensor_shape
        if self is Granularity.CHANNEL and tensor_shape:
            return (1,) * (len(tensor_shape) - 1) + (tensor_shape[-1],)
        return (1,) * len(tensor_shape)
