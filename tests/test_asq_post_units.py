"""LSQ, ASQ and POST/POT quantizers and ASQDense: exact levels, gradients, the inference path."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from keras import ops

from asq_post_models import asq_dense_reference
from gradients import gradients
from hgq_chip.errors import UnsupportedConfigurationError
from hgq_chip.fixed.minimal import fractional_bits
from hgq_chip.fixed.quantize_np import quantize_to
from hgq_chip.layers import ASQDense
from hgq_chip.quantizers import ASQActivationQuantizer, LSQActivationQuantizer, LogWeightQuantizer
from hgq_chip.quantizers.post import level_shift_and_odd, sqrt_half_constant, unit_levels

pytestmark = pytest.mark.keras_level  # also run under JAX in CI (docs/backends.md, "Backends in CI")


# ---- POST / POT levels ------------------------------------------------------------------------
@pytest.mark.parametrize("bits, sqrt2_bits", [(3, 8), (4, 8), (4, 12), (3, 4)])
def test_post_levels_are_exact_and_match_the_formula_within_the_constant_precision(bits, sqrt2_bits):
    levels = unit_levels(bits, "post", sqrt2_bits)
    j = np.arange(2 ** (bits - 1) - 1)
    assert len(levels) == 2 ** (bits - 1) - 1
    ideal = math.sqrt(2.0) ** -j.astype(float)
    c = sqrt_half_constant(sqrt2_bits)
    assert c * 2**sqrt2_bits == round(2 ** (sqrt2_bits - 0.5))
    even, odd = j % 2 == 0, j % 2 == 1
    assert np.array_equal(levels[even], 2.0 ** -(j[even] // 2).astype(float))
    assert np.array_equal(levels[odd], c * 2.0 ** -(j[odd] // 2).astype(float))
    # |c - 1/sqrt(2)| <= 2**-(F+1), scaled by the level's power of two.
    assert np.all(np.abs(levels - ideal) <= 2.0 ** -(sqrt2_bits + 1) * 2.0 ** -(j // 2).astype(float))
    # Every level is a fixed-point number with at most F + max shift fractional bits.
    assert fractional_bits(levels).max() <= sqrt2_bits + (len(levels) - 1) // 2


@pytest.mark.parametrize("dtype, widest", [("float32", 24), ("float64", 30)])
def test_post_levels_wider_than_the_compute_dtype_are_refused_at_construction(dtype, widest):
    """A POST constant of more significant bits than the dtype holds would be rounded by Keras
    (it once surfaced as an AssertionError at convert); the layer refuses it, naming itself."""
    rng = np.random.default_rng(1)
    w = rng.normal(0, 0.4, (16, 5)).astype(dtype)
    q = LogWeightQuantizer(kind="post", bits=4, sqrt2_bits=widest, dtype=dtype)
    q.build(w.shape)
    q.initialize_from(w)
    assert np.abs(q.codes(w)).max() > 0  # every quantized weight is a declared level
    if widest < 30:
        with pytest.raises(UnsupportedConfigurationError, match=r"layer 'wide' \(ASQDense\).*sqrt2_bits <= 24"):
            ASQDense(4, kernel_quantizer={"kind": "post", "sqrt2_bits": widest + 1}, dtype=dtype, name="wide")
    LogWeightQuantizer(kind="pot", bits=4, sqrt2_bits=30, dtype=dtype)  # POT levels do not use the constant


def test_post_level_sets_for_three_and_four_bits():
    c = 181 / 256  # round(2**-0.5 * 2**8) / 2**8
    assert np.array_equal(unit_levels(3, "post"), [1.0, c, 0.5])
    assert np.array_equal(unit_levels(4, "post"), [1.0, c, 0.5, c / 2, 0.25, c / 4, 0.125])
    assert np.array_equal(unit_levels(4, "pot"), [1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625])


@pytest.mark.parametrize("kind", ["post", "pot"])
def test_log_quantizer_picks_the_nearest_level_and_its_codes_decode_back(kind):
    rng = np.random.default_rng(0)
    q = LogWeightQuantizer(kind=kind, bits=4)
    w = rng.normal(0, 0.4, (40, 7)).astype(np.float32)
    q.build(w.shape)
    q.alpha.assign(0.7)  # forward alpha = 2**round(log2 0.7) = 0.5
    assert q.scale_exponent() == -1
    units = q.units(w)
    candidates = np.concatenate([[0.0], q.levels])
    t = np.clip(np.abs(w.astype(np.float64)) / 0.5, 0, 1)
    nearest = candidates[np.argmin(np.abs(t[..., None] - candidates), axis=-1)]
    assert np.array_equal(np.abs(units), nearest)
    assert np.array_equal(np.sign(units), np.where(nearest == 0, 0, np.sign(w)))
    codes = q.codes(w)
    shift, odd = level_shift_and_odd(codes[codes != 0], kind)
    decoded = np.where(odd, q.sqrt_half, 1.0) * 2.0**-shift.astype(float) * np.sign(codes[codes != 0])
    assert np.array_equal(decoded, units[codes != 0])
    assert np.abs(codes).max() <= 7


def test_log_quantizer_gradients_straight_through_and_to_alpha():
    q = LogWeightQuantizer(kind="post", bits=3)
    w = np.array([[0.3, -0.45, 2.0]], np.float32)
    q.build(w.shape)
    q.alpha.assign(1.0)
    _, (grad_alpha,), (grad_w,) = gradients(lambda t: ops.sum(q(t)), [q.alpha], [w])
    assert np.array_equal(grad_w, [[1.0, 1.0, 0.0]])  # clipped weight: no gradient
    unit = ops.convert_to_numpy(q(w))[0]
    expected_alpha = (np.sum(unit) - 0.3 + 0.45) / math.sqrt(3)  # (u - w/alpha) inside, +-1 outside
    assert np.isclose(grad_alpha, expected_alpha, rtol=1e-6)


# ---- LSQ --------------------------------------------------------------------------------------
def test_lsq_with_power_of_two_step_is_a_fixed_point_cast():
    q = LSQActivationQuantizer(bits=4, signed=True, init_step=0.3)  # forward step 0.25
    x = np.linspace(-3, 3, 97).astype(np.float32)[None]
    q.build(x.shape)
    fmt = q.fixed_format()
    assert (int(fmt.k), int(fmt.i), int(fmt.f)) == (1, 1, 2)
    assert np.array_equal(np.asarray(q(x)), quantize_to(x, fmt))


def test_lsq_step_gradient_is_scaled_by_one_over_sqrt_n_qp():
    q = LSQActivationQuantizer(bits=3, signed=False, init_step=0.5)
    x = np.array([[0.2, 0.74, 1.3, 9.0]], np.float32)
    q.build(x.shape)
    _, (grad_step,), _ = gradients(lambda t: ops.sum(q(t)), [q.step], [x])
    v = x[0] / 0.5
    inside = v <= 7
    expected = np.sum(np.where(inside, np.floor(v + 0.5) - v, 7.0)) / math.sqrt(4 * 7)
    assert np.isclose(grad_step, expected, rtol=1e-6)


# ---- ASQ --------------------------------------------------------------------------------------
def test_asq_starts_as_lsq_and_trains_its_adapter():
    x = np.random.default_rng(1).normal(0, 1, (8, 6)).astype(np.float32)
    for hidden in (0, 3):
        asq = ASQActivationQuantizer(bits=4, signed=True, init_step=0.25, adapter_hidden=hidden)
        lsq = LSQActivationQuantizer(bits=4, signed=True, init_step=0.25)
        asq.build(x.shape)
        lsq.build(x.shape)
        assert np.array_equal(np.asarray(asq.beta_exact(ops.cast(x, "float64"))), np.ones((8, 1)))
        assert np.array_equal(np.asarray(asq(x, training=True)), np.asarray(lsq(x, training=True)))
        last = asq.a2 if hidden else asq.a1
        _, (grad_last,), _ = gradients(lambda t: ops.sum(asq(t, training=True) ** 2), [last], [x])
        assert np.any(grad_last != 0)


def test_reciprocal_table_rounds_one_over_beta_half_up():
    q = ASQActivationQuantizer(beta_bits=5, reciprocal_bits=7)
    lo, hi = q.beta_code_range
    assert (lo, hi) == (16, 63)
    beta = np.arange(lo, hi + 1) / 32.0
    expected = np.floor(128.0 / beta + 0.5) / 128.0
    assert np.array_equal(q.reciprocal_table(), expected)


# ---- ASQDense ---------------------------------------------------------------------------------
@pytest.mark.parametrize("act, weights", [("lsq", "post"), ("asq", "lsq"), ("asq", "post"), ("asq", "pot")])
def test_asq_dense_inference_is_the_fixed_point_reference(act, weights):
    rng = np.random.default_rng(2)
    options = {"adapter_hidden": 2} if act == "asq" else {}
    layer = ASQDense(6, activation="relu", input_quantizer={"kind": act, "bits": 4, "signed": True, **options},
                     kernel_quantizer={"kind": weights, "bits": 4}, bias_initializer="random_normal")
    x = (rng.normal(0, 1, (64, 10)) * rng.uniform(0.2, 3, (64, 1))).astype(np.float32)
    layer.build(x.shape)
    if act == "asq":
        for var in (layer.iq.a1, layer.iq.d1, layer.iq.a2):
            var.assign(rng.normal(0, 0.3, var.shape))
    y = np.asarray(layer(x, training=False), np.float64)
    assert np.array_equal(y, asq_dense_reference(layer, x))
    trained = np.asarray(layer(x, training=True), np.float64)
    assert np.abs(trained - y).max() < 0.5 * np.abs(y).max()  # same function, float path


def test_asq_dense_overhead_and_ebops_terms():
    layer = ASQDense(8, input_quantizer={"kind": "asq", "bits": 3, "adapter_hidden": 4, "beta_bits": 6},
                     kernel_quantizer={"kind": "post", "bits": 3})
    layer.build((None, 16))
    overhead = layer.adapter_overhead()
    assert overhead["adapter_parameters"] == 13 and overhead["table_entries"] == 96
    assert overhead["extra_multiplies"] == 8 + 16 + 8 and overhead["extra_adds"] == 15 + 8
    terms = layer.ebops_terms()
    assert set(terms) == {"shift_adds", "shared_sqrt_half_products", "rescale"}
    assert layer.ebops_exact() == sum(terms.values())
    plain = ASQDense(8, input_quantizer={"kind": "lsq", "bits": 3}, kernel_quantizer={"kind": "lsq", "bits": 3})
    plain.build((None, 16))
    assert plain.adapter_overhead()["extra_multiplies"] == 0
    # Uniform weights cost b_a x the exact width of each integer weight (0 for pruned ones).
    plain.kq.step.assign(0.25)
    kernel = np.zeros((16, 8))
    kernel[0, :6] = np.array([1, -1, 2, 3, -3, 0]) * 0.25
    plain.kernel.assign(kernel)
    assert plain.ebops_exact() == 3 * (1 + 1 + 1 + 2 + 3 + 0)


def test_asq_dense_round_trips_through_keras_save(tmp_path):
    inp = keras.Input((5,))
    out = ASQDense(3, input_quantizer={"kind": "asq", "bits": 4, "adapter_hidden": 2},
                   kernel_quantizer={"kind": "post", "bits": 3, "sqrt2_bits": 6})(inp)
    model = keras.Model(inp, out)
    x = np.random.default_rng(3).normal(0, 1, (16, 5)).astype(np.float32)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert np.array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
    assert loaded.layers[1].kq.sqrt2_bits == 6 and loaded.layers[1].iq.adapter_hidden == 2


def test_asq_dense_rejects_unknown_kinds_and_non_flat_inputs():
    with pytest.raises(ValueError, match="kernel_quantizer kind"):
        ASQDense(3, kernel_quantizer={"kind": "apot"})
    with pytest.raises(ValueError, match="input_quantizer kind"):
        ASQDense(3, input_quantizer={"kind": "pact"})
    with pytest.raises(ValueError, match="Flatten first"):
        ASQDense(3).build((None, 4, 4))
