"""Recorded activation ranges, shared by the quantizers whose integer bits come from data."""

from __future__ import annotations

import keras
from keras import ops


class RecordedRangeMixin:
    """Mixed into a quantizer layer: the min/max of what it saw in training or ``calibrate``.

    ``range_seen`` is 0 until the first record, so a reset quantizer forgets its old range
    instead of merging with zeros.
    """

    def _add_range_variables(self, shape):
        zeros = keras.initializers.Zeros()
        self.range_lo = self.add_weight(name="range_lo", shape=shape, initializer=zeros, trainable=False)
        self.range_hi = self.add_weight(name="range_hi", shape=shape, initializer=zeros, trainable=False)
        self.range_seen = self.add_weight(name="range_seen", shape=(), initializer=zeros, trainable=False)

    def _merge_range(self, lo, hi):
        seen = self.range_seen > 0
        self.range_lo.assign(ops.where(seen, ops.minimum(self.range_lo, lo), lo))
        self.range_hi.assign(ops.where(seen, ops.maximum(self.range_hi, hi), hi))
        self.range_seen.assign(1.0)

    def reset_range(self):
        for var in (self.range_lo, self.range_hi, self.range_seen):
            var.assign(ops.zeros(var.shape, var.dtype))

    @property
    def range_recorded(self) -> bool:
        return bool(self.range_seen.numpy() > 0)
