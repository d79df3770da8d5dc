"""HGQ quantizers: a trainable fractional bit-width per weight or activation element.

Source: C. Sun et al., "HGQ: High Granularity Quantization for Real-time Neural Networks on
FPGAs", arXiv:2405.00645 (the surrogate gradient and the per-element bit-widths).
Forward uses round(f); the surrogate gradient d(x_q)/d(f) = -ln2 * (x_q - x) trains f.
Weights take sign and integer bits from their own quantized values, so they never
overflow; activations take them from ranges recorded in training or by ``calibrate``.

Notation (``fixed/format.py``): k sign bit (0/1), i integer bits, f fractional bits, all in
bits; a value's width is k + i + f and its step 2**-f. ``f`` is a float variable of the
granularity's shape (``Granularity.variable_shape``: the tensor's shape per element, ones on
the reduced axes per channel/layer), broadcast against the tensor.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np
from keras import ops

from ..fixed.format import ArrayFormat
from ..fixed.minimal import integer_bits
from ..fixed.modes import Overflow, Rounding
from ..fixed.quantize_np import quantize as quantize_np
from ..fixed.quantize_np import round_scaled as round_scaled_np
from ..fixed.quantize_ops import codes_to_values, pow2, round_scaled
from .dtype_policy import check_exact_dtype_policy
from .granularity import Granularity
from .ranges import RecordedRangeMixin
from .surrogate import (
    integer_bits_from_range,
    round_to_bits_trainable,
    width_from_range,
    width_surrogate,
    with_quantization_gradient,
)


class _FractionalBitsQuantizer(keras.layers.Layer):
    """Shared parts: the f variable, its granularity and the rounding mode.

    Raises ValueError for an unknown granularity or rounding name and
    :class:`~hgq_chip.errors.UnsupportedConfigurationError` for a dtype policy that does not
    compute in float32/float64 (``quantizers/dtype_policy.py``).
    """

    def __init__(self, granularity="per-element", init_f=6.0, rounding="RND", trainable_f=True, **kwargs):
        super().__init__(**kwargs)
        check_exact_dtype_policy(self)
        self.granularity = Granularity.parse(granularity)
        self.init_f = float(init_f)
        self.rounding = Rounding.parse(rounding)
        self.trainable_f = bool(trainable_f)

    def _add_f(self, tensor_shape):
        self.f = self.add_weight(
            name="f",
            shape=self.granularity.variable_shape(tensor_shape),
            initializer=keras.initializers.Constant(self.init_f),
            trainable=self.trainable_f,
        )

    def rounded_f(self) -> np.ndarray:
        return np.round(np.asarray(self.f.numpy(), dtype=np.float64))

    def get_config(self):
        config = super().get_config()
        config.update(
            granularity=self.granularity.value,
            init_f=self.init_f,
            rounding=self.rounding.value,
            trainable_f=self.trainable_f,
        )
        return config


@keras.saving.register_keras_serializable(package="hgq_chip")
class WeightQuantizer(_FractionalBitsQuantizer):
    """Rounds each weight to its own number of fractional bits; never overflows.

    Args: ``granularity`` ("per-element", "per-channel", "per-layer"), ``init_f`` (bits),
    ``rounding`` ("RND", "TRN", "RND_CONV"), ``trainable_f``. ``call(w)`` takes the weight tensor
    (any shape, no batch axis) and returns it quantized, same shape and dtype.
    """

    def build(self, weight_shape):
        self._add_f(weight_shape)

    def call(self, w):
        return round_to_bits_trainable(w, self.f, self.rounding)

    def bits_surrogate(self, w):
        """Differentiable bit count per weight: its exact width k + i + f in value (k and i of
        the *quantized* weight, 0 for a weight quantized to 0, as ``fixed_format``), gradient 1
        w.r.t. f where the width is > 0.

        k and i come from the quantized weight, not the float one: from the float weight, a
        weight in [2**-f / 2, 2**-f) (quantized to one step, 1 bit) would count 0 bits and get
        no pressure, and such 1-step weights are most of the nonzero weights at the cheap end
        of the front (HGQ's EBOPs term must see what ``ebops`` counts).
        """
        w = ops.stop_gradient(w)
        return width_surrogate(width_from_range(w, w, ops.stop_gradient(ops.round(self.f)), self.rounding), self.f)

    def quantized(self, w) -> np.ndarray:
        """The quantized weights in NumPy, exactly as ``call`` computes them."""
        f = self.rounded_f()
        w = np.asarray(w, dtype=np.float64)
        return round_scaled_np(w * 2.0**f, self.rounding) / 2.0**f

    def fixed_format(self, w) -> ArrayFormat:
        """Per-weight exact formats; weights quantized to 0 get width 0 (pruned)."""
        q = self.quantized(w)
        f = np.broadcast_to(self.rounded_f(), q.shape).astype(np.int64)
        k, i = integer_bits(q, f)
        return ArrayFormat(k, i, f, self.rounding, Overflow.WRAP)


@keras.saving.register_keras_serializable(package="hgq_chip")
class ActivationQuantizer(RecordedRangeMixin, _FractionalBitsQuantizer):
    """Quantizes activations with per-element (or per-channel/layer) fractional bits.

    Integer bits and sign come from the recorded range [range_lo, range_hi]; in
    training only rounding applies (ranges are still moving), at inference the
    overflow mode applies too, exactly as the firmware's cast does: the inference path is
    :func:`hgq_chip.fixed.quantize_ops.quantize`, the op checked against NumPy and ap_fixed.

    Input shape: ``(batch, *features)``; output: the same shape and dtype. ``f``, ``range_lo``
    and ``range_hi`` have the granularity's variable shape (no batch axis). Args as
    :class:`WeightQuantizer`, plus ``overflow`` ("WRAP", "SAT", "SAT_SYM"). Raises as
    ``_FractionalBitsQuantizer``.
    """

    def __init__(self, granularity="per-element", init_f=6.0, rounding="RND", overflow="WRAP", trainable_f=True, **kwargs):
        super().__init__(granularity, init_f, rounding, trainable_f, **kwargs)
        self.overflow = Overflow.parse(overflow)
        # Set by ``calibrate``, which calls the model eagerly so this flag is read on every call.
        self.calibrating = False

    def build(self, input_shape):
        shape = tuple(input_shape[1:])
        self._add_f(shape)
        var_shape = self.f.shape
        self._reduce_axes = tuple(
            [0] + [a + 1 for a, (d, v) in enumerate(zip(shape, var_shape)) if v == 1 and d != 1]
        )
        self._add_range_variables(var_shape)

    def record_range(self, x):
        lo = ops.min(x, axis=self._reduce_axes, keepdims=True)[0]
        hi = ops.max(x, axis=self._reduce_axes, keepdims=True)[0]
        self._merge_range(ops.reshape(lo, self.range_lo.shape), ops.reshape(hi, self.range_hi.shape))

    def call(self, x, training=None):
        if training or self.calibrating:
            self.record_range(ops.stop_gradient(x))
        if training:
            return round_to_bits_trainable(x, self.f, self.rounding)
        q = self._quantize_inference(x, ops.stop_gradient(ops.round(self.f)))
        return with_quantization_gradient(x, q, self.f)

    def _quantize_inference(self, x, f_value):
        """The firmware's cast: :func:`hgq_chip.fixed.quantize_ops.quantize` (the op the three-way
        grid checks against NumPy and ap_fixed; its two halves, the rounded codes and
        ``codes_to_values``, computed once here) with k and i from the recorded range; elements
        whose range was never recorded are only rounded (``round_to_bits``: the same codes / scale)."""
        x = ops.convert_to_tensor(x)
        if "float" not in str(x.dtype):  # as quantize_ops.quantize does
            x = ops.cast(x, "float32")
        f_value = ops.cast(f_value, x.dtype)
        scale = pow2(f_value)
        k, i = integer_bits_from_range(self.range_lo, self.range_hi, f_value, self.rounding, scale=scale)
        m = round_scaled(x * scale, self.rounding)
        q = codes_to_values(m, k, i + f_value, scale, self.overflow)
        return ops.where(self.range_seen > 0, q, m / scale)

    def refresh_after_load(self, owner) -> None:
        """Have ``owner.refresh_tables()`` run after this quantizer's variables are loaded
        (``keras.saving.load_model``, ``load_weights``): the owner's function tables derive from
        them (``layers/tables.py``). Held by weak reference, outside Keras' tracking."""
        owners = getattr(self, "_table_owners", ()) + (weakref.ref(owner),)
        object.__setattr__(self, "_table_owners", owners)

    def load_own_variables(self, store):
        super().load_own_variables(store)
        for reference in getattr(self, "_table_owners", ()):
            owner = reference()
            if owner is not None:
                owner.refresh_tables()

    def bits_surrogate(self):
        """Differentiable bit count per element: its exact width k + i + f from the recorded range
        (0 where the range rounds to 0), gradient 1 w.r.t. f where the width is > 0."""
        width = width_from_range(self.range_lo, self.range_hi, ops.stop_gradient(ops.round(self.f)), self.rounding)
        return width_surrogate(width, self.f)

    @property
    def calibrated(self) -> bool:
        return self.range_recorded

    def fixed_format(self) -> ArrayFormat:
        """Exact per-element formats (k, i, f in bits) from the recorded range (shape of the f variable)."""
        f = self.rounded_f().astype(np.int64)
        scale = 2.0 ** f.astype(np.float64)
        lo = round_scaled_np(np.asarray(self.range_lo.numpy(), np.float64) * scale, self.rounding) / scale
        hi = round_scaled_np(np.asarray(self.range_hi.numpy(), np.float64) * scale, self.rounding) / scale
        k_lo, i_lo = integer_bits(lo, f)
        k_hi, i_hi = integer_bits(hi, f)
        return ArrayFormat(np.maximum(k_lo, k_hi), np.maximum(i_lo, i_hi), f, self.rounding, self.overflow)

    def quantize_np(self, x) -> np.ndarray:
        """NumPy reference of inference-time quantization (batch axis first)."""
        fmt = self.fixed_format()
        return quantize_np(x, fmt.k, fmt.i, fmt.f, fmt.rounding, fmt.overflow)

    def get_config(self):
        config = super().get_config()
        config.update(overflow=self.overflow.value)
        return config
