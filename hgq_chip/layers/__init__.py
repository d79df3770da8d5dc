"""Keras layers with trainable bit-widths (names are the public API)."""

from .dense import HDense
from .quantize import HQuantize

__all__ = ["HDense", "HQuantize"]

from .batchnorm import HConv1DBatchNorm, HConv2DBatchNorm, HDenseBatchNorm
from .conv import HConv1D, HConv2D

__all__ += ["HConv1D", "HConv2D", "HConv1DBatchNorm", "HConv2DBatchNorm", "HDenseBatchNorm"]

from .activation import HActivation
from .merge import HAdd, HMaximum, HMinimum, HMultiply, HSubtract
from .pooling import check_exact_average_pooling

__all__ += ["HActivation", "HAdd", "HMaximum", "HMinimum", "HMultiply", "HSubtract", "check_exact_average_pooling"]

from .depthwise import HDepthwiseConv1D, HDepthwiseConv2D  # noqa: E402

__all__ += ["HDepthwiseConv1D", "HDepthwiseConv2D"]

from .softmax import HSoftmax  # noqa: E402

__all__ += ["HSoftmax"]

from .asq_post import ASQDense  # noqa: E402
from .asq_post_conv import ASQConv1D, ASQConv2D  # noqa: E402

__all__ += ["ASQConv1D", "ASQConv2D", "ASQDense"]

from .adaqat import AConv1D, AConv2D, ADense  # noqa: E402
from .adaqat_clone import adaqat_from_model  # noqa: E402

__all__ += ["AConv1D", "AConv2D", "ADense", "adaqat_from_model"]

from .einsum_dense import HEinsumDense  # noqa: E402

__all__ += ["HEinsumDense"]

from .attention import HMultiHeadAttention  # noqa: E402

__all__ += ["HMultiHeadAttention"]

from .separable import HSeparableConv1D, HSeparableConv2D  # noqa: E402

__all__ += ["HSeparableConv1D", "HSeparableConv2D"]

from .layernorm import HLayerNormalization  # noqa: E402

__all__ += ["HLayerNormalization"]
