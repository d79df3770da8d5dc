"""Merges of fixed-point tensors: HAdd, HSubtract, HMultiply, HMaximum, HMinimum.

A sum, difference, product, maximum or minimum of fixed-point numbers is itself a fixed-point
number, so no rounding or overflow is needed after the merge: the converter types each
output by interval arithmetic (``hgq_chip/conversion/rules/merge.py``) and the firmware
computes it exactly (hls4ml 1.3's ``Merge`` layer, ``nnet_merge.h``/``nnet_merge_stream.h``:
``res = a op b`` in the full-precision ap_fixed result, assigned to the derived output
type, which holds it). Keras computes the same values in floats, exact while they fit the
compute dtype's significand (24 bits in float32, 53 in float64; ``convert`` refuses wider).

HSubtract, HMaximum and HMinimum read already-quantized tensors by default; with
``input_quantizer`` (an :class:`~hgq_chip.quantizers.ActivationQuantizer` config) each input
gets its own quantizer ``iq0``, ``iq1``, ... first. HMultiply always quantizes its inputs:
a product of two variables costs bits x bits (EBOPs), and only its own quantizers know both
operands' bits.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from ..quantizers.dtype_policy import check_exact_dtype_policy
from ..quantizers.hgq import ActivationQuantizer
from .base import DEFAULT_INPUT_QUANTIZER, merged_config


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


class QuantizedMergeMixin:
    """Optional per-input activation quantizers ahead of a Keras merge (mixed in first).

    ``input_quantizer``: None (no quantizers: the inputs must already be fixed point) or an
    ActivationQuantizer config merged over ``DEFAULT_INPUT_QUANTIZER``; one quantizer per
    input, named ``iq0``, ``iq1``, ..., built for that input's shape.
    """

    def _init_merge(self, input_quantizer):
        check_exact_dtype_policy(self)
        self.input_quantizer_config = (
            None if input_quantizer is None else merged_config(DEFAULT_INPUT_QUANTIZER, input_quantizer)
        )
        self.input_quantizers = []

    def build(self, input_shape):
        if self.input_quantizer_config is not None:
            for index, shape in enumerate(input_shape):
                quantizer = ActivationQuantizer(name=f"iq{index}", dtype=self.dtype_policy, **self.input_quantizer_config)
                quantizer.build(shape)
                setattr(self, f"iq{index}", quantizer)
                self.input_quantizers.append(quantizer)
        super().build(input_shape)

    def _quantized_inputs(self, inputs, training):
        if not self.input_quantizers:
            return list(inputs)
        return [q(x, training=training) for q, x in zip(self.input_quantizers, inputs)]

    def call(self, inputs, training=None):
        return super().call(self._quantized_inputs(inputs, training))

    def quantizers(self):
        return list(self.input_quantizers)

    def get_config(self):
        config = super().get_config()
        config["input_quantizer"] = self.input_quantizer_config
        return config


@keras.saving.register_keras_serializable(package="hgq_chip")
class HSubtract(QuantizedMergeMixin, keras.layers.Subtract):
    """``keras.layers.Subtract`` (``a - b``) for fixed-point inputs, optionally quantizing each.

    The difference is typed like a sum (``a + (-b)``): exact, no rounding. No EBOPs.
    Inputs: two tensors of one shape ``(batch, *features)``; output: that shape. Raises
    :class:`~hgq_chip.errors.UnsupportedConfigurationError` for a dtype policy that does not
    compute in float32/float64, ValueError for bad quantizer arguments.
    """

    def __init__(self, input_quantizer=None, **kwargs):
        super().__init__(**kwargs)
        self._init_merge(input_quantizer)


@keras.saving.register_keras_serializable(package="hgq_chip")
class HMaximum(QuantizedMergeMixin, keras.layers.Maximum):
    """``keras.layers.Maximum`` for fixed-point inputs, optionally quantizing each.

    The maximum is one of the inputs, so its type is the union of the input formats (the
    largest bounds, the finest fractional part): exact, no rounding, no EBOPs. n inputs
    are compared left to right (hls4ml compares two per layer). Shapes and errors as HSubtract.
    """

    def __init__(self, input_quantizer=None, **kwargs):
        super().__init__(**kwargs)
        self._init_merge(input_quantizer)


@keras.saving.register_keras_serializable(package="hgq_chip")
class HMinimum(QuantizedMergeMixin, keras.layers.Minimum):
    """``keras.layers.Minimum`` for fixed-point inputs; as :class:`HMaximum`."""

    def __init__(self, input_quantizer=None, **kwargs):
        super().__init__(**kwargs)
        self._init_merge(input_quantizer)


@keras.saving.register_keras_serializable(package="hgq_chip")
class HMultiply(QuantizedMergeMixin, keras.layers.Multiply):
    """``keras.layers.Multiply`` of quantized inputs: elementwise products of two variables.

    Each input has its own quantizer (``input_quantizer`` merged over ``DEFAULT_INPUT_QUANTIZER``;
    None gives the defaults: the EBOPs need both operands' bits, so the quantizers are not optional). The product of values with
    ``f_a`` and ``f_b`` fractional bits has ``f_a + f_b`` and is exact (no rounding); n
    inputs multiply left to right, each partial product exact in its own derived type.

    EBOPs (per element, every product counted): ``sum_j bits(x_0 ... x_{j-1}) * bits(x_j)``,
    the width of the running product (the sum of its factors' widths) times the next
    factor's width; for two inputs ``bits_a * bits_b`` (HGQ, arXiv:2405.00645, Eq. 6 for
    two variable operands). ``beta0`` sets the EBOPs weight in the loss as for HDense.

    Inputs: n >= 2 tensors of one shape ``(batch, *features)``; output: that shape. Raises
    as HSubtract.
    """

    def __init__(self, input_quantizer=None, beta0=0.0, **kwargs):
        super().__init__(**kwargs)
        if input_quantizer is None:
            input_quantizer = {}
        self._init_merge(input_quantizer)
        self.beta0 = float(beta0)

    def build(self, input_shape):
        super().build(input_shape)
        self.feature_shape = tuple(int(d) for d in input_shape[0][1:])
        self.beta = self.add_weight(
            name="beta", shape=(), initializer=keras.initializers.Constant(self.beta0), trainable=False
        )

    def call(self, inputs, training=None):
        out = super().call(inputs, training=training)
        if training:
            surrogate = ops.convert_to_tensor(self.ebops_surrogate())
            self.add_loss(ops.cast(self.beta, surrogate.dtype) * surrogate)
        return out

    def _ebops_of(self, widths):
        running, total = widths[0], 0.0
        for width in widths[1:]:
            total = total + ops.sum(running * width)
            running = running + width
        return total

    def ebops_surrogate(self):
        """The differentiable EBOPs (float bits from each quantizer's ``bits_surrogate``)."""
        return self._ebops_of([ops.broadcast_to(q.bits_surrogate(), self.feature_shape) for q in self.input_quantizers])

    def ebops_exact(self) -> int:
        """Integer EBOPs from the quantizers' exact formats (zero-width elements cost 0)."""
        widths = [np.broadcast_to(q.fixed_format().width, self.feature_shape).astype(np.int64)
                  for q in self.input_quantizers]
        running, total = widths[0], 0
        for width in widths[1:]:
            total += int(np.sum(running * width))
            # A zero-width factor is the constant 0: the running product is 0 from then on.
            running = np.where((running > 0) & (width > 0), running + width, 0)
        return total

    def get_config(self):
        config = super().get_config()
        config["beta0"] = self.beta0
        return config
