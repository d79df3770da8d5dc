"""Keras layers with trainable bit-widths (names are the public API)."""

from .dense import HDense
from .quantize import HQuantize

__all__ = ["HDense", "HQuantize"]

from .batchnorm import HConv1DBatchNorm, HConv2DBatchNorm, HDenseBatchNorm
from .conv import HConv1D, HConv2D

__all__ += ["HConv1D", "HConv2D", "HConv1DBatchNorm", "HConv2DBatchNorm", "HDenseBatchNorm"]

from .activation import HActivation
from .merge import HAdd
from .pooling import check_exact_average_pooling

__all__ += ["HActivation", "HAdd", "check_exact_average_pooling"]
