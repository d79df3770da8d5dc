"""HLayerNormalization: a layer normalization whose Keras forward pass is the firmware's computation.

Over the last axis, per row of ``n`` elements (``firmware_templates/nnet_hgq_layernorm.h``)::

    x = iq(inputs)                                  input quantizer (any granularity)
    m = c * sum(x)                                  exact; c = 1/n rounded to ``mean_factor_bits``
                                                    significant bits (a constant; exact for any n)
    d = diff_q(x - m)                               x - mean, trained format
    v = var_q(sum(d * d))                           n x the variance, trained format: the table's index
    r = rsqrt_q(1 / sqrt(c * v + epsilon))          rsqrt table (c and epsilon inside the table)
    z = norm_q(d * r)                               the normalized value, trained format
    y = oq(z * gamma_q + beta_q)                    per-element trained gamma/beta bit-widths

Every step besides the named quantizers is exact in float32 or float64 (``convert`` refuses
formats where it is not), so the converter's firmware computes the same bits. The variance's
1/n lives in the table (``c * v`` in NumPy float64, exact), so the sum of squares needs no
product (float32 could not hold sum x c exactly for typical widths). ``1/sqrt`` is a
table as in :class:`~hgq_chip.layers.HSoftmax` (``layers/tables.py``): NumPy float64 at the
exact index value rounded to float32, gathered with ``keras.ops.take``, so TensorFlow, JAX and
PyTorch agree; training uses the backend's ``1/sqrt`` as the gradient (a surrogate) and the
quantizers' straight-through gradients. ``c`` is the same quantized constant in Keras and in
the firmware, so the mean differs from the true mean by at most a relative 2**-mean_factor_bits
(none when n is a power of two); gamma absorbs the difference in training.

EBOPs (bits x bits per multiplication, HGQ's convention): per row, the constant product of the
sum by ``c``, ``n`` squares d*d, ``n`` products d*r, and ``n`` products z*gamma
(per-element gamma bit-widths; none without ``scale``).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from ..errors import UnsupportedLayerError
from ..quantizers.dtype_policy import check_exact_dtype_policy
from ..quantizers.granularity import Granularity
from ..quantizers.hgq import ActivationQuantizer, WeightQuantizer
from .base import merged_config
from .tables import DEFAULT_INTEGER_BITS, CodeTable, choose_grid, with_surrogate_gradient

DEFAULT_LN_INPUT_QUANTIZER = {"granularity": "per-layer", "init_f": 4.0, "rounding": "RND", "overflow": "SAT"}
DEFAULT_DIFF_QUANTIZER = {"granularity": "per-layer", "init_f": 4.0, "rounding": "RND", "overflow": "SAT"}
DEFAULT_VARIANCE_QUANTIZER = {"granularity": "per-layer", "init_f": 4.0, "rounding": "RND", "overflow": "SAT"}
DEFAULT_RSQRT_QUANTIZER = {"granularity": "per-layer", "init_f": 6.0, "rounding": "RND", "overflow": "SAT"}
DEFAULT_NORM_QUANTIZER = {"granularity": "per-layer", "init_f": 5.0, "rounding": "RND", "overflow": "SAT"}
DEFAULT_LN_OUTPUT_QUANTIZER = {"granularity": "per-layer", "init_f": 5.0, "rounding": "RND", "overflow": "SAT"}
DEFAULT_GAMMA_QUANTIZER = {"granularity": "per-element", "init_f": 6.0, "rounding": "RND"}
DEFAULT_BETA_QUANTIZER = {"granularity": "per-element", "init_f": 6.0, "rounding": "RND"}
# Significant bits of the quantized 1/n (exact when n is a power of two).
DEFAULT_MEAN_FACTOR_BITS = 8

# Per-layer quantizers (attribute, constructor argument, defaults): one cast or table per tensor.
STEP_QUANTIZERS = (
    ("diff_q", "diff_quantizer", DEFAULT_DIFF_QUANTIZER),
    ("var_q", "variance_quantizer", DEFAULT_VARIANCE_QUANTIZER),
    ("rsqrt_q", "rsqrt_quantizer", DEFAULT_RSQRT_QUANTIZER),
    ("norm_q", "normalized_quantizer", DEFAULT_NORM_QUANTIZER),
    ("oq", "output_quantizer", DEFAULT_LN_OUTPUT_QUANTIZER),
)


def mean_factor(n: int, bits: int) -> tuple[int, int]:
    """1/n rounded to ``bits`` significant bits as (code, F): c = code * 2**-F, code odd or 1
    (trailing zeros dropped), so c is exact in float32 for bits <= 24."""
    frac = bits - 1 + max(int(n - 1).bit_length(), 0)
    code = int(round(2.0**frac / n))
    while code and code % 2 == 0 and frac > 0:
        code, frac = code // 2, frac - 1
    return code, frac


def _refuse(layer_name: str, what: str, remedy: str):
    return UnsupportedLayerError(f"{layer_name}: HLayerNormalization {what}; {remedy}")


@keras.saving.register_keras_serializable(package="hgq_chip")
class HLayerNormalization(keras.layers.Layer):
    """Layer normalization over the last axis with exact sums, a quantized 1/n and an rsqrt table.

    Args (Keras ``LayerNormalization``'s): ``axis`` (-1 or the last axis only), ``epsilon`` (> 0,
    inside the table), ``center``, ``scale``, ``beta_*``/``gamma_*`` initializers, regularizers
    and constraints; ``rms_scaling`` must stay False. hgq_chip's: ``input_quantizer`` (any
    granularity), ``diff_quantizer`` (x - mean), ``variance_quantizer`` (the row's sum of squares, n x the variance:
    the table's index),
    ``rsqrt_quantizer`` (the table's output), ``normalized_quantizer`` and ``output_quantizer``
    (each per-layer), ``gamma_quantizer``/``beta_quantizer`` (WeightQuantizer arguments,
    per-element by default), ``mean_factor_bits`` (significant bits of the quantized 1/n,
    1-24; default 8), ``beta0`` (initial weight of this layer's EBOPs in the loss).

    Input shape ``(batch, ..., n)``; output: the same. Raises
    :class:`~hgq_chip.errors.UnsupportedLayerError` (naming the layer and the remedy) for an axis
    other than the last, ``rms_scaling=True``, a step quantizer that is not per-layer or a bad
    ``mean_factor_bits``/``epsilon``, and
    :class:`~hgq_chip.errors.UnsupportedConfigurationError` for a dtype policy that does not
    compute in float32/float64.
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None,
                 beta_constraint=None, gamma_constraint=None, input_quantizer=None, diff_quantizer=None,
                 variance_quantizer=None, rsqrt_quantizer=None, normalized_quantizer=None, output_quantizer=None,
                 gamma_quantizer=None, beta_quantizer=None, mean_factor_bits=DEFAULT_MEAN_FACTOR_BITS, beta0=0.0,
                 **kwargs):
        super().__init__(**kwargs)
        check_exact_dtype_policy(self)
        if isinstance(axis, (list, tuple)):
            axis = axis[0] if len(axis) == 1 else axis
        if not isinstance(axis, int):
            raise _refuse(self.name, f"normalizes one axis, the last; got axis={axis!r}",
                          "move the axis last with keras.layers.Permute, or reshape to merge the axes into the last")
        self.axis = int(axis)
        if rms_scaling:
            raise _refuse(self.name, "has no rms_scaling", "use rms_scaling=False (the mean is subtracted)")
        self.epsilon = float(epsilon)
        if not (math.isfinite(self.epsilon) and self.epsilon > 0):
            raise _refuse(self.name, f"needs epsilon > 0, got {epsilon!r}", "give a positive epsilon (Keras: 1e-3)")
        if isinstance(mean_factor_bits, bool) or not float(mean_factor_bits).is_integer() \
                or not 1 <= int(mean_factor_bits) <= 24:
            raise _refuse(self.name, f"takes a whole number of mean_factor_bits in 1..24, got {mean_factor_bits!r}",
                          f"give {DEFAULT_MEAN_FACTOR_BITS} (the default) or another whole number in range")
        self.mean_factor_bits = int(mean_factor_bits)
        self.center, self.scale, self.beta0 = bool(center), bool(scale), float(beta0)
        self.initializers = {"beta": keras.initializers.get(beta_initializer),
                             "gamma": keras.initializers.get(gamma_initializer)}
        self.regularizers = {"beta": keras.regularizers.get(beta_regularizer),
                             "gamma": keras.regularizers.get(gamma_regularizer)}
        self.constraints = {"beta": keras.constraints.get(beta_constraint),
                            "gamma": keras.constraints.get(gamma_constraint)}
        self.input_quantizer_config = merged_config(DEFAULT_LN_INPUT_QUANTIZER, input_quantizer)
        self.iq = ActivationQuantizer(name="iq", dtype=self.dtype_policy, **self.input_quantizer_config)
        given = {"diff_quantizer": diff_quantizer, "variance_quantizer": variance_quantizer,
                 "rsqrt_quantizer": rsqrt_quantizer, "normalized_quantizer": normalized_quantizer,
                 "output_quantizer": output_quantizer}
        self.step_quantizer_configs = {}
        for attribute, argument, defaults in STEP_QUANTIZERS:
            config = merged_config(defaults, given[argument])
            if Granularity.parse(config.get("granularity", "per-layer")) is not Granularity.LAYER:
                raise _refuse(self.name, f"casts {argument} once per tensor, got granularity {config['granularity']!r}",
                              f"give {argument} granularity='per-layer'")
            self.step_quantizer_configs[argument] = config
            setattr(self, attribute, ActivationQuantizer(name=attribute, dtype=self.dtype_policy, **config))
        self.gamma_quantizer_config = merged_config(DEFAULT_GAMMA_QUANTIZER, gamma_quantizer)
        self.beta_quantizer_config = merged_config(DEFAULT_BETA_QUANTIZER, beta_quantizer)
        self.gq = WeightQuantizer(name="gq", dtype=self.dtype_policy, **self.gamma_quantizer_config)
        self.bq = WeightQuantizer(name="bq", dtype=self.dtype_policy, **self.beta_quantizer_config)

    def build(self, input_shape):
        rank = len(input_shape)
        if self.axis not in (-1, rank - 1):
            raise _refuse(self.name, f"normalizes the last axis only, got axis={self.axis}",
                          "move the axis last with keras.layers.Permute, or use axis=-1")
        self.element_shape = tuple(int(d) for d in input_shape[1:])
        n = self.element_shape[-1]
        row_shape = tuple(input_shape[:-1]) + (1,)
        self.factor_code, self.factor_frac = mean_factor(n, self.mean_factor_bits)
        self.iq.build(input_shape)
        for quantizer, shape in ((self.diff_q, input_shape), (self.var_q, row_shape), (self.rsqrt_q, row_shape),
                                 (self.norm_q, input_shape), (self.oq, input_shape)):
            quantizer.build(shape)
        self.ln_gamma = self.ln_beta = None
        for key, wanted, quantizer in (("gamma", self.scale, self.gq), ("beta", self.center, self.bq)):
            if wanted:
                setattr(self, f"ln_{key}", self.add_weight(
                    name=f"ln_{key}", shape=(n,), initializer=self.initializers[key],
                    regularizer=self.regularizers[key], constraint=self.constraints[key]))
                quantizer.build((n,))
        self.beta = self.add_weight(name="beta", shape=(), initializer=keras.initializers.Constant(self.beta0),
                                    trainable=False)
        self.rsqrt_lookup = CodeTable(self, "rsqrt", self.rsqrt_function)
        self.var_q.refresh_after_load(self)
        self.refresh_tables()

    # ---- the rsqrt table (layers/tables.py) ---------------------------------------------------

    @property
    def factor(self) -> float:
        """The quantized 1/n: ``factor_code * 2**-factor_frac`` (exact in float32)."""
        return self.factor_code * 2.0**-self.factor_frac

    def rsqrt_function(self, v: np.ndarray) -> np.ndarray:
        """1 / sqrt(c * max(v, 0) + epsilon) in NumPy float64 (the table's values before float32;
        ``v`` is the row's sum of squares, ``c`` the quantized 1/n)."""
        return 1.0 / np.sqrt(np.maximum(v, 0.0) * self.factor + self.epsilon)

    def table_grid(self) -> tuple[int, int]:
        """(F, lowest code) of the rsqrt table, covering ``var_q``'s format (``tables.choose_grid``)."""
        f = int(np.max(self.var_q.rounded_f()))
        hi = float(self.var_q.fixed_format().covering().max) if self.var_q.range_recorded else 0.0
        return choose_grid(f, 0.0, max(hi, 2.0**DEFAULT_INTEGER_BITS))

    def refresh_tables(self) -> int:
        """Recompute the rsqrt table for the current format of ``var_q``; 1 if it changed."""
        if getattr(self, "rsqrt_lookup", None) is None:
            return 0
        return int(self.rsqrt_lookup.refresh(*self.table_grid()))

    def rsqrt_table(self, index_values) -> np.ndarray:
        """``rsqrt_q`` of the table's entries at each value of ``var_q`` (1-D float64 in and out):
        what the firmware's table holds, computed with the layer's own quantizer."""
        values = np.asarray(index_values, np.float64)
        if not np.array_equal(values.astype(np.float32), values):
            raise UnsupportedLayerError(f"{self.name}: table index values must be exact float32 values")
        self.refresh_tables()
        shaped = self.rsqrt_lookup.entries(values).reshape((-1,) + (1,) * len(self.element_shape))
        out = self.rsqrt_q(ops.convert_to_tensor(shaped.astype(self.compute_dtype)), training=False)
        return np.asarray(ops.convert_to_numpy(out), np.float64).reshape(-1)

    def save_own_variables(self, store):
        """gamma, beta (when present) and ``beta``; the table is derived from ``var_q``."""
        for index, variable in enumerate(self._saved_variables()):
            store[str(index)] = variable

    def load_own_variables(self, store):
        expected = self._saved_variables()
        if len(store.keys()) != len(expected):
            raise ValueError(f"{self.name}: expected {len(expected)} saved variables, found {len(store.keys())}")
        for index, variable in enumerate(expected):
            variable.assign(store[str(index)])

    def _saved_variables(self):
        return [v for v in (self.ln_gamma, self.ln_beta) if v is not None] + [self.beta]

    def compute_output_shape(self, input_shape):
        return input_shape

    # ---- the computation ------------------------------------------------------------------------

    def gamma_beta(self):
        """(quantized gamma or None, quantized beta or None), shape ``(n,)``."""
        gamma = self.gq(self.ln_gamma) if self.scale else None
        beta = self.bq(self.ln_beta) if self.center else None
        return gamma, beta

    def call(self, inputs, training=None):
        x = self.iq(inputs, training=training)
        c = ops.cast(self.factor, x.dtype)
        mean = ops.sum(x, axis=-1, keepdims=True) * c
        d = self.diff_q(x - mean, training=training)
        v = self.var_q(ops.sum(d * d, axis=-1, keepdims=True), training=training)
        v_safe = ops.maximum(v, ops.zeros_like(v)) * c
        surrogate = 1.0 / ops.sqrt(v_safe + ops.cast(self.epsilon, v.dtype))
        r = self.rsqrt_q(with_surrogate_gradient(self.rsqrt_lookup.lookup(v), surrogate), training=training)
        z = self.norm_q(d * r, training=training)
        gamma, beta = self.gamma_beta()
        y = z * gamma if gamma is not None else z
        if beta is not None:
            y = y + beta
        y = self.oq(y, training=training)
        if training:
            cost = ops.convert_to_tensor(self.ebops_surrogate())
            self.add_loss(ops.cast(self.beta, cost.dtype) * cost)
        return y

    def quantizers(self):
        found = [self.iq, self.diff_q, self.var_q, self.rsqrt_q, self.norm_q, self.oq]
        return found + [q for q, on in ((self.gq, self.scale), (self.bq, self.center)) if on]

    # ---- EBOPs ----------------------------------------------------------------------------------

    def rows(self) -> int:
        return int(math.prod(self.element_shape[:-1]))

    def ebops_surrogate(self):
        """Per row: n squares and n products d*r (bits(d) x bits(d), bits(d) x bits(r)), n products
        z*gamma (bits(z) x bits(gamma_j)), and the sum's product by c (its width from x's bits plus
        log2 n, times bits(c))."""
        n = self.element_shape[-1]
        bd, br, bz = (ops.sum(q.bits_surrogate()) for q in (self.diff_q, self.rsqrt_q, self.norm_q))
        bx = ops.max(self.iq.bits_surrogate())
        log_n, bc = float(max(n - 1, 0).bit_length()), float(self.factor_code.bit_length())
        per_row = n * bd * bd + n * bd * br + (bx + log_n) * bc
        if self.scale:
            per_row = per_row + bz * ops.sum(self.gq.bits_surrogate(self.ln_gamma))
        return per_row * float(self.rows())

    def ebops_exact(self) -> int:
        """The products ``ebops_surrogate`` counts, with exact widths (bits)."""
        n = self.element_shape[-1]
        width = {q.name: max(int(np.max(q.fixed_format().width)), 0)
                 for q in (self.iq, self.diff_q, self.rsqrt_q, self.norm_q)}
        log_n, bc = max(n - 1, 0).bit_length(), self.factor_code.bit_length()
        bd = width["diff_q"]
        per_row = n * bd * bd + n * bd * width["rsqrt_q"] + (width["iq"] + log_n) * bc
        if self.scale:
            gamma = np.asarray(ops.convert_to_numpy(self.ln_gamma), np.float64)
            per_row += width["norm_q"] * int(np.sum(np.maximum(self.gq.fixed_format(gamma).width, 0)))
        return int(per_row * self.rows())

    def get_config(self):
        config = super().get_config()
        config.update(
            axis=self.axis, epsilon=self.epsilon, center=self.center, scale=self.scale,
            beta_initializer=keras.initializers.serialize(self.initializers["beta"]),
            gamma_initializer=keras.initializers.serialize(self.initializers["gamma"]),
            beta_regularizer=keras.regularizers.serialize(self.regularizers["beta"]),
            gamma_regularizer=keras.regularizers.serialize(self.regularizers["gamma"]),
            beta_constraint=keras.constraints.serialize(self.constraints["beta"]),
            gamma_constraint=keras.constraints.serialize(self.constraints["gamma"]),
            input_quantizer=self.input_quantizer_config, gamma_quantizer=self.gamma_quantizer_config,
            beta_quantizer=self.beta_quantizer_config, mean_factor_bits=self.mean_factor_bits, beta0=self.beta0,
            **self.step_quantizer_configs)
        return config
