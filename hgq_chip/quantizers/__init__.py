"""Trainable quantizers: pure functions in ``surrogate`` plus small serializable layers."""

from .granularity import Granularity
from .hgq import ActivationQuantizer, WeightQuantizer

__all__ = ["ActivationQuantizer", "Granularity", "WeightQuantizer"]
