"""Derived types hold every reachable value exactly, and are minimal (as hls4ml's qinterval tests)."""

import itertools

import keras
import numpy as np
import pytest

from hgq_chip.calibration import calibrate
from hgq_chip.conversion.graph import graph_nodes
from hgq_chip.conversion.inputs import input_format
from hgq_chip.conversion.precision import derive
from hgq_chip.fixed import FixedFormat, quantize_np
from hgq_chip.fixed.minimal import fractional_bits
from hgq_chip.layers import HDense, HQuantize


def fits(values, fmt: FixedFormat) -> bool:
    """All values representable in fmt without rounding or overflow."""
    v = np.asarray(values, dtype=np.float64)
    return bool(np.all(v * 2.0**fmt.f == np.round(v * 2.0**fmt.f)) and np.all(v >= fmt.min) and np.all(v <= fmt.max))


def tiny_model(seed, rounding="RND", overflow="WRAP"):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((2,))
    x = HQuantize(quantizer={"init_f": 2.0, "rounding": rounding, "overflow": overflow})(inp)
    x = HDense(3, kernel_quantizer={"init_f": 3.0}, bias_quantizer={"init_f": 2.0},
               input_quantizer={"init_f": 2.0, "rounding": rounding}, activation="relu")(x)
    out = HDense(2, kernel_quantizer={"init_f": 2.0}, input_quantizer={"init_f": 1.0})(x)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(seed)
    calibrate(model, rng.uniform(-1.5, 1.5, (64, 2)).astype("float32"))
    return model


def reachable_inputs(fmt):
    """Every value of the quantizer's format, per element (cartesian product)."""
    axes = []
    for e in range(fmt.k.size):
        k, i, f = (int(a.ravel()[e]) for a in (fmt.k, fmt.i, fmt.f))
        element = FixedFormat(k, i, f)
        axes.append(np.arange(element.min, element.max + element.step / 2, element.step))
    return np.array(list(itertools.product(*axes)), dtype=np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dense_types_hold_all_reachable_values_and_are_minimal(seed):
    model = tiny_model(seed)
    first_quantizer = model.layers[1].q
    x = reachable_inputs(first_quantizer.fixed_format())
    records = {r.layer_name: r for r in derive(graph_nodes(model))}
    dense = model.layers[2]
    # Everything the first dense layer can compute, exactly (float64, all reachable inputs).
    q_in = dense.iq.quantize_np(first_quantizer.quantize_np(x))
    kernel = records[dense.name].weights["kernel"].values
    bias = records[dense.name].weights["bias"].values
    accum = q_in @ kernel + bias
    types = {h.name: h.types for h in records[dense.name].hls_layers}[dense.name]
    fmt = types["accum"]
    assert fits(accum, fmt)
    assert fits(kernel, types["weight"]) and fits(bias, types["bias"])
    # The derived interval is the exact hull of the reachable sums, so the type is minimal.
    fewer_integer = FixedFormat(fmt.k, fmt.i - 1, fmt.f)
    fewer_fraction = FixedFormat(fmt.k, fmt.i, fmt.f - 1)
    assert not fits(accum, fewer_integer)
    assert not fits(accum, fewer_fraction)
    if fmt.k:
        assert not fits(accum, FixedFormat(0, fmt.i, fmt.f))


def test_relu_output_type_is_unsigned_and_minimal():
    model = tiny_model(3)
    dense = model.layers[2]
    record = {r.layer_name: r for r in derive(graph_nodes(model))}[dense.name]
    relu_types = {h.name: h.types for h in record.hls_layers}[f"{dense.name}_relu"]
    assert relu_types["result"].k == 0
    hi = record.output.hi.max()
    fmt = relu_types["result"]
    assert fmt.max >= hi and FixedFormat(0, fmt.i - 1, fmt.f).max < hi


@pytest.mark.parametrize("rounding", ["RND", "TRN"])
@pytest.mark.parametrize("overflow", ["WRAP", "SAT", "SAT_SYM"])
def test_input_type_then_quantizer_equals_single_quantization(rounding, overflow):
    """Casting to the input type and then per element gives exactly one rounding, as Keras does."""
    keras.utils.set_random_seed(4)
    inp = keras.Input((6,))
    layer = HQuantize(quantizer={"rounding": rounding, "overflow": overflow, "init_f": 3.0})
    model = keras.Model(inp, layer(inp))
    layer.q.f.assign(np.array([-1.0, 0.0, 1.0, 2.0, 3.0, 5.0]))
    rng = np.random.default_rng(0)
    calibrate(model, rng.uniform(-3, 5, (32, 6)).astype("float32"))
    fmt = layer.q.fixed_format()
    guard = input_format([layer.q])
    x = np.concatenate([
        rng.uniform(-40, 40, (4000, 6)),
        np.round(rng.uniform(-40, 40, (4000, 6)) * 64) / 64 + 1 / 128,  # ties and near-ties
    ]).astype(np.float32)
    direct = quantize_np(x, fmt.k, fmt.i, fmt.f, rounding, overflow)
    staged = quantize_np(quantize_np(x, guard.k, guard.i, guard.f, guard.rounding, guard.overflow),
                         fmt.k, fmt.i, fmt.f, rounding, overflow)
    assert np.array_equal(direct, staged)
    assert np.array_equal(direct, np.asarray(model(x, training=False)))


def test_fractional_bits_of_constants_are_minimal():
    values = np.array([0.75, -0.5, 3.0, 0.0, 2.0**-9, 96.0])
    f = fractional_bits(values)
    assert np.array_equal(f, [2, 1, 0, 0, 9, -5])
