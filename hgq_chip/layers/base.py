"""What every quantized layer shares: its quantizers, the beta weight of its cost, EBOPs."""

from __future__ import annotations

import keras
from keras import ops

from ..quantizers.dtype_policy import check_exact_dtype_policy
from ..quantizers.hgq import ActivationQuantizer, WeightQuantizer

DEFAULT_INPUT_QUANTIZER = {"granularity": "per-element", "init_f": 6.0, "rounding": "RND", "overflow": "WRAP"}
DEFAULT_KERNEL_QUANTIZER = {"granularity": "per-element", "init_f": 6.0, "rounding": "RND"}
DEFAULT_BIAS_QUANTIZER = {"granularity": "per-element", "init_f": 8.0, "rounding": "RND"}

# Activations whose outputs stay exact fixed-point values when fused into a layer.
EXACT_FUSED_ACTIVATIONS = ("linear", "relu")


def merged_config(defaults: dict, overrides: dict | None) -> dict:
    config = dict(defaults)
    config.update(overrides or {})
    return config


def check_fused_activation(layer_name: str, activation) -> None:
    name = activation if isinstance(activation, str) or activation is None else getattr(activation, "__name__", str(activation))
    if name == "softmax":
        raise ValueError(
            f"{layer_name}: activation 'softmax' is not exact in fixed point; use activation='linear' here and "
            "add an hgq_chip.layers.HSoftmax layer after it (exact exp and inverse tables)"
        )
    if name is not None and name not in EXACT_FUSED_ACTIVATIONS:
        raise ValueError(
            f"{layer_name}: activation {name!r} is not exact in fixed point; use activation='relu' or "
            f"'linear' here and add an HActivation({name!r}) layer after it (it uses an exact table)"
        )


class QuantizedLayerMixin:
    """Mixed into a Keras layer: input/kernel/bias quantizers, ``beta`` and EBOPs.

    Subclasses create their quantizers in ``__init__`` with ``_make_quantizers`` and
    implement ``ebops_surrogate`` (a tensor) and ``ebops_exact`` (an int).
    """

    def _check_keras_options(self):
        """Refuse parent options that would bypass the quantizers or break exactness.

        Raises ValueError (a non-exact fused activation, LoRA, ``quantization_config``) and
        :class:`~hgq_chip.errors.UnsupportedConfigurationError` for a dtype policy that does not
        compute in float32/float64 (``mixed_float16``, ``mixed_bfloat16``, ...).
        """
        check_exact_dtype_policy(self)
        check_fused_activation(self.name, self.activation)
        if getattr(self, "lora_rank", None):
            raise ValueError(f"{self.name}: LoRA is not supported on quantized layers")
        if getattr(self, "quantization_config", None) is not None:
            raise ValueError(
                f"{self.name}: Keras' own quantization_config conflicts with the trainable quantizers; leave it None"
            )

    def _make_quantizers(self, input_quantizer, kernel_quantizer, bias_quantizer, beta0):
        self.input_quantizer_config = merged_config(DEFAULT_INPUT_QUANTIZER, input_quantizer)
        self.kernel_quantizer_config = merged_config(DEFAULT_KERNEL_QUANTIZER, kernel_quantizer)
        self.bias_quantizer_config = merged_config(DEFAULT_BIAS_QUANTIZER, bias_quantizer)
        self.beta0 = float(beta0)
        self.iq = ActivationQuantizer(name="iq", dtype=self.dtype_policy, **self.input_quantizer_config)
        self.kq = WeightQuantizer(name="kq", dtype=self.dtype_policy, **self.kernel_quantizer_config)
        self.bq = WeightQuantizer(name="bq", dtype=self.dtype_policy, **self.bias_quantizer_config)

    def _build_quantizers(self, input_shape, kernel_shape, bias_shape):
        self.iq.build(input_shape)
        self.kq.build(kernel_shape)
        if bias_shape is not None:
            self.bq.build(bias_shape)
        self.beta = self.add_weight(
            name="beta", shape=(), initializer=keras.initializers.Constant(self.beta0), trainable=False
        )

    def call(self, inputs, training=None):
        """activation(q_in(x) (*) q_kernel(W) + q_bias(b)), with ``(*)`` the layer's ``_apply_kernel``."""
        x = self.iq(inputs, training=training)
        y = self._apply_kernel(x, self.kq(self.kernel))
        if self.use_bias:
            y = y + self.bq(self.bias)
        self._add_cost(training)
        return self.activation(y)

    def quantizers(self):
        found = [self.iq, self.kq]
        if self.bq.built:
            found.append(self.bq)
        return found

    def _add_cost(self, training):
        if training:
            self.add_loss(self._weighted_cost(self.ebops_surrogate()))

    def _weighted_cost(self, surrogate):
        """``beta * surrogate`` in the surrogate's dtype (the compute dtype: float32, or float64)."""
        surrogate = ops.convert_to_tensor(surrogate)
        return ops.cast(self.beta, surrogate.dtype) * surrogate

    def _quantizer_config(self) -> dict:
        return {
            "input_quantizer": self.input_quantizer_config,
            "kernel_quantizer": self.kernel_quantizer_config,
            "bias_quantizer": self.bias_quantizer_config,
            "beta0": self.beta0,
        }

    # Keras' Dense/Conv save only kernel and bias (their quantization-mode layout);
    # the generic Layer routine saves every own variable, beta included.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)
