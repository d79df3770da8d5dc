"""Every exported layer class through ``run_quantized_layer_test`` (hgq_chip/testing/layer_harness.py).

One case per class (plus HActivation's table form): a factory taking Keras layer arguments,
the per-sample input shape, the expected variable counts and the NumPy reference where one
exists. test_every_exported_layer_class_has_a_case fails when a new layer class has no case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from asq_post_models import asq_dense_reference
from hgq_chip import layers as L
from hgq_chip.layers.depthwise import block_diagonal_kernel
from hgq_chip.testing.layer_harness import run_quantized_layer_test
from reference_conv import conv_np
from reference_layernorm import layernorm_reference
from reference_softmax import softmax_reference

ASQ_INPUT = {"kind": "asq", "bits": 4, "signed": True, "adapter_hidden": 2}
POST_KERNEL = {"kind": "post", "bits": 4}


def weighted_reference(layer, x):
    """HDense/HConv and their BatchNorm and AdaQAT forms: q_in(x) (*) q_w(W') + q_b(b'), relu."""
    x_q = layer.iq.quantize_np(x)
    w = layer.kq.quantized(layer.fused_kernel())
    if isinstance(layer, (L.HDepthwiseConv1D, L.HDepthwiseConv2D)):
        w = block_diagonal_kernel(w)
    y = x_q @ w if len(w.shape) == 2 else conv_np(x_q, w, layer.strides, layer.padding, layer.dilation_rate)
    bias = layer.fused_bias()
    if bias is not None:
        y = y + layer.bq.quantized(bias)
    if layer.get_config()["activation"] == "relu":
        y = np.maximum(y, 0.0)
    return y.astype(np.float32)


def quantized_inputs(layer, x):
    """Each merge input through its own quantizer (NumPy)."""
    return [q.quantize_np(xi) for q, xi in zip(layer.input_quantizers, x)]


def activation_reference(layer, x):
    x_q = layer.iq.quantize_np(x)
    if not layer.uses_table:
        return np.maximum(x_q, 0.0).astype(np.float32)  # the relu cases
    y = np.tanh(np.asarray(x_q, np.float64)).astype(np.float32)  # tanh in float64, rounded once (activation.py)
    return layer.oq.quantize_np(y).astype(np.float32)


@dataclass
class Case:
    factory: object
    input_shape: object
    trainable: int
    non_trainable: int
    losses: int
    reference: object = None


# Variable counts (trainable, non-trainable):
# - HGQ weighted layers: kernel, bias, iq/f, kq/f, bq/f | beta, iq/range_lo, range_hi, range_seen;
#   BatchNorm forms add bn_gamma, bn_beta | moving_mean, moving_variance;
# - AdaQAT: kernel, bias, iq/log2_alpha | beta, iq/bits, iq/frozen, iq ranges (3), kq/bits, kq/frozen,
#   bq/f (bit-widths move by the controller's finite differences, not by gradients);
# - ASQ/POST: kernel, bias, iq/step, the adapter iq/a1, d1, a2, d2, kq/alpha | beta, bq/f;
# - merges: iq<n>/f per input quantizer | its 3 ranges (HMultiply adds beta); none without quantizers;
# - function tables (layers/tables.py): 2 non-trainable each (values, grid): HActivation's one,
#   HSoftmax's (and HMultiHeadAttention's softmax's) exp and inverse tables;
# - depthwise convolutions: as the HGQ weighted layers;
# - HSoftmax: f of iq, exp_q, sum_q, inv_q, oq | beta and the three range variables of each quantizer.
# - HLayerNormalization: f of iq, diff_q, var_q, rsqrt_q, norm_q, oq, gq, bq, ln_gamma, ln_beta | beta,
#   the three range variables of each activation quantizer, the rsqrt table.
# EBOPs losses in training: one per layer with trainable bit-widths and multiplications (HMultiply's and
# HSoftmax's e x 1/sum are products of two variables); none for HQuantize/HActivation/HAdd/HSubtract/
# HMaximum/HMinimum (no multiplications) and ASQ/POST (fixed bit-widths: EBOPs is a constant).
CASES = {
    "HQuantize": Case(lambda **kw: L.HQuantize(**kw), (5,), 1, 3, 0, lambda layer, x: layer.q.quantize_np(x)),
    "HDense": Case(lambda **kw: L.HDense(4, activation="relu", bias_initializer="random_normal", **kw), (5,), 5, 4, 1,
                   weighted_reference),
    "HConv1D": Case(lambda **kw: L.HConv1D(3, 2, padding="same", **kw), (6, 2), 5, 4, 1, weighted_reference),
    "HConv2D": Case(lambda **kw: L.HConv2D(2, 2, strides=2, activation="relu", **kw), (5, 5, 2), 5, 4, 1,
                    weighted_reference),
    "HDenseBatchNorm": Case(lambda **kw: L.HDenseBatchNorm(4, **kw), (5,), 7, 6, 1, weighted_reference),
    "HConv1DBatchNorm": Case(lambda **kw: L.HConv1DBatchNorm(3, 2, **kw), (6, 2), 7, 6, 1, weighted_reference),
    "HConv2DBatchNorm": Case(lambda **kw: L.HConv2DBatchNorm(2, 2, **kw), (4, 4, 2), 7, 6, 1, weighted_reference),
    "HActivation": Case(lambda **kw: L.HActivation("relu", **kw), (6,), 1, 3, 0, activation_reference),
    "HActivation-table": Case(lambda **kw: L.HActivation("tanh", input_quantizer={"init_f": 3}, **kw), (6,), 2, 8, 0,
                              activation_reference),
    "HSoftmax": Case(lambda **kw: L.HSoftmax(**kw), (3, 5), 5, 20, 1, softmax_reference),
    "HSoftmax-plain": Case(lambda **kw: L.HSoftmax(stable=False, exp_quantizer={"init_f": 5}, **kw), (6,), 5, 20, 1,
                           softmax_reference),
    "HLayerNormalization": Case(lambda **kw: L.HLayerNormalization(gamma_initializer="random_normal",
                                                                   beta_initializer="random_normal", **kw),
                                (3, 5), 10, 21, 1, layernorm_reference),
    "HEinsumDense": Case(lambda **kw: L.HEinsumDense("abc,cde->abde", (None, 2, 3), bias_axes="de", **kw), (4, 5), 5, 4,
                         1),
    "HMultiHeadAttention": Case(lambda **kw: L.HMultiHeadAttention(2, 2, **kw), [(4, 3), (5, 3)], 28, 46, 1),
    "HAdd": Case(lambda **kw: L.HAdd(**kw), [(4,), (4,)], 0, 0, 0, lambda layer, x: x[0] + x[1]),
    "HSubtract": Case(lambda **kw: L.HSubtract(input_quantizer={"init_f": 3}, **kw), [(4,), (4,)], 2, 6, 0,
                      lambda layer, x: quantized_inputs(layer, x)[0] - quantized_inputs(layer, x)[1]),
    "HMaximum": Case(lambda **kw: L.HMaximum(**kw), [(2, 3), (2, 3), (2, 3)], 0, 0, 0,
                     lambda layer, x: np.maximum(np.maximum(x[0], x[1]), x[2])),
    "HMinimum": Case(lambda **kw: L.HMinimum(input_quantizer={"init_f": 2, "overflow": "SAT"}, **kw), [(5,), (5,)],
                     2, 6, 0, lambda layer, x: np.minimum(*quantized_inputs(layer, x))),
    "HMultiply": Case(lambda **kw: L.HMultiply(input_quantizer={"init_f": 3}, **kw), [(4,), (4,)], 2, 7, 1,
                      lambda layer, x: np.multiply(*quantized_inputs(layer, x)).astype(np.float32)),
    "HDepthwiseConv1D": Case(lambda **kw: L.HDepthwiseConv1D(3, depth_multiplier=2, padding="same",
                                                             bias_initializer="random_normal", **kw), (6, 2), 5, 4, 1,
                             weighted_reference),
    "HDepthwiseConv2D": Case(lambda **kw: L.HDepthwiseConv2D(2, strides=2, activation="relu", **kw), (5, 5, 3), 5, 4, 1,
                             weighted_reference),
    "ADense": Case(lambda **kw: L.ADense(4, **kw), (5,), 3, 9, 1, weighted_reference),
    "AConv1D": Case(lambda **kw: L.AConv1D(3, 2, **kw), (6, 2), 3, 9, 1, weighted_reference),
    "AConv2D": Case(lambda **kw: L.AConv2D(2, 2, **kw), (4, 4, 2), 3, 9, 1, weighted_reference),
    "ASQDense": Case(lambda **kw: L.ASQDense(3, input_quantizer=ASQ_INPUT, kernel_quantizer=POST_KERNEL,
                                             bias_initializer="random_normal", **kw), (6,), 8, 2, 0, asq_dense_reference),
    "ASQConv1D": Case(lambda **kw: L.ASQConv1D(2, 2, input_quantizer=ASQ_INPUT, kernel_quantizer=POST_KERNEL, **kw),
                      (5, 2), 8, 2, 0),
    "ASQConv2D": Case(lambda **kw: L.ASQConv2D(2, 2, input_quantizer=ASQ_INPUT, kernel_quantizer=POST_KERNEL, **kw),
                      (4, 4, 2), 8, 2, 0),
}


def test_every_exported_layer_class_has_a_case():
    exported = {name for name in L.__all__ if isinstance(getattr(L, name), type)}
    assert exported == {name.split("-")[0] for name in CASES}


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_passes_the_harness(name):
    case = CASES[name]
    report = run_quantized_layer_test(case.factory, case.input_shape, expected_trainable=case.trainable,
                                      expected_non_trainable=case.non_trainable, expected_losses=case.losses,
                                      reference=case.reference)
    assert report.layer_class == name.split("-")[0]


GRANULARITY_VARIANTS = [(cls, granularity, overflow) for cls in ("HDense", "HConv1D", "HConv2D")
                        for granularity in ("per-channel", "per-layer") for overflow in ("SAT", "SAT_SYM")]


@pytest.mark.slow
@pytest.mark.parametrize("name, granularity, overflow", GRANULARITY_VARIANTS)
def test_weighted_layers_pass_the_harness_at_every_granularity(name, granularity, overflow):
    case = CASES[name]
    quantizers = {"input_quantizer": {"granularity": granularity, "overflow": overflow, "init_f": 3},
                  "kernel_quantizer": {"granularity": granularity, "init_f": 3}}
    run_quantized_layer_test(lambda **kw: case.factory(**quantizers, **kw), case.input_shape, scale=4.0,
                             expected_trainable=case.trainable, expected_non_trainable=case.non_trainable,
                             expected_losses=case.losses, reference=case.reference, seed=7)


# ---- the harness itself fails where it should ---------------------------------------------------

@pytest.mark.parametrize("change, message", [
    ({"reference": lambda layer, x: layer.q.quantize_np(x) + 2.0**-20}, "differ from the NumPy reference"),
    ({"expected_trainable": 2}, r"\(trainable, non-trainable\) = \(1, 3\)"),
    ({"expected_losses": 1}, "0 losses in training, expected 1"),
])
def test_the_harness_reports_a_wrong_reference_count_or_loss(change, message):
    options = {"expected_trainable": 1, "expected_non_trainable": 3, "expected_losses": 0,
               "reference": CASES["HQuantize"].reference, "fit": False, **change}
    with pytest.raises(AssertionError, match=message):
        run_quantized_layer_test(CASES["HQuantize"].factory, (5,), **options)


def test_the_harness_reports_an_accepted_mixed_policy():
    import keras

    with pytest.raises(AssertionError, match="mixed_float16'\\) was accepted"):
        run_quantized_layer_test(lambda **kw: keras.layers.Dense(2, **kw), (3,), expected_trainable=2,
                                 expected_non_trainable=0, expected_losses=0)


def test_the_harness_reports_a_config_that_forgets_an_argument():
    class Forgetful(L.HQuantize):
        def get_config(self):
            config = super().get_config()
            config["quantizer"] = {}
            return config

    with pytest.raises(AssertionError, match="get_config differs|changed the output"):
        run_quantized_layer_test(lambda **kw: Forgetful({"init_f": 2, "rounding": "TRN"}, **kw), (5,),
                                 expected_trainable=1, expected_non_trainable=3, expected_losses=0,
                                 check_mixed_precision=False)
