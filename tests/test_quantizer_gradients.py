"""Surrogate gradients of the HGQ quantizers (seed 002): d(x_q)/d(f) = -ln2 * (x_q - x), STE for x.

Gradients are taken through ``tests/gradients.py`` (each backend's own gradient API).
Per-element gradients are compared exactly; where f is shared (per-channel/per-layer,
or across the batch) the backend sums float32 terms in its own order, so those sums are
compared with a float32-level tolerance.
"""

import math

import numpy as np
import pytest
from keras import ops

from gradients import gradients
from hgq_chip.layers import HDense
from hgq_chip.quantizers import ActivationQuantizer, Granularity, WeightQuantizer

pytestmark = pytest.mark.keras_level  # also run under JAX in CI (docs/backends.md, "Backends in CI")

NEG_LN2 = np.float32(-math.log(2.0))
GRANULARITIES = [g.value for g in Granularity]


def _set_f(quantizer, rng):
    """Non-integer f away from the .5 ties, so round(f) is unambiguous."""
    shape = quantizer.f.shape
    f = rng.integers(1, 6, size=shape) + rng.uniform(-0.3, 0.3, size=shape)
    quantizer.f.assign(f.astype(np.float32))


def _gradients(quantizer, x, **call_kwargs):
    x = np.asarray(x, np.float32)
    y = ops.convert_to_numpy(quantizer(x, **call_kwargs))
    _, (grad_f,), (grad_x,) = gradients(lambda t: ops.sum(quantizer(t, **call_kwargs)), [quantizer.f], [x])
    return y, grad_x, grad_f


def _reduce_to(values, shape):
    """Sum ``values`` over the axes where the f variable ``shape`` broadcasts."""
    axes = tuple(a for a, (d, s) in enumerate(zip(values.shape, shape)) if s == 1 and d != 1)
    return values.sum(axis=axes, keepdims=True).reshape(shape)


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_weight_quantizer_f_gradient_is_minus_ln2_times_error(granularity):
    rng = np.random.default_rng(1)
    quantizer = WeightQuantizer(granularity=granularity)
    w = rng.normal(0, 1, size=(6, 4)).astype(np.float32)
    quantizer.build(w.shape)
    _set_f(quantizer, rng)
    q, grad_w, grad_f = _gradients(quantizer, w)
    assert np.array_equal(q, quantizer.quantized(w).astype(np.float32))
    per_element = NEG_LN2 * (q - w)
    if granularity == Granularity.ELEMENT.value:
        assert np.array_equal(grad_f, per_element)
    else:
        np.testing.assert_allclose(grad_f, _reduce_to(per_element, grad_f.shape), rtol=1e-5, atol=1e-7)
    assert np.array_equal(grad_w, np.ones_like(w))


@pytest.mark.parametrize("granularity", GRANULARITIES)
@pytest.mark.parametrize("training", [True, False])
def test_activation_quantizer_f_gradient_summed_over_batch(granularity, training):
    rng = np.random.default_rng(2)
    quantizer = ActivationQuantizer(granularity=granularity, overflow="SAT")
    x = rng.normal(0, 2, size=(8, 3, 5)).astype(np.float32)
    quantizer.build(x.shape)
    _set_f(quantizer, rng)
    quantizer.record_range(ops.convert_to_tensor(x))
    q, grad_x, grad_f = _gradients(quantizer, x, training=training)
    summed_over_batch = (NEG_LN2 * (q - x)).sum(axis=0)
    np.testing.assert_allclose(grad_f, _reduce_to(summed_over_batch, grad_f.shape), rtol=1e-5, atol=1e-6)
    assert np.array_equal(grad_x, np.ones_like(x))


def test_activation_f_gradient_exact_for_single_sample():
    rng = np.random.default_rng(3)
    quantizer = ActivationQuantizer(granularity="per-element")
    x = rng.normal(0, 2, size=(1, 7)).astype(np.float32)
    quantizer.build(x.shape)
    _set_f(quantizer, rng)
    q, _, grad_f = _gradients(quantizer, x, training=True)
    assert np.array_equal(grad_f, (NEG_LN2 * (q - x)).reshape(grad_f.shape))
    assert np.any(grad_f != 0)


@pytest.mark.parametrize("quantizer_class", [WeightQuantizer, ActivationQuantizer])
def test_exactly_representable_values_get_zero_f_gradient(quantizer_class):
    """A bit that cannot change the value gets no gradient ("bits that cannot matter")."""
    rng = np.random.default_rng(4)
    quantizer = quantizer_class(granularity="per-element", init_f=3.0)
    x = rng.normal(0, 2, size=(1, 16)).astype(np.float32)
    on_grid = np.arange(16) % 2 == 0
    x[0, on_grid] = np.round(x[0, on_grid] * 8.0) / 8.0  # multiples of 2**-3
    x[0, ~on_grid] = np.floor(x[0, ~on_grid] * 8.0) / 8.0 + 1.0 / 32.0  # never on the grid
    quantizer.build(x.shape if quantizer_class is WeightQuantizer else (None, 16))
    kwargs = {} if quantizer_class is WeightQuantizer else {"training": True}
    _, _, grad_f = _gradients(quantizer, x, **kwargs)
    grad_f = grad_f.reshape(16)
    assert np.array_equal(grad_f[on_grid], np.zeros(on_grid.sum(), np.float32))
    assert np.all(grad_f[~on_grid] != 0)


def test_weights_quantized_to_zero_have_zero_width_and_cost_nothing():
    quantizer = WeightQuantizer(granularity="per-element", init_f=2.0)
    w = np.array([[0.1, -0.12, 0.75], [0.0, 3.0, -0.5]], dtype=np.float32)
    quantizer.build(w.shape)
    width = quantizer.fixed_format(w).width
    zero = quantizer.quantized(w) == 0
    assert np.array_equal(zero, np.array([[True, True, False], [True, False, False]]))
    assert np.array_equal(width[zero], np.zeros(zero.sum(), dtype=width.dtype))
    assert np.all(width[~zero] > 0)

    layer = HDense(3, kernel_quantizer={"init_f": 2.0})
    layer.build((None, 2))
    layer.iq.record_range(ops.convert_to_tensor([[-1.0, 1.0], [0.5, -0.25]]))
    layer.kernel.assign(w)
    bits_in = np.broadcast_to(layer.iq.fixed_format().width, (2,))
    assert layer.ebops_exact() == int(np.sum(bits_in[:, None] * width))
    layer.kernel.assign(np.full_like(w, 0.1))  # every weight rounds to 0: fully pruned
    assert layer.ebops_exact() == 0


def test_weight_bit_surrogate_is_the_exact_width():
    """The EBOPs term's weight bits equal ``fixed_format``'s widths (quantized weights' k and i),
    also for weights that round up to one step or across a power of two."""
    rng = np.random.default_rng(4)
    quantizer = WeightQuantizer(granularity="per-element", init_f=2.0)
    w = np.concatenate([rng.normal(0, 1, 60), [0.125, 0.2, -0.2, 0.98, -0.98, 0.375, -0.125, 0.0]]).astype(np.float32)
    w = w.reshape(4, 17)
    quantizer.build(w.shape)
    quantizer.f.assign(rng.integers(-1, 6, w.shape).astype(np.float32))
    surrogate = ops.convert_to_numpy(quantizer.bits_surrogate(ops.convert_to_tensor(w)))
    assert np.array_equal(surrogate, quantizer.fixed_format(w).width.astype(np.float32))


def test_activation_bit_surrogate_is_the_exact_width_with_unit_gradient_where_nonzero():
    """bits_surrogate() (one exact width per element, ``width_surrogate``) equals k + i + f of
    ``fixed_format`` for ranges of both signs, a range rounding to 0 and powers of two; its f
    gradient is 1 where that width is > 0 and 0 where it is 0."""
    quantizer = ActivationQuantizer(init_f=3.0)
    quantizer.build((None, 8))
    lo = np.array([0.0, -1.0, -0.04, 0.0, -8.0, 2.0, -3.0, 0.01], np.float32)
    hi = np.array([0.0, 1.0, 0.04, 7.9, -4.0, 4.0, 1023.0, 0.02], np.float32)
    quantizer.range_lo.assign(lo)
    quantizer.range_hi.assign(hi)
    quantizer.range_seen.assign(1.0)
    fmt = quantizer.fixed_format()
    width = (fmt.k + fmt.i + fmt.f).astype(np.float32)
    assert np.array_equal(ops.convert_to_numpy(quantizer.bits_surrogate()), width)
    _, (grad_f,), _ = gradients(lambda: ops.sum(quantizer.bits_surrogate()), [quantizer.f])
    assert np.array_equal(grad_f, (width > 0).astype(np.float32))


def test_ceil_log2_integer_is_exact_around_powers_of_two():
    from hgq_chip.quantizers.surrogate import ceil_log2_integer

    powers = 2.0 ** np.arange(0, 24)
    m = np.unique(np.concatenate([powers, powers + 1, np.maximum(powers - 1, 1)])).astype(np.float32)
    expected = np.array([int(v - 1).bit_length() for v in m], np.float32)  # exact ceil(log2(m))
    assert np.array_equal(ops.convert_to_numpy(ceil_log2_integer(ops.convert_to_tensor(m))), expected)
