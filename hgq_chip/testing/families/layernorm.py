"""The layer normalization family's case (HLayerNormalization, ``conversion/rules/layernorm.py``)."""

from __future__ import annotations

import numpy as np

from ...layers import HLayerNormalization
from ..model_fuzz import OVERFLOWS, ROUNDINGS
from . import FamilyCase, FuzzStep
# The fuzz step's quantizer keys -> the layer's constructor arguments.
STEP_QUANTIZERS = {"diff_q": "diff_quantizer", "var_q": "variance_quantizer", "rsqrt_q": "rsqrt_quantizer",
                   "norm_q": "normalized_quantizer", "oq": "output_quantizer"}


def reference(layer, x) -> np.ndarray:
    """Float32 outputs of a calibrated HLayerNormalization for inputs ``x`` (batch first): the steps of
    ``layers/layernorm.py`` in NumPy float64 with the layer's quantizer formats (``quantize_np``)."""
    x = layer.iq.quantize_np(np.asarray(x, np.float64))
    c = layer.factor
    d = layer.diff_q.quantize_np(x - x.sum(-1, keepdims=True) * c)
    v = layer.var_q.quantize_np((d * d).sum(-1, keepdims=True))
    rsqrt = (1.0 / np.sqrt(np.maximum(v, 0.0) * c + layer.epsilon)).astype(np.float32).astype(np.float64)
    y = layer.norm_q.quantize_np(d * layer.rsqrt_q.quantize_np(rsqrt))
    if layer.scale:
        y = y * layer.gq.quantized(layer.ln_gamma.numpy())
    if layer.center:
        y = y + layer.bq.quantized(layer.ln_beta.numpy())
    return layer.oq.quantize_np(y).astype(np.float32)


def _draw(d, shape) -> tuple[dict, tuple]:
    """Over the last axis: center/scale on or off, random modes of its five step quantizers."""
    ch = d.ch
    step = {"op": "layernorm", "name": d.name("layernorm"), "iq": d.act_q(), "center": not ch.chance(30),
            "scale": not ch.chance(30)}
    step.update({key: {"rounding": ch.choice(ROUNDINGS), "overflow": ch.choice(OVERFLOWS)} for key in STEP_QUANTIZERS})
    return step, shape


def _build(step):
    return HLayerNormalization(center=step["center"], scale=step["scale"], input_quantizer=step["iq"],
                               name=step["name"], **{argument: step[key] for key, argument in STEP_QUANTIZERS.items()})


# Variables: f of iq, diff_q, var_q, rsqrt_q, norm_q, oq, gq, bq, ln_gamma, ln_beta | beta, the three
# range variables of each activation quantizer, the rsqrt table; one EBOPs loss in training.
CASES = (
    FamilyCase(
        name="layernorm",
        classes=(HLayerNormalization,),
        args=(),
        kwargs={"gamma_initializer": "random_normal", "beta_initializer": "random_normal"},
        input_shape={HLayerNormalization: (3, 5)},
        counts=(10, 21, 1),
        reference=reference,
        io_types=("io_parallel",),
        fuzz=FuzzStep("layernorm", ranks=(1, 2, 3), draw=_draw, build=_build, io_types=("io_parallel",)),
        # The sum of squares indexes a <= 16-bit table; the other steps hold values of about 1.
        bit_ranges={"var_q": (0, 4), "diff_q": (2, 7), "rsqrt_q": (2, 7), "norm_q": (2, 7), "oq": (2, 7)},
    ),
)
