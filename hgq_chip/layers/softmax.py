"""HSoftmax: a softmax whose Keras forward pass is the firmware's table computation, step for step.

Over the last axis, per row of ``n`` elements (``firmware_templates/nnet_hgq_softmax.h``)::

    x   = iq(inputs)                                 input quantizer (the exp table's index)
    t   = max(x) - x            (stable=True)        exact; or t = x (stable=False)
    e   = exp_q(exp(-c t))      (or exp_q(exp(c t))) exp table: entries from this very op (c: ``scale``)
    s   = sum(e)                                     exact (the converter types the sum)
    r   = inv_q(1 / max(sum_q(s), 2**-f_sum))        inverse table indexed by the quantized sum
    y   = oq(e * r)                                  exact product, then the output quantizer

``exp`` and ``1/x`` are evaluated once in NumPy float64 at the exact index value and rounded to
float32 (also in a float64 model), as :class:`~hgq_chip.layers.HActivation` does: the layer
holds both as tables (``layers/tables.py``) and its forward pass (inference, training,
calibration) gathers from them by the index's code, so TensorFlow, JAX (with or without x64)
and PyTorch give the same bits (their own exp kernels differ in the last bit; issue 33). The
converter fills the firmware's tables from the same NumPy functions (``exp_table`` /
``inverse_table``) on every value of the table's index type, so firmware and Keras agree by
construction; the other steps are exact in float32 (``convert`` refuses formats where they
are not). In training the gradient is that of the backend's exp and 1/x (a surrogate).

Training: the quantizers pass gradients straight through (HGQ's surrogate), so the gradient is
that of the real softmax on the quantized values; ``max`` is a constant for the gradient
(softmax does not depend on a shift). EBOPs: the ``n`` products ``e * r`` of every row, each
bits(exp_q) x bits(inv_q) (two variable operands; the tables themselves have no EBOPs).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from ..errors import UnsupportedLayerError
from ..fixed.quantize_ops import pow2
from ..quantizers.dtype_policy import check_exact_dtype_policy
from ..quantizers.granularity import Granularity
from ..quantizers.hgq import ActivationQuantizer
from .base import merged_config
from .tables import DEFAULT_INTEGER_BITS, CodeTable, choose_grid, with_surrogate_gradient

# The table index saturates: wrapping would map a large input onto a small one.
DEFAULT_SOFTMAX_INPUT_QUANTIZER = {"granularity": "per-layer", "init_f": 3.0, "rounding": "RND", "overflow": "SAT"}
# exp values (<= 1 in the stable form), their row sum, 1/sum and the output: one format per tensor.
DEFAULT_EXP_QUANTIZER = {"granularity": "per-layer", "init_f": 8.0, "rounding": "RND", "overflow": "SAT"}
DEFAULT_SUM_QUANTIZER = {"granularity": "per-layer", "init_f": 4.0, "rounding": "RND", "overflow": "SAT"}
DEFAULT_INVERSE_QUANTIZER = {"granularity": "per-layer", "init_f": 8.0, "rounding": "RND", "overflow": "SAT"}
DEFAULT_SOFTMAX_OUTPUT_QUANTIZER = {"granularity": "per-layer", "init_f": 8.0, "rounding": "RND", "overflow": "SAT"}

# exp(64) ~ 2**92 is finite in float32 and above the largest value of any exp_q format that Keras
# holds exactly (< 2**53, even in float64; convert refuses wider ones), so clipping the argument
# there changes no saturated value (SAT/SAT_SYM) and keeps inf out of the recorded ranges. The
# tables are computed with the clip too, so the firmware matches Keras in every overflow mode.
EXP_ARGUMENT_MAX = 64.0

# Quantizers (attribute, constructor argument, defaults) besides the input quantizer; each must
# be per-layer: one table or one cast for the whole tensor.
TABLE_QUANTIZERS = (
    ("exp_q", "exp_quantizer", DEFAULT_EXP_QUANTIZER),
    ("sum_q", "sum_quantizer", DEFAULT_SUM_QUANTIZER),
    ("inv_q", "inverse_quantizer", DEFAULT_INVERSE_QUANTIZER),
    ("oq", "output_quantizer", DEFAULT_SOFTMAX_OUTPUT_QUANTIZER),
)


def reciprocal(s: np.ndarray) -> np.ndarray:
    """1/s in NumPy float64 (the inverse table's values before rounding to float32)."""
    return 1.0 / s


@keras.saving.register_keras_serializable(package="hgq_chip")
class HSoftmax(keras.layers.Layer):
    """Softmax over the last axis computed with an exp table and an inverse table (see module doc).

    Args:
        stable: subtract each row's maximum before the exp table (the table then covers
            ``exp(-t)`` for ``t >= 0``, values in (0, 1]); ``False`` indexes the exp table with
            the quantized input itself.
        axis: only -1 (the last axis).
        input_quantizer: :class:`~hgq_chip.quantizers.ActivationQuantizer` arguments for ``iq``
            (any granularity; the table covers every element's format).
        exp_quantizer, sum_quantizer, inverse_quantizer, output_quantizer: arguments of the
            exp table's output, the sum's cast (the inverse table's index), the inverse table's
            output and the layer's output; each must stay ``granularity="per-layer"``.
        beta0: initial weight of this layer's EBOPs in the loss.
        scale: a constant ``c`` multiplying the exp argument (``softmax(c x)``); it lives inside the
            exp table, so any value is exact (attention's ``1/sqrt(key_dim)``). Default 1.

    Input shape ``(batch, ..., n)``; output: the same. Raises ValueError for ``axis`` other
    than -1 or a table quantizer that is not per-layer, and
    :class:`~hgq_chip.errors.UnsupportedConfigurationError` for a dtype policy that does not
    compute in float32/float64.
    """

    def __init__(self, stable=True, axis=-1, input_quantizer=None, exp_quantizer=None, sum_quantizer=None,
                 inverse_quantizer=None, output_quantizer=None, beta0=0.0, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        check_exact_dtype_policy(self)
        if axis != -1:
            raise ValueError(f"{self.name}: HSoftmax normalises the last axis only (axis=-1), got axis={axis!r}; "
                             "move the axis last with keras.layers.Permute")
        self.stable = bool(stable)
        self.axis = -1
        self.beta0 = float(beta0)
        self.scale = float(scale)
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"{self.name}: scale must be a finite number > 0, got {scale!r}")
        self.input_quantizer_config = merged_config(DEFAULT_SOFTMAX_INPUT_QUANTIZER, input_quantizer)
        self.iq = ActivationQuantizer(name="iq", dtype=self.dtype_policy, **self.input_quantizer_config)
        given = {"exp_quantizer": exp_quantizer, "sum_quantizer": sum_quantizer,
                 "inverse_quantizer": inverse_quantizer, "output_quantizer": output_quantizer}
        self.table_quantizer_configs = {}
        for attribute, argument, defaults in TABLE_QUANTIZERS:
            config = merged_config(defaults, given[argument])
            if Granularity.parse(config.get("granularity", "per-layer")) is not Granularity.LAYER:
                raise ValueError(f"{self.name}: {argument} must be granularity='per-layer' (one table or cast for "
                                 f"the whole tensor), got {config['granularity']!r}")
            self.table_quantizer_configs[argument] = config
            setattr(self, attribute, ActivationQuantizer(name=attribute, dtype=self.dtype_policy, **config))

    def build(self, input_shape):
        self.element_shape = tuple(int(d) for d in input_shape[1:])
        row_shape = tuple(input_shape[:-1]) + (1,)
        self.iq.build(input_shape)
        self.exp_q.build(input_shape)
        self.sum_q.build(row_shape)
        self.inv_q.build(row_shape)
        self.oq.build(input_shape)
        self.beta = self.add_weight(name="beta", shape=(), initializer=keras.initializers.Constant(self.beta0),
                                    trainable=False)
        self.exp_lookup = CodeTable(self, "exp", self.exp_function)
        self.inverse_lookup = CodeTable(self, "inverse", reciprocal)
        self.iq.refresh_after_load(self)
        self.sum_q.refresh_after_load(self)
        self.refresh_tables()

    # ---- the tables (layers/tables.py) ------------------------------------------------------

    def exp_function(self, t: np.ndarray) -> np.ndarray:
        """exp(min(-c t, 64)) (stable) or exp(min(c t, 64)) in NumPy float64 (the exp table's values
        before rounding to float32)."""
        argument = t * self.scale if self.scale != 1.0 else t
        if self.stable:
            argument = -argument
        return np.exp(np.minimum(argument, EXP_ARGUMENT_MAX))

    def table_grids(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(F, lowest code) of the exp and inverse tables, covering the index formats of ``iq``
        (``max(x) - x`` when stable) and ``sum_q`` (``tables.choose_grid``)."""
        f = int(np.max(self.iq.rounded_f()))
        if self.iq.range_recorded:
            fmt = self.iq.fixed_format().covering()
            lo, hi = float(fmt.min), float(fmt.max)
        else:
            lo, hi = -(2.0**DEFAULT_INTEGER_BITS), 2.0**DEFAULT_INTEGER_BITS
        exp_grid = choose_grid(f, 0.0, hi - lo) if self.stable else choose_grid(f, lo, hi)
        f_sum = int(np.max(self.sum_q.rounded_f()))
        hi_sum = float(self.sum_q.fixed_format().covering().max) if self.sum_q.range_recorded else 0.0
        inverse_grid = choose_grid(f_sum, 2.0**-f_sum, max(hi_sum, 2.0**DEFAULT_INTEGER_BITS))
        return exp_grid, inverse_grid

    def refresh_tables(self) -> int:
        """Recompute the tables for the current formats; the number that changed (0-2)."""
        if getattr(self, "exp_lookup", None) is None:  # not built yet
            return 0
        exp_grid, inverse_grid = self.table_grids()
        return int(self.exp_lookup.refresh(*exp_grid)) + int(self.inverse_lookup.refresh(*inverse_grid))

    def save_own_variables(self, store):
        """Only ``beta``: the other own variables are the tables, derived from the quantizers."""
        store["0"] = self.beta

    def load_own_variables(self, store):
        if len(store.keys()) != 1:
            raise ValueError(f"{self.name}: expected 1 saved variable (beta), found {len(store.keys())}")
        self.beta.assign(store["0"])

    def compute_output_shape(self, input_shape):
        return input_shape

    # ---- the computation ------------------------------------------------------------------

    def exp_argument(self, x):
        """The exp table's index value t: ``max(x) - x`` (stable; max as a constant for the
        gradient) or ``x``."""
        if not self.stable:
            return x
        return ops.stop_gradient(ops.max(x, axis=-1, keepdims=True)) - x

    def exp_values(self, t, training=None):
        """``exp_q(exp(-c t))`` (stable) or ``exp_q(exp(c t))``: the exp table's entry at t
        (NumPy float64 rounded to float32), the backend's exp as the gradient."""
        argument = t * self.scale if self.scale != 1.0 else t
        if self.stable:
            argument = -argument
        surrogate = ops.exp(ops.minimum(argument, EXP_ARGUMENT_MAX))
        y = with_surrogate_gradient(self.exp_lookup.lookup(t), surrogate)
        return self.exp_q(y, training=training)

    def inverse_values(self, quantized_sum, training=None):
        """``inv_q(1 / max(s, 2**-f_sum))`` for sums already quantized by ``sum_q`` (a sum that
        rounds to 0 reads the entry of the smallest positive sum): the inverse table's entry
        (1/s in NumPy float64 rounded to float32), the backend's 1/s as the gradient."""
        step = ops.cast(pow2(-ops.stop_gradient(ops.round(self.sum_q.f))), quantized_sum.dtype)
        s = ops.maximum(quantized_sum, step)
        r = with_surrogate_gradient(self.inverse_lookup.lookup(s), 1.0 / s)
        return self.inv_q(r, training=training)

    def call(self, inputs, training=None):
        x = self.iq(inputs, training=training)
        e = self.exp_values(self.exp_argument(x), training=training)
        s = self.sum_q(ops.sum(e, axis=-1, keepdims=True), training=training)
        r = self.inverse_values(s, training=training)
        y = self.oq(e * r, training=training)
        if training:
            surrogate = ops.convert_to_tensor(self.ebops_surrogate())
            self.add_loss(ops.cast(self.beta, surrogate.dtype) * surrogate)
        return y

    def quantizers(self):
        return [self.iq, self.exp_q, self.sum_q, self.inv_q, self.oq]

    # ---- EBOPs ----------------------------------------------------------------------------

    def n_elements(self) -> int:
        return int(math.prod(self.element_shape))

    def ebops_surrogate(self):
        """n products per row of bits(e) x bits(r) (differentiable bit counts)."""
        bits = ops.sum(self.exp_q.bits_surrogate()) * ops.sum(self.inv_q.bits_surrogate())
        return bits * float(self.n_elements())

    def ebops_exact(self) -> int:
        width_e = int(np.max(self.exp_q.fixed_format().width))
        width_r = int(np.max(self.inv_q.fixed_format().width))
        return self.n_elements() * max(width_e, 0) * max(width_r, 0)

    # ---- what the converter uses to build the tables ----------------------------------------

    def _table_call(self, quantizer, entries) -> np.ndarray:
        """``quantizer`` (inference, an exact op) applied to table entries (1-D float64)."""
        shaped = np.asarray(entries, np.float64).reshape((-1,) + (1,) * len(self.element_shape))
        out = quantizer(ops.convert_to_tensor(shaped.astype(self.compute_dtype)), training=False)
        return np.asarray(ops.convert_to_numpy(out), np.float64).reshape(-1)

    @staticmethod
    def _check_index(name, values) -> np.ndarray:
        values = np.asarray(values, np.float64)
        if not np.array_equal(values.astype(np.float32), values):
            raise UnsupportedLayerError(f"{name}: table index values must be exact float32 values")
        return values

    def exp_table(self, index_values) -> np.ndarray:
        """``exp_values`` (inference) at each table index value t (1-D float64 in, 1-D out): the
        exp table's NumPy entries (what the Keras table holds), then ``exp_q``."""
        values = self._check_index(self.name, index_values)
        self.refresh_tables()
        return self._table_call(self.exp_q, self.exp_lookup.entries(values))

    def inverse_table(self, sums) -> np.ndarray:
        """``inverse_values`` (inference) at each value of the quantized sum (1-D in, 1-D out):
        the inverse table's NumPy entries at max(s, 2**-f_sum), then ``inv_q``."""
        values = self._check_index(self.name, sums)
        self.refresh_tables()
        step = 2.0 ** -float(np.max(self.sum_q.rounded_f()))
        return self._table_call(self.inv_q, self.inverse_lookup.entries(np.maximum(values, step)))

    def get_config(self):
        config = super().get_config()
        config.update(stable=self.stable, axis=self.axis, input_quantizer=self.input_quantizer_config,
                      beta0=self.beta0, scale=self.scale, **self.table_quantizer_configs)
        return config
