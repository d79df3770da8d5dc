"""HActivation: exact relu/linear, exact tables for other activations, errors, saving, gradients."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest
from keras import ops

from gradients import gradients
from hgq_chip.calibration import calibrate, uncalibrated_quantizers
from hgq_chip.cost import ebops
from hgq_chip.errors import CalibrationError, UnsupportedLayerError
from hgq_chip.layers import HActivation, HDense, HQuantize

pytestmark = pytest.mark.keras_level  # also run under JAX in CI (docs/backends.md, "Backends in CI")

SHAPE = (6,)


def data(seed, n=256, scale=2.0):
    return (np.random.default_rng(seed).normal(size=(n,) + SHAPE) * scale).astype(np.float32)


def activation_model(activation, **layer_kwargs):
    inputs = keras.Input(SHAPE)
    outputs = HActivation(activation, name="act", **layer_kwargs)(inputs)
    return keras.Model(inputs, outputs)


def randomize_f(quantizer, low, high, seed):
    shape = quantizer.f.shape
    quantizer.f.assign(np.random.default_rng(seed).integers(low, high + 1, size=shape).astype(np.float32))


def lookup(layer, table_inputs, table, x):
    """The firmware's view: quantize each element's input, then index that element's table."""
    q = layer.iq.quantize_np(x)
    step = table_inputs[1] - table_inputs[0]
    index = np.round((q - table_inputs[0]) / step).astype(np.int64)
    assert np.array_equal(table_inputs[index], q)
    elements = np.broadcast_to(np.arange(int(np.prod(SHAPE))).reshape(SHAPE), q.shape)
    return table.reshape(len(table_inputs), -1)[index, elements]


@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_exact_activation_equals_numpy_reference(activation):
    model = activation_model(activation)
    layer = model.get_layer("act")
    assert layer.oq is None and not layer.uses_table
    randomize_f(layer.iq, 1, 5, seed=1)
    calibrate(model, data(0))
    # Wider test data: values beyond the calibrated range exercise the WRAP overflow.
    x = data(2, scale=3.0)
    q = layer.iq.quantize_np(x)
    reference = np.maximum(q, 0.0) if activation == "relu" else q
    assert np.array_equal(keras.ops.convert_to_numpy(model(x, training=False)).astype(np.float64), reference)
    assert np.array_equal(model.predict(x, verbose=0).astype(np.float64), reference)
    assert uncalibrated_quantizers(model) == []


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "gelu"])
@pytest.mark.parametrize("granularity", ["per-element", "per-layer"])
def test_table_lookup_equals_layer_output(activation, granularity):
    model = activation_model(
        activation,
        input_quantizer={"granularity": granularity},
        output_quantizer={"granularity": granularity},
    )
    layer = model.get_layer("act")
    randomize_f(layer.iq, 2, 5, seed=3)
    randomize_f(layer.oq, 3, 7, seed=4)
    calibrate(model, data(5))
    inputs = layer.table_inputs()
    fmt = layer.table_input_format()
    assert layer.table_size() == len(inputs) == 2**fmt.width
    assert np.array_equal(np.diff(inputs), np.full(len(inputs) - 1, 2.0**-fmt.f))
    table = layer.evaluate_table(inputs)
    assert table.shape == (len(inputs),) + SHAPE
    if granularity == "per-layer":
        assert np.array_equal(table, np.broadcast_to(table[:, :1], table.shape))

    x = data(6, n=2048, scale=3.0)  # includes inputs beyond the calibrated range (saturated)
    expected = lookup(layer, inputs, table, x)
    assert np.array_equal(model.predict(x, verbose=0).astype(np.float64), expected)
    assert np.array_equal(keras.ops.convert_to_numpy(model(x, training=False)).astype(np.float64), expected)
    # Outputs lie on the output quantizer's grid.
    assert np.array_equal(layer.oq.quantize_np(table), table)


def test_tanh_table_matches_numpy_tanh():
    model = activation_model("tanh", output_quantizer={"init_f": 9.0})
    layer = model.get_layer("act")
    calibrate(model, data(7))
    inputs = layer.table_inputs()
    table = layer.evaluate_table(inputs)
    reference = layer.oq.quantize_np(np.tanh(inputs).astype(np.float32)[:, None])
    assert np.array_equal(table, np.broadcast_to(reference, table.shape))


def test_per_element_table_inputs_are_subset_of_covering_ones():
    model = activation_model("sigmoid")
    layer = model.get_layer("act")
    randomize_f(layer.iq, 1, 6, seed=8)
    calibrate(model, data(9))
    covering = layer.table_inputs()
    for element in range(SHAPE[0]):
        own = layer.table_inputs((element,))
        assert len(own) == layer.table_size((element,))
        assert np.isin(own, covering).all()
        # The per-element inputs, fed element-wise, reproduce the covering table's entries.
        per_element = layer.evaluate_table(own)[:, element]
        full = layer.evaluate_table(covering)[:, element]
        assert np.array_equal(per_element, full[np.searchsorted(covering, own)])


def test_non_elementwise_activation_is_rejected():
    with pytest.raises(UnsupportedLayerError, match="argmax"):
        HActivation("softmax")


def test_exact_activation_rejects_output_quantizer():
    with pytest.raises(ValueError, match="output_quantizer"):
        HActivation("relu", output_quantizer={"init_f": 4})


def test_table_needs_calibration_and_a_narrow_input():
    model = activation_model("tanh", input_quantizer={"init_f": 14.0})
    layer = model.get_layer("act")
    with pytest.raises(CalibrationError):
        layer.table_inputs()
    calibrate(model, data(10, scale=4.0))
    assert layer.table_input_format().width > 16
    with pytest.raises(UnsupportedLayerError, match="bits wide"):
        layer.table_inputs()
    with pytest.raises(ValueError, match="needs no table"):
        activation_model("relu").get_layer("act").table_inputs()


def test_save_load_round_trip(tmp_path):
    model = activation_model("tanh", output_quantizer={"granularity": "per-channel"})
    layer = model.get_layer("act")
    randomize_f(layer.iq, 2, 6, seed=11)
    calibrate(model, data(12))
    path = tmp_path / "act.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = data(13, scale=3.0)
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    loaded_layer = loaded.get_layer("act")
    assert isinstance(loaded_layer, HActivation)
    assert loaded_layer.get_config() == layer.get_config()
    assert np.array_equal(loaded_layer.evaluate_table(loaded_layer.table_inputs()), layer.evaluate_table(layer.table_inputs()))


def test_gradients_reach_both_bit_widths():
    model = activation_model("sigmoid")
    layer = model.get_layer("act")
    x = data(14, n=64)
    weights = np.random.default_rng(15).normal(size=SHAPE).astype(np.float32)
    _, grads, _ = gradients(lambda t: ops.sum(model(t, training=True) * weights), [layer.iq.f, layer.oq.f], [x])
    for grad in grads:
        assert np.all(np.isfinite(grad)) and np.any(grad != 0)
    assert {id(v) for v in model.trainable_variables} >= {id(layer.iq.f), id(layer.oq.f)}


def test_activation_adds_no_ebops():
    inputs = keras.Input(SHAPE)
    x = HQuantize()(inputs)
    x = HDense(4, name="dense")(x)
    outputs = HActivation("tanh")(x)
    model = keras.Model(inputs, outputs)
    calibrate(model, data(16))
    assert ebops(model) == model.get_layer("dense").ebops_exact() > 0


@pytest.mark.parametrize("activation", ["tanh", "silu"])
def test_table_equals_every_execution_path(activation):
    # Fine output grids expose last-bit differences between TF's eager and XLA float32
    # kernels; the layer's float64 evaluation must make them vanish.
    model = activation_model(activation, input_quantizer={"init_f": 10.0}, output_quantizer={"init_f": 16.0})
    layer = model.get_layer("act")
    calibrate(model, np.random.default_rng(17).uniform(-4, 4, size=(512,) + SHAPE).astype(np.float32))
    inputs = layer.table_inputs()
    table = layer.evaluate_table(inputs)
    x = np.broadcast_to(inputs[:, None], (len(inputs),) + SHAPE).astype(np.float32)
    assert np.array_equal(model.predict(x, verbose=0, batch_size=1000), table)
    model.compile(jit_compile=True)
    assert np.array_equal(model.predict(x, verbose=0, batch_size=777), table)
