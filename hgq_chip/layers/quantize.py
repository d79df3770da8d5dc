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
