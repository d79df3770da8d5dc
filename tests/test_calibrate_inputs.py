"""calibrate(): every bad input is refused before a range changes; arrays, lists, dicts, tf.data and
generators give the same ranges; a failure in the middle of the batch loop restores the old ranges."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import hgq_chip
from hgq_chip.calibration import activation_quantizers
from hgq_chip.errors import CalibrationError, DataError
from hgq_chip.layers import HDense, HQuantize

pytestmark = pytest.mark.keras_level  # also run under JAX in CI (docs/backends.md, "Backends in CI")

RNG = np.random.default_rng(0)
A = RNG.normal(size=(100, 4)).astype("float32")
B = RNG.normal(size=(100, 3, 2)).astype("float32")


def two_input_model():
    keras.utils.set_random_seed(0)
    a, b = keras.Input((4,), name="a"), keras.Input((3, 2), name="b")
    y = keras.layers.Flatten()(HQuantize(name="qb")(b))
    return keras.Model([a, b], [HDense(2, name="da")(HQuantize(name="qa")(a)), HDense(2, name="db")(y)])


def ranges(model) -> list[np.ndarray]:
    return [np.array(v.numpy()) for q in activation_quantizers(model) for v in (q.range_lo, q.range_hi, q.range_seen)]


def same(x, y) -> bool:
    return len(x) == len(y) and all(np.array_equal(p, q) for p, q in zip(x, y))


@pytest.fixture(scope="module")
def calibrated():
    model = two_input_model()
    hgq_chip.calibrate(model, [A, B])
    return model, ranges(model)


BAD = {
    "one array for two inputs": (A, "has 2 inputs ('a', 'b')"),
    "too few arrays": ([A], "but 1 arrays were given"),
    "per-sample shape": ([A, B[:, :2]], "input 'b' expects an array of shape (samples, 3, 2), got (100, 2, 2)"),
    "rank": ([A[:, :, None], B], "expects an array of shape (samples, 4), got (100, 4, 1)"),
    "one sample without the samples axis": ([A[0], B[0]], "use x[None]"),
    "object dtype": ([A, B.astype(object)], "dtype object"),
    "strings": ([np.full((2, 4), "x"), B[:2]], "not real numbers"),
    "empty": ([A[:0], B[:0]], "is empty"),
    "NaN": ([A, np.where(B > 1, np.nan, B)], "NaN or infinite"),
    "inf": ([np.where(A > 1, np.inf, A), B], "NaN or infinite"),
    "sample counts differ": ([A, B[:50]], "different numbers of samples (a: 100, b: 50)"),
    "dict keys": ({"a": A, "c": B}, "missing ['b'], unexpected ['c']"),
    "batch size": (([A, B], 0), "batch_size must be a positive integer"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_calibration_data_is_refused_before_any_range_changes(calibrated, name):
    model, good = calibrated
    x, message = BAD[name]
    x, batch_size = x if name == "batch size" else (x, 1024)
    with pytest.raises(DataError) as error:
        hgq_chip.calibrate(model, x, batch_size=batch_size)
    assert message in str(error.value)
    assert same(ranges(model), good)


def test_lists_dicts_datasets_and_generators_give_the_ranges_of_arrays(calibrated):
    import tensorflow as tf

    model, good = calibrated
    sources = {
        "dict": {"b": B, "a": A},
        "tuple": (A, B),
        "tf.data (x, y)": tf.data.Dataset.from_tensor_slices(((A, B), np.zeros(100))).batch(16),
        "generator of x": ([A[i : i + 30], B[i : i + 30]] for i in range(0, 100, 30)),
        "generator of (x, y, w)": (([A[i : i + 7], B[i : i + 7]], None, None) for i in range(0, 100, 7)),
    }
    for name, source in sources.items():
        hgq_chip.calibrate(model, [A * 3, B * 3])  # something else in between
        assert not same(ranges(model), good)
        hgq_chip.calibrate(model, source)
        assert same(ranges(model), good), name


def test_one_input_model_takes_an_array_a_list_of_one_or_nested_lists():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, HDense(2)(HQuantize()(inputs)))
    hgq_chip.calibrate(model, A)
    good = ranges(model)
    for x in ([A], A.tolist(), (batch for batch in np.split(A, 4))):
        hgq_chip.calibrate(model, A[:3] * 5)
        hgq_chip.calibrate(model, x)
        assert same(ranges(model), good)


@pytest.mark.parametrize("fault", [RuntimeError, KeyboardInterrupt])
def test_a_failure_in_the_middle_of_the_batch_loop_restores_the_old_ranges(calibrated, fault):
    model, good = calibrated

    def batches():
        yield [A * 10, B * 10]  # recorded before the fault: must be undone
        raise fault("stopped")

    with pytest.raises(fault):
        hgq_chip.calibrate(model, batches())
    assert same(ranges(model), good)
    assert not any(q.calibrating for q in activation_quantizers(model))


def test_a_bad_batch_or_no_batch_from_a_generator_restores_the_old_ranges(calibrated):
    model, good = calibrated
    with pytest.raises(DataError, match=r"batch 1\): input 'b' expects an array of shape \(samples, 3, 2\)"):
        hgq_chip.calibrate(model, iter([[A * 10, B * 10], [A, B[:, :1]]]))
    assert same(ranges(model), good)
    with pytest.raises(DataError, match="yielded no batches"):
        hgq_chip.calibrate(model, iter([]))
    assert same(ranges(model), good)


def test_a_model_without_activation_quantizers_is_a_calibration_error():
    inputs = keras.Input((4,))
    with pytest.raises(CalibrationError, match="no hgq_chip activation quantizers"):
        hgq_chip.calibrate(keras.Model(inputs, keras.layers.Dense(2)(inputs)), A)
