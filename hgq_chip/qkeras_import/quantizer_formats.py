"""QKeras quantizers as hgq_chip fixed-point formats.

At inference QKeras' quantizers are fixed-point casts (QKeras 0.9 source):

- ``quantized_bits(bits, integer, symmetric, keep_negative, alpha)``: with
  ``u = bits - keep_negative``, ``x_q = 2**integer * clip(tf.round(x * 2**(u - integer)),
  -keep_negative * (2**u - symmetric), 2**u - 1) / 2**u`` -- sign k = keep_negative,
  integer bits i = integer, fractional bits f = bits - k - integer, overflow SAT
  (SAT_SYM when symmetric), rounding tf.round = ties to even (our RND_CONV, not RND).
  ``alpha`` scales the result: None/1 -> no scale; 'auto_po2' (which QDense/QConv also
  pick when a kernel quantizer has alpha=None) -> a power of two per output channel,
  i.e. a per-channel shift of f; 'auto' -> an arbitrary float (not fixed point).
- ``quantized_relu(bits, integer)``: ``clip(tf.round(x * 2**(bits - integer)), 0,
  2**bits - 1) / 2**(bits - integer)`` -- k = 0, i = integer, f = bits - integer, SAT,
  ties to even.
- ``quantized_tanh(bits, symmetric)`` with ``use_real_tanh=False`` and QKeras' default hard
  internal sigmoid: ``clip(round((2 * clip(0.5 * x + 0.5, 0, 1) - 1) * m) / m, -1 + symmetric / m,
  1 - 1 / m)`` with ``m = 2**(bits - 1)`` -- k = 1, i = 0, f = bits - 1, SAT (SAT_SYM when
  symmetric), ties to even (exact while ``0.5 * x + 0.5`` is exact in float32: see graph.py).
  With ``use_real_tanh`` or a 'real'/'smooth' sigmoid QKeras evaluates a float tanh/sigmoid:
  refused.
- ``softmax`` is a float function in QKeras: a final softmax is dropped (the argmax is
  unchanged), any other is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedLayerError
from ..fixed.minimal import fractional_bits

# Fractional bits given to an unquantized QKeras input (QKeras itself leaves it float).
DEFAULT_INPUT_F = 8

SUPPORTED = ("quantized_bits", "quantized_relu", "quantized_tanh")
EXACT_PLAIN_ACTIVATIONS = ("linear", "relu")


@dataclass(frozen=True)
class ActivationSpec:
    """The format of a tensor: f fractional bits, overflow mode and the range [lo, hi] it holds.

    ``lo``/``hi`` set the activation quantizer's recorded range, from which hgq_chip derives
    sign and integer bits; ``relu`` says the values are a relu's (clipped at 0).
    """

    f: int
    lo: float
    hi: float
    overflow: str = "SAT"
    rounding: str = "RND_CONV"
    relu: bool = False

    def quantizer_config(self, granularity: str) -> dict:
        return {"granularity": granularity, "init_f": float(self.f), "rounding": self.rounding, "overflow": self.overflow}


def _describe(quantizer: dict) -> str:
    if "class" not in quantizer:
        return repr(quantizer.get("activation"))
    args = ", ".join(f"{k}={v!r}" for k, v in quantizer["config"].items())
    return f"{quantizer['class']}({args})"


def _unsupported(where: str, quantizer: dict, why: str) -> UnsupportedLayerError:
    return UnsupportedLayerError(f"{where}: {_describe(quantizer)} {why}")


def _check_common(where: str, quantizer: dict) -> dict:
    if quantizer["class"] not in SUPPORTED:
        raise _unsupported(where, quantizer, f"has no fixed-point equivalent here; use one of {list(SUPPORTED)}")
    config = quantizer["config"]
    if float(config.get("qnoise_factor", 1.0)) != 1.0:
        raise _unsupported(where, quantizer, "mixes float and quantized values (qnoise_factor != 1); set qnoise_factor=1")
    if not float(config["integer"]).is_integer():
        raise _unsupported(where, quantizer, "has a non-integer number of integer bits")
    return config


def _quantized_bits_frame(where: str, quantizer: dict) -> tuple[int, int, int, str]:
    """(k, i, f, overflow) of a quantized_bits before any alpha scale."""
    config = _check_common(where, quantizer)
    k = int(bool(config["keep_negative"]))
    bits, integer = int(config["bits"]), int(config["integer"])
    if bits - k <= 0:
        raise _unsupported(where, quantizer, "is a binary quantizer (bits - keep_negative = 0); use at least 2 bits")
    overflow = "SAT_SYM" if config.get("symmetric") and k else "SAT"
    return k, integer, bits - k - integer, overflow


def activation_spec(where: str, quantizer: dict | None) -> ActivationSpec | None:
    """The format a QActivation (or a fused activation) casts to; None for a plain 'linear'."""
    if quantizer is None:
        return None
    if "class" not in quantizer:
        name = quantizer["activation"]
        if name == "softmax":
            raise UnsupportedLayerError(
                f"{where}: QKeras computes this softmax in float, which has no exact fixed-point equivalent; "
                "only a softmax at the model output is imported (dropped: the argmax is unchanged). Remove it, "
                "or import without it and add hgq_chip.layers.HSoftmax after import (then train it)"
            )
        if name not in EXACT_PLAIN_ACTIVATIONS:
            raise UnsupportedLayerError(
                f"{where}: float activation {name!r} is not fixed point; quantize it in QKeras "
                f"(e.g. quantized_relu) or use one of {list(EXACT_PLAIN_ACTIVATIONS)}"
            )
        return None
    if quantizer["class"] == "quantized_tanh":
        return _tanh_spec(where, quantizer)
    if quantizer["class"] == "quantized_relu":
        config = _check_common(where, quantizer)
        if float(config.get("negative_slope", 0.0)) != 0.0 or config.get("use_sigmoid"):
            raise _unsupported(where, quantizer, "is supported only with negative_slope=0 and use_sigmoid=0")
        bits, integer = int(config["bits"]), int(config["integer"])
        f = bits - integer
        top = 2.0**integer - 2.0**-f
        bound = config.get("relu_upper_bound")
        if bound is not None and not config.get("is_quantized_clip", True) and float(bound) < top:
            raise _unsupported(where, quantizer, "clips below its largest code (relu_upper_bound); remove the bound")
        return ActivationSpec(f=f, lo=0.0, hi=top, relu=True)
    k, integer, f, overflow = _quantized_bits_frame(where, quantizer)
    alpha = quantizer["config"].get("alpha")
    if alpha is not None and not (isinstance(alpha, (int, float)) and float(alpha) == 1.0):
        raise _unsupported(where, quantizer, "scales activations by alpha; only alpha=None or 1 is a fixed-point cast")
    return ActivationSpec(f=f, lo=-(2.0**integer) if k else 0.0, hi=2.0**integer - 2.0**-f, overflow=overflow)


def _tanh_spec(where: str, quantizer: dict) -> ActivationSpec:
    config = quantizer["config"]
    if config.get("use_real_tanh") or config.get("internal_sigmoid", "hard_sigmoid") != "hard_sigmoid":
        raise _unsupported(
            where, quantizer,
            "evaluates a float tanh/sigmoid (use_real_tanh=True or a 'real'/'smooth' internal sigmoid), which "
            "has no exact fixed-point equivalent; use use_real_tanh=False with QKeras' default hard sigmoid, or "
            "import without it and add hgq_chip.layers.HActivation('tanh') after import (then train it)",
        )
    bits = int(config["bits"])
    if bits < 2:
        raise _unsupported(where, quantizer, "is binary; use at least 2 bits")
    f = bits - 1
    # As for quantized_bits, the range is the type's full range; SAT_SYM drops the code -1.
    overflow = "SAT_SYM" if config.get("symmetric") else "SAT"
    return ActivationSpec(f=f, lo=-1.0, hi=1.0 - 2.0**-f, overflow=overflow)


def _power_of_two_exponent(where: str, quantizer: dict, scale) -> np.ndarray:
    scale = np.asarray(scale, dtype=np.float64)
    mantissa, exponent = np.frexp(scale)
    if np.any(scale <= 0) or np.any(mantissa != 0.5):
        raise _unsupported(
            where, quantizer,
            "scales weights by factors that are not powers of two (alpha='auto'); use alpha=1 or 'auto_po2'",
        )
    return exponent - 1


def weight_fractional_bits(where: str, quantizer: dict | None, values_q: np.ndarray, scale) -> np.ndarray:
    """Per-weight f equal to the QKeras quantizer's; values_q are QKeras' quantized weights.

    Without a quantizer the weights are float32 numbers: each gets the f that holds it exactly.
    """
    values_q = np.asarray(values_q, dtype=np.float64)
    if quantizer is None:
        return fractional_bits(values_q)
    if "class" not in quantizer:
        raise _unsupported(where, quantizer, "is not a QKeras quantizer")
    if quantizer["class"] != "quantized_bits":
        raise _unsupported(where, quantizer, "cannot quantize weights here; use quantized_bits")
    _, _, f, _ = _quantized_bits_frame(where, quantizer)
    shift = 0 if scale is None else _power_of_two_exponent(where, quantizer, scale)
    f = np.broadcast_to(f - shift, values_q.shape).astype(np.int64)
    scaled = values_q * 2.0 ** f.astype(np.float64)
    if not np.array_equal(scaled, np.floor(scaled)):
        raise _unsupported(where, quantizer, "produced weights off its own fixed-point grid; re-save the model")
    return f
