"""HMultiHeadAttention: ``keras.layers.MultiHeadAttention`` with trainable bit-widths, exact in firmware.

For a query ``(batch, Tq, Dq)`` and value/key ``(batch, Tk, Dv)`` / ``(batch, Tk, Dk)``, with
H heads of ``key_dim`` dk and ``value_dim`` dv::

    Q = q_q(query_dense(query))      (Tq, H, dk)   HEinsumDense "abc,cde->abde", then a quantizer
    K = k_q(key_dense(key))          (Tk, H, dk)
    V = v_q(value_dense(value))      (Tk, H, dv)
    S[h, i, j] = sum_d Q[i, h, d] K[j, h, d]        exact: products of two variables, summed
    P = softmax(S / sqrt(dk))        (H, Tq, Tk)   HSoftmax with scale 1/sqrt(dk) inside its exp table
    A[i, h, d] = sum_j P[h, i, j] V[j, h, d]        exact
    out = output_dense(A)            (Tq, out)     HEinsumDense "abcd,cde->abe"

The only roundings are the quantizers (each projection's input quantizer, ``q_q``/``k_q``/``v_q``,
the softmax's five) and the softmax's tables, so the converter's firmware (hls4ml Dense and
Einsum layers with derived exact types, and our HSoftmax template) reproduces it bit for bit.
Scaling by ``1/sqrt(dk)`` is not a fixed-point product at all: it is folded into the exp table's
entries (``HSoftmax(scale=...)``), which the converter fills with this layer's own ops.

EBOPs: the four projections (input bits x weight bits), the score products
``sum bits(Q) x bits(K)`` and the attention products ``sum bits(P) x bits(V)`` (two variable
operands each, HGQ arXiv:2405.00645 Eq. 6), and the softmax's ``e x 1/sum`` products.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from ..quantizers.dtype_policy import check_exact_dtype_policy
from ..quantizers.hgq import ActivationQuantizer
from .base import DEFAULT_INPUT_QUANTIZER, merged_config
from .einsum_dense import HEinsumDense
from .softmax import HSoftmax

# Keras MultiHeadAttention's equations for inputs of rank 3 (attention over axis 1).
SCORE_EQUATION = "aecd,abcd->acbe"  # K (B, Tk, H, dk), Q (B, Tq, H, dk) -> S (B, H, Tq, Tk)
COMBINE_EQUATION = "acbe,aecd->abcd"  # P (B, H, Tq, Tk), V (B, Tk, H, dv) -> A (B, Tq, H, dv)


@keras.saving.register_keras_serializable(package="hgq_chip")
class HMultiHeadAttention(keras.layers.Layer):
    """Multi-head attention (Keras ``MultiHeadAttention`` signature) whose every value is fixed point.

    Args:
        num_heads, key_dim, value_dim, use_bias, output_shape, dropout, kernel_initializer, bias_initializer:
            as Keras (``value_dim`` defaults to ``key_dim``; ``output_shape`` is an int or a 1-tuple: the
            last axis of the output, default the query's last axis; ``dropout`` acts on the attention
            probabilities, in training only).
        input_quantizer, kernel_quantizer, bias_quantizer: configs for the four projections
            (:class:`~hgq_chip.layers.HEinsumDense`; per-element by default).
        score_quantizer: config of ``q_q`` and ``k_q`` (the score product's operands);
            value_quantizer: of ``v_q``. Defaults: ``DEFAULT_INPUT_QUANTIZER``.
        softmax: extra :class:`~hgq_chip.layers.HSoftmax` arguments (its quantizer configs).
        beta0: initial weight of the layer's EBOPs in the loss.

    Call ``layer(query, value, key=None, training=None)``; key defaults to value (self-attention
    is ``layer(x, x)``). Inputs of rank 3 ``(batch, T, D)``; output ``(batch, Tq, out)``. Raises
    ValueError for ``num_heads``, ``key_dim``, ``value_dim`` or ``output_shape`` < 1, ``attention_axes`` (only the sequence axis), ``use_causal_mask``, masks, or
    ``return_attention_scores``; UnsupportedConfigurationError for a non-float32/float64 policy.
    """

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True, output_shape=None,
                 attention_axes=None, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 input_quantizer=None, kernel_quantizer=None, bias_quantizer=None, score_quantizer=None,
                 value_quantizer=None, softmax=None, beta0=0.0, **kwargs):
        super().__init__(**kwargs)
        check_exact_dtype_policy(self)
        if attention_axes is not None:
            raise ValueError(f"{self.name}: HMultiHeadAttention attends over the sequence axis of (batch, T, D) "
                             "inputs only; leave attention_axes=None (reshape other layouts to (batch, T, D))")
        self.num_heads, self.key_dim = int(num_heads), int(key_dim)
        self.value_dim = int(value_dim) if value_dim else self.key_dim
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        if isinstance(output_shape, (tuple, list)):
            if len(output_shape) != 1:
                raise ValueError(f"{self.name}: output_shape must be one axis (an int), got {output_shape!r}")
            output_shape = output_shape[0]
        self.output_dim = None if output_shape is None else int(output_shape)
        for what, size in (("num_heads", self.num_heads), ("key_dim", self.key_dim),
                           ("value_dim", self.value_dim), ("output_shape", self.output_dim)):
            if size is not None and size < 1:
                raise ValueError(f"{self.name}: {what} must be at least 1, got {size} (an empty head or projection "
                                 "has no attention to compute)")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.beta0 = float(beta0)
        self.quantizer_configs = {"input_quantizer": input_quantizer, "kernel_quantizer": kernel_quantizer,
                                  "bias_quantizer": bias_quantizer}
        self.score_quantizer_config = merged_config(DEFAULT_INPUT_QUANTIZER, score_quantizer)
        self.value_quantizer_config = merged_config(DEFAULT_INPUT_QUANTIZER, value_quantizer)
        self.softmax_config = dict(softmax or {})
        for reserved in ("scale", "axis", "name"):
            if reserved in self.softmax_config:
                raise ValueError(f"{self.name}: softmax argument {reserved!r} is set by the layer itself")
        head = (None, self.num_heads)
        bias = self.use_bias
        common = {"kernel_initializer": kernel_initializer, "bias_initializer": bias_initializer,
                  "dtype": self.dtype_policy, **self.quantizer_configs}
        self.query_dense = HEinsumDense("abc,cde->abde", head + (self.key_dim,), bias_axes="de" if bias else None,
                                        quantizer_prefix="query_", name="query", **common)
        self.key_dense = HEinsumDense("abc,cde->abde", head + (self.key_dim,), bias_axes="de" if bias else None,
                                      quantizer_prefix="key_", name="key", **common)
        self.value_dense = HEinsumDense("abc,cde->abde", head + (self.value_dim,), bias_axes="de" if bias else None,
                                        quantizer_prefix="value_", name="value", **common)
        self.q_q = ActivationQuantizer(name="q_q", dtype=self.dtype_policy, **self.score_quantizer_config)
        self.k_q = ActivationQuantizer(name="k_q", dtype=self.dtype_policy, **self.score_quantizer_config)
        self.v_q = ActivationQuantizer(name="v_q", dtype=self.dtype_policy, **self.value_quantizer_config)
        self.softmax = HSoftmax(scale=1.0 / math.sqrt(self.key_dim), name="softmax", dtype=self.dtype_policy,
                                **self.softmax_config)
        for quantizer in self.softmax.quantizers():
            quantizer.name = "softmax_" + quantizer.name
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.output_dense = None  # needs the query's last axis: made in build

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        for what, shape in (("query", query_shape), ("value", value_shape), ("key", key_shape)):
            if len(shape) != 3 or any(d is None for d in shape[1:]):
                raise ValueError(f"{self.name}: the {what} must have shape (batch, T, D) with known T and D, "
                                 f"got {tuple(shape)}")
        if tuple(key_shape[1:2]) != tuple(value_shape[1:2]):
            raise ValueError(f"{self.name}: key and value need the same length, got {key_shape} and {value_shape}")
        self.query_shape, self.key_shape, self.value_shape = (tuple(int(d) for d in s[1:])
                                                              for s in (query_shape, key_shape, value_shape))
        t_q, t_k, heads = self.query_shape[0], self.key_shape[0], self.num_heads
        out_dim = self.output_dim or self.query_shape[-1]
        self.output_dense = HEinsumDense(
            "abcd,cde->abe", (None, out_dim), bias_axes="e" if self.use_bias else None,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer), dtype=self.dtype_policy,
            quantizer_prefix="output_", name="attention_output", **self.quantizer_configs)
        self.query_dense.build((None, *self.query_shape))
        self.key_dense.build((None, *self.key_shape))
        self.value_dense.build((None, *self.value_shape))
        self.q_q.build((None, t_q, heads, self.key_dim))
        self.k_q.build((None, t_k, heads, self.key_dim))
        self.v_q.build((None, t_k, heads, self.value_dim))
        self.softmax.build((None, heads, t_q, t_k))
        self.output_dense.build((None, t_q, heads, self.value_dim))
        self.beta = self.add_weight(name="beta", shape=(), initializer=keras.initializers.Constant(self.beta0),
                                    trainable=False)

    def __call__(self, query, value=None, key=None, **kwargs):
        # Positional arguments only: the model's node then lists its tensors as (query, value[, key]),
        # the order the converter reads them in. A list [query, value(, key)] is accepted too.
        if value is None and isinstance(query, (list, tuple)) and len(query) in (2, 3):
            query, value, key = (*query, None)[:3]
        if value is None:
            raise ValueError(f"{self.name}: call HMultiHeadAttention as layer(query, value[, key])")
        for unsupported in ("attention_mask", "query_mask", "value_mask", "key_mask", "use_causal_mask",
                            "return_attention_scores"):
            # `is not None`: a mask is a tensor (a symbolic one has no truth value); False is Keras' default.
            given = kwargs.get(unsupported)
            if given is not None and given is not False:
                raise ValueError(f"{self.name}: {unsupported} is not supported by HMultiHeadAttention (no masks, "
                                 "no score output); attend over every position")
            kwargs.pop(unsupported, None)
        if key is None:
            return super().__call__(query, value, **kwargs)
        return super().__call__(query, value, key, **kwargs)

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        if value_shape is None and isinstance(query_shape, (list, tuple)) and isinstance(query_shape[0], (list, tuple)):
            query_shape = query_shape[0]
        return (query_shape[0], query_shape[1], self.output_dim or query_shape[-1])

    # ---- the computation ------------------------------------------------------------------

    def attention_softmax(self, scores, training=None):
        """HSoftmax's inference steps (its call without its own EBOPs loss; this layer adds them)."""
        sm = self.softmax
        x = sm.iq(scores, training=training)
        e = sm.exp_values(sm.exp_argument(x), training=training)
        s = sm.sum_q(ops.sum(e, axis=-1, keepdims=True), training=training)
        r = sm.inverse_values(s, training=training)
        return sm.oq(e * r, training=training)

    def call(self, query, value, key=None, training=None):
        key = value if key is None else key
        q = self.q_q(self.query_dense.forward(query, training=training), training=training)
        k = self.k_q(self.key_dense.forward(key, training=training), training=training)
        v = self.v_q(self.value_dense.forward(value, training=training), training=training)
        probabilities = self.attention_softmax(ops.einsum(SCORE_EQUATION, k, q), training=training)
        probabilities = self.dropout_layer(probabilities, training=training)
        attended = ops.einsum(COMBINE_EQUATION, probabilities, v)
        out = self.output_dense.forward(attended, training=training)
        if training:
            surrogate = ops.convert_to_tensor(self.ebops_surrogate())
            self.add_loss(ops.cast(self.beta, surrogate.dtype) * surrogate)
        return out

    def refresh_tables(self) -> int:
        """Recompute the softmax's exp and inverse tables for the current formats (``layers/tables.py``)."""
        return self.softmax.refresh_tables()

    def projections(self) -> list[HEinsumDense]:
        return [self.query_dense, self.key_dense, self.value_dense, self.output_dense]

    def input_quantizers_at(self, position, n_inputs):
        """The input quantizers reading call argument ``position`` (0 query, 1 value, 2 key) of a call
        with ``n_inputs`` tensors: without a key, the value feeds the key projection too."""
        if position == 0:
            return [self.query_dense.iq]
        if position == 1:
            return [self.value_dense.iq] + ([self.key_dense.iq] if n_inputs == 2 else [])
        return [self.key_dense.iq]

    def quantizers(self):
        found = [q for dense in self.projections()[:3] for q in dense.quantizers()]
        found += [self.q_q, self.k_q, self.v_q, *self.softmax.quantizers(), *self.output_dense.quantizers()]
        return found

    # ---- EBOPs ----------------------------------------------------------------------------

    def _matmul_ebops(self, q_bits, k_bits, v_bits, p_bits, xp):
        heads, t_q, t_k = self.num_heads, self.query_shape[0], self.key_shape[0]
        q_bits = xp.broadcast_to(q_bits, (t_q, heads, self.key_dim))
        k_bits = xp.broadcast_to(k_bits, (t_k, heads, self.key_dim))
        v_bits = xp.broadcast_to(v_bits, (t_k, heads, self.value_dim))
        p_bits = xp.broadcast_to(p_bits, (heads, t_q, t_k))
        # sum_{h,i,j,d} bq[i,h,d] bk[j,h,d] = sum_{h,d} (sum_i bq)(sum_j bk); likewise for P x V.
        scores = xp.sum(xp.sum(q_bits, axis=0) * xp.sum(k_bits, axis=0))
        combine = xp.sum(xp.sum(p_bits, axis=1) * xp.transpose(xp.sum(v_bits, axis=2)))
        return scores + combine

    def ebops_surrogate(self):
        """Projections + score and attention products + softmax products (differentiable bits)."""
        total = self._matmul_ebops(self.q_q.bits_surrogate(), self.k_q.bits_surrogate(), self.v_q.bits_surrogate(),
                                   ops.sum(self.softmax.oq.bits_surrogate()), ops)
        for dense in self.projections():
            total = total + dense.ebops_surrogate()
        return total + self.softmax.ebops_surrogate()

    def ebops_exact(self) -> int:
        widths = [np.maximum(q.fixed_format().width, 0).astype(np.int64) for q in (self.q_q, self.k_q, self.v_q)]
        p_width = int(np.max(self.softmax.oq.fixed_format().width))
        total = int(self._matmul_ebops(*widths, max(p_width, 0), np))
        return total + sum(dense.ebops_exact() for dense in self.projections()) + self.softmax.ebops_exact()

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads, key_dim=self.key_dim, value_dim=self.value_dim, dropout=self.dropout,
            use_bias=self.use_bias, output_shape=self.output_dim,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            score_quantizer=self.score_quantizer_config, value_quantizer=self.value_quantizer_config,
            softmax=self.softmax_config, beta0=self.beta0, **self.quantizer_configs)
        return config
