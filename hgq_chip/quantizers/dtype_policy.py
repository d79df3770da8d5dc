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

import warnings

import numpy as np

from ..errors import UnsupportedConfigurationError

EXACT_COMPUTE_DTYPES = ("float32", "float64")


JAX_X64_FIX = ("JAX computes float64 as float32 unless 64-bit types are on: set the environment variable "
               "JAX_ENABLE_X64=1, or call jax.config.update('jax_enable_x64', True) before building the model")


def float64_available() -> bool:
    """Whether the Keras backend really computes in float64 when asked.

    JAX without ``jax_enable_x64`` silently returns float32 for a float64 request (with a
    warning), which would round values the firmware keeps exact; TensorFlow and PyTorch always
    compute float64. Asked of the backend itself (a float64 tensor's dtype), so it follows the
    JAX flag whenever it is changed.
    """
    from keras import backend, ops

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tensor = ops.convert_to_tensor(np.zeros((), np.float64), dtype="float64")
    return backend.standardize_dtype(tensor.dtype) == "float64"


def check_float64_available(layer, purpose: str) -> None:
    """Raise :class:`~hgq_chip.errors.UnsupportedConfigurationError` (exit 5), naming ``layer``
    and ``purpose``, when the backend cannot compute float64 (JAX without x64)."""
    if not float64_available():
        raise UnsupportedConfigurationError(
            f"layer {layer.name!r} ({type(layer).__name__}) {purpose}, but {JAX_X64_FIX}"
        )


def check_exact_dtype_policy(layer) -> None:
    """Raise :class:`~hgq_chip.errors.UnsupportedConfigurationError` (exit 5) unless ``layer``
    computes and stores its variables in float32 or float64 (no quantized dtype policy), and the
    backend really computes float64 when the policy asks for it (JAX needs x64 on)."""
    policy = layer.dtype_policy
    compute, variable = policy.compute_dtype, policy.variable_dtype
    quantized = getattr(policy, "quantization_mode", None)
    if compute in EXACT_COMPUTE_DTYPES and variable == compute and not quantized:
        if compute == "float64":
            check_float64_available(layer, "has dtype policy 'float64'")
        return
    raise UnsupportedConfigurationError(
        f"layer {layer.name!r} ({type(layer).__name__}) has dtype policy {policy.name!r} (computes in {compute}); "
        "quantized values are exact only in float32 or float64: pass dtype='float32' to this layer "
        "(other layers may keep mixed precision), or keras.config.set_dtype_policy('float32')"
    )
