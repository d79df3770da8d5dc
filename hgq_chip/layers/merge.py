"""HAdd: elementwise addition of already-quantized tensors, exact without a quantizer."""

from __future__ import annotations

import keras

from ..quantizers.dtype_policy import check_exact_dtype_policy


@keras.saving.register_keras_serializable(package="hgq_chip")
class HAdd(keras.layers.Add):
    """``keras.layers.Add`` for fixed-point inputs (outputs of hgq_chip layers).

    A sum of fixed-point numbers is a fixed-point number, so no rounding or overflow is
    needed: the converter types the output by interval arithmetic (the widest fractional
    part, one more integer bit per doubling of the number of inputs) and the firmware adds
    exactly. The float sum here is exact while that type fits the compute dtype's
    significand (24 bits in float32, 53 in float64; ``convert`` refuses wider sums). Takes
    every ``Add`` argument;
    it has no quantizers and no EBOPs (additions are not counted).

    Inputs: a list of tensors of one shape ``(batch, *features)`` (the converter refuses
    broadcasting); output: that shape. Raises
    :class:`~hgq_chip.errors.UnsupportedConfigurationError` for a dtype policy that does not
    compute in float32/float64.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        check_exact_dtype_policy(self)
