"""HQuantize: quantizes the network input (or any tensor) with trainable per-element bits."""

from __future__ import annotations

import keras

from ..quantizers.dtype_policy import check_exact_dtype_policy
from ..quantizers.hgq import ActivationQuantizer

DEFAULT_HQUANTIZE = {"granularity": "per-element", "init_f": 6.0, "rounding": "RND", "overflow": "SAT"}


@keras.saving.register_keras_serializable(package="hgq_chip")
class HQuantize(keras.layers.Layer):
    """A standalone activation quantizer; as the first layer it fixes the input format.

    It defaults to SAT overflow: inputs beyond the calibrated range clip instead of wrapping.

    Args: ``quantizer``, :class:`~hgq_chip.quantizers.ActivationQuantizer` arguments merged
    over ``DEFAULT_HQUANTIZE``; Keras layer arguments (``name``, ``dtype``, ...).
    Input shape: ``(batch, *features)``; output shape: the same (``compute_output_shape`` is the
    identity). No EBOPs (no multiplication). Raises ValueError for bad quantizer arguments and
    :class:`~hgq_chip.errors.UnsupportedConfigurationError` for a dtype policy that does not
    compute in float32/float64 (e.g. ``mixed_float16``).
    """

    def __init__(self, quantizer=None, **kwargs):
        super().__init__(**kwargs)
        check_exact_dtype_policy(self)
        self.quantizer_config = dict(DEFAULT_HQUANTIZE)
        self.quantizer_config.update(quantizer or {})
        self.q = ActivationQuantizer(name="q", dtype=self.dtype_policy, **self.quantizer_config)

    def build(self, input_shape):
        self.q.build(input_shape)

    def call(self, inputs, training=None):
        return self.q(inputs, training=training)

    def quantizers(self):
        return [self.q]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["quantizer"] = self.quantizer_config
        return config
