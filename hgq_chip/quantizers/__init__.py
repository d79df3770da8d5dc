"""Trainable quantizers: pure functions in ``surrogate`` plus small serializable layers."""

from .granularity import Granularity
from .hgq import ActivationQuantizer, WeightQuantizer

__all__ = ["ActivationQuantizer", "Granularity", "WeightQuantizer"]

from .asq import ASQActivationQuantizer  # noqa: E402
from .lsq import LSQActivationQuantizer, LSQWeightQuantizer  # noqa: E402
from .post import LogWeightQuantizer  # noqa: E402

__all__ += ["ASQActivationQuantizer", "LSQActivationQuantizer", "LSQWeightQuantizer", "LogWeightQuantizer"]

from .adaqat import AdaQATActivationQuantizer, AdaQATWeightQuantizer  # noqa: E402

__all__ += ["AdaQATActivationQuantizer", "AdaQATWeightQuantizer"]
