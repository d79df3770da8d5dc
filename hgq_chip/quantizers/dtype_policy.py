"""Which Keras dtype policies keep quantized values exact, and the check every layer runs.

A fixed-point value of up to 24 significant bits is exact in float32 (53 in float64); the
quantizers' arithmetic (scaling by powers of two, floor, the overflow wrap) is exact only
then. ``mixed_float16`` / ``mixed_bfloat16`` (or ``float16``, ``bfloat16``) compute with an
11- or 8-bit significand, so Keras would round values the firmware keeps: such policies are
refused when the layer is constructed, naming the layer. Keras mixed precision can still be
used for the other layers of a model (give hgq_chip layers ``dtype="float32"``), and
``hgq_chip convert`` refuses any layer of the model whose compute dtype is not float32/float64
(``conversion/layer_options.py``). Sublayers (the quantizers) are built with their parent's
policy, so a global mixed policy cannot reach them through an explicit ``dtype="float32"`` parent.
"""

from __future__ import annotations

from ..errors import UnsupportedConfigurationError

EXACT_COMPUTE_DTYPES = ("float32", "float64")


def check_exact_dtype_policy(layer) -> None:
    """Raise :class:`~hgq_chip.errors.UnsupportedConfigurationError` (exit 5) unless ``layer``
    computes and stores its variables in float32 or float64 (no quantized dtype policy)."""
    policy = layer.dtype_policy
    compute, variable = policy.compute_dtype, policy.variable_dtype
    quantized = getattr(policy, "quantization_mode", None)
    if compute in EXACT_COMPUTE_DTYPES and variable == compute and not quantized:
        return
    raise UnsupportedConfigurationError(
        f"layer {layer.name!r} ({type(layer).__name__}) has dtype policy {policy.name!r} (computes in {compute}); "
        "quantized values are exact only in float32 or float64: pass dtype='float32' to this layer "
        "(other layers may keep mixed precision), or keras.config.set_dtype_policy('float32')"
    )
