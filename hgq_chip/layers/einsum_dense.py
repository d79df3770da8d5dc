"""HEinsumDense: ``keras.layers.EinsumDense`` projections over trailing feature axes, quantized.

The equations attention uses contract the input's trailing axes with the kernel's leading axes
and keep the input's leading axes: ``"btf,fo->bto"``, ``"abc,cde->abde"`` (the Q/K/V projections
of multi-head attention), ``"abcd,cde->abe"`` (its output projection). Every such equation is a
Dense over the flattened contracted axes, applied at every position of the leading axes::

    x: (batch, *lead, *contract)  -> (batch, L, C)         L = prod(lead), C = prod(contract)
    W: (*contract, *free)         -> (C, O)                 O = prod(free)
    y = x @ W + b                 -> (batch, *lead, *free)

so the converter writes hls4ml's Dense on the (L, C) sequence (a pointwise convolution in
hls4ml, exact with the derived types) between two Reshapes, and the estimate prices it as a
constant matrix-vector product at L positions. Other equations (a batch axis in the kernel, a
transposed output, a contracted axis that is not trailing) raise ValueError at construction.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from .base import QuantizedLayerMixin


def parse_projection(equation: str) -> tuple[int, str, str]:
    """``(n_lead, contract, free)`` of an equation ``"<batch><lead><contract>,<contract><free>-><batch><lead><free>"``.

    Letters only (no ``...``); the first letter of the input and output is the batch axis.
    Raises ValueError naming the supported form for any other equation.
    """
    form = ("HEinsumDense supports projections over trailing axes only: '<b><lead><c>,<c><free>-><b><lead><free>' "
            "(e.g. 'btf,fo->bto', 'abc,cde->abde', 'abcd,cde->abe')")
    try:
        inputs, out = equation.replace(" ", "").split("->")
        x_spec, w_spec = inputs.split(",")
    except ValueError:
        raise ValueError(f"{form}; got {equation!r}") from None
    if not (x_spec.isalpha() and w_spec.isalpha() and out.isalpha()) or len(set(x_spec + w_spec)) != len(set(x_spec)) + len(
            set(w_spec)) - len(set(x_spec) & set(w_spec)):
        raise ValueError(f"{form}; got {equation!r}")
    shared = [c for c in w_spec if c in x_spec]
    contract = "".join(shared)
    free = w_spec[len(contract):]
    lead = x_spec[1:len(x_spec) - len(contract)]
    valid = (len(set(x_spec)) == len(x_spec) and len(set(w_spec)) == len(w_spec) and len(contract) > 0
             and w_spec.startswith(contract) and x_spec.endswith(contract) and x_spec[0] not in w_spec
             and out == x_spec[0] + lead + free and len(free) > 0)
    if not valid:
        raise ValueError(f"{form}; got {equation!r}")
    return len(lead), contract, free


@keras.saving.register_keras_serializable(package="hgq_chip")
class HEinsumDense(QuantizedLayerMixin, keras.layers.Layer):
    """``keras.layers.EinsumDense`` (projection equations, see module doc) with trainable bit-widths.

    Args:
        equation: e.g. ``"btf,fo->bto"``; ``output_shape``: the output's shape without the batch
            axis (an int for one axis), as for EinsumDense (``None`` entries take the input's size).
        activation: ``None``/``"linear"`` or ``"relu"`` (others are not exact; ValueError).
        bias_axes: letters of the kernel's free axes that carry a bias (Keras' bias shape: the
            output axes from the first bias axis on, 1 where an axis has no bias), or None.
        input_quantizer, kernel_quantizer, bias_quantizer, beta0: as :class:`~hgq_chip.layers.HDense`
            (per-element by default: one trainable fractional bit-width per weight).
        quantizer_prefix: prefix of the quantizer names (``iq``, ``kq``, ``bq``): a layer holding
            several projections (:class:`~hgq_chip.layers.HMultiHeadAttention`) keeps them apart.

    Input ``(batch, *lead, *contract)``; output ``(batch, *lead, *free)``. EBOPs: every product
    input bits x weight bits (HGQ arXiv:2405.00645, Eq. 6), ``ebops_exact`` from the formats.
    """

    def __init__(self, equation, output_shape, activation=None, bias_axes=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", input_quantizer=None, kernel_quantizer=None, bias_quantizer=None,
                 beta0=0.0, quantizer_prefix="", **kwargs):
        super().__init__(**kwargs)
        self.equation = str(equation)
        self.n_lead, self.contract_spec, self.free_spec = parse_projection(self.equation)
        self.partial_output_shape = (int(output_shape),) if isinstance(output_shape, int) else tuple(output_shape)
        self.activation = keras.activations.get(activation)
        self.bias_axes = bias_axes or None
        if self.bias_axes and any(c not in self.free_spec for c in self.bias_axes):
            raise ValueError(f"{self.name}: bias_axes {bias_axes!r} must be axes of the kernel's output ("
                             f"{self.free_spec!r})")
        self.use_bias = bool(self.bias_axes)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.quantizer_prefix = str(quantizer_prefix)
        self._check_keras_options()
        self._make_quantizers(input_quantizer, kernel_quantizer, bias_quantizer, beta0)
        for quantizer in (self.iq, self.kq, self.bq):
            quantizer.name = self.quantizer_prefix + quantizer.name

    def _free_shape(self, input_shape) -> tuple[int, ...]:
        out = self.partial_output_shape
        if len(out) != self.n_lead + len(self.free_spec):
            raise ValueError(f"{self.name}: output_shape {out} must have {self.n_lead + len(self.free_spec)} axes for "
                             f"{self.equation!r}")
        lead = tuple(input_shape[1:1 + self.n_lead])
        for given, actual in zip(out[: self.n_lead], lead):
            if given is not None and given != actual:
                raise ValueError(f"{self.name}: output_shape {out} does not keep the input's leading axes {lead}")
        return tuple(int(d) for d in out[self.n_lead:])

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 1 + self.n_lead + len(self.contract_spec):
            raise ValueError(f"{self.name}: {self.equation!r} needs inputs of rank {1 + self.n_lead + len(self.contract_spec)}"
                             f" (with the batch axis), got shape {input_shape}")
        self.lead_shape = tuple(int(d) for d in input_shape[1:1 + self.n_lead])
        self.contract_shape = tuple(int(d) for d in input_shape[1 + self.n_lead:])
        self.free_shape = self._free_shape(input_shape)
        self.kernel = self.add_weight(name="kernel", shape=self.contract_shape + self.free_shape,
                                      initializer=self.kernel_initializer)
        bias_shape = None
        if self.use_bias:
            first = min(self.free_spec.index(c) for c in self.bias_axes)
            bias_shape = tuple(d if c in self.bias_axes else 1
                               for c, d in zip(self.free_spec[first:], self.free_shape[first:]))
            self.bias = self.add_weight(name="bias", shape=bias_shape, initializer=self.bias_initializer)
        self._build_quantizers(input_shape, self.kernel.shape, bias_shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *tuple(input_shape[1:1 + self.n_lead]), *self._free_shape(input_shape))

    def forward(self, inputs, training=None):
        """``activation(iq(x) (*) kq(W) + bq(b))`` without adding the EBOPs loss (a layer holding
        this projection, e.g. HMultiHeadAttention, adds its own total)."""
        y = self._apply_kernel(self.iq(inputs, training=training), self.kq(self.kernel))
        if self.use_bias:
            y = y + self.bq(self.bias)
        return self.activation(y)

    def call(self, inputs, training=None):
        y = self.forward(inputs, training=training)
        self._add_cost(training)
        return y

    def _apply_kernel(self, x, kernel):
        c, o = math.prod(self.contract_shape), math.prod(self.free_shape)
        flat = ops.reshape(x, (-1, math.prod(self.lead_shape), c))
        y = ops.matmul(flat, ops.reshape(kernel, (c, o)))
        return ops.reshape(y, (-1, *self.lead_shape, *self.free_shape))

    # ---- the flattened view the converter and the EBOPs use --------------------------------

    def fused_kernel(self) -> np.ndarray:
        """The float kernel in its own shape ``(*contract, *free)`` (what ``kq`` quantizes)."""
        return np.asarray(ops.convert_to_numpy(self.kernel))

    def fused_bias(self) -> np.ndarray | None:
        """The float bias in its own (Keras) shape, or None."""
        return np.asarray(ops.convert_to_numpy(self.bias)) if self.use_bias else None

    def flat_kernel(self, values) -> np.ndarray:
        """A kernel-shaped array as ``(C, O)``."""
        return np.reshape(np.asarray(values), (math.prod(self.contract_shape), math.prod(self.free_shape)))

    def flat_bias(self, values) -> np.ndarray:
        """A bias-shaped array broadcast over the free axes and flattened to ``(O,)``."""
        values = np.asarray(values)
        shape = (1,) * (len(self.free_shape) - values.ndim) + values.shape
        return np.broadcast_to(values.reshape(shape), self.free_shape).reshape(-1)

    def _input_bits(self, bits, xp):
        shape = self.lead_shape + self.contract_shape
        full = xp.broadcast_to(bits, shape)
        return xp.reshape(full, (math.prod(self.lead_shape), math.prod(self.contract_shape)))

    def ebops_surrogate(self):
        bits_in = self._input_bits(self.iq.bits_surrogate(), ops)
        bits_w = ops.reshape(ops.broadcast_to(self.kq.bits_surrogate(self.kernel), self.kernel.shape),
                             (math.prod(self.contract_shape), math.prod(self.free_shape)))
        return ops.sum(ops.matmul(bits_in, bits_w))

    def ebops_exact(self) -> int:
        bits_in = self._input_bits(self.iq.fixed_format().width, np).astype(np.int64)
        bits_w = self.flat_kernel(np.broadcast_to(self.kq.fixed_format(self.fused_kernel()).width,
                                                  self.kernel.shape)).astype(np.int64)
        return int(np.sum(bits_in @ bits_w))

    def get_config(self):
        config = super().get_config()
        config.update(
            equation=self.equation, output_shape=self.partial_output_shape,
            activation=keras.activations.serialize(self.activation), bias_axes=self.bias_axes,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            quantizer_prefix=self.quantizer_prefix, **self._quantizer_config(),
        )
        return config
