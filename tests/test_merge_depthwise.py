"""HSubtract/HMultiply/HMaximum/HMinimum and HDepthwiseConv1D/2D: exact in C simulation, refused where not.

Each exactness test converts one model combining several of the layers (one g++ compile) and
compares the C simulation with Keras on calibration-range inputs and inputs up to 4x outside
the calibrated range (``exactness.assert_bit_exact``: every value equal). The merge model is
built from subtract, multiply and maximum as in issue 16's acceptance case (without the 1D
zero padding, which another change adds).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import hgq_chip
from exactness import assert_bit_exact
from hgq_chip import layers as L
from hgq_chip.cli import main
from hgq_chip.conversion.facts import facts_from_model
from hgq_chip.errors import UnsupportedConfigurationError, UnsupportedLayerError
from hgq_chip.estimation import estimate

PER_LAYER = {"granularity": "per-layer"}


def merge_model_1d(stream: bool, depth_multiplier: int = 2, quantize_input: bool = True):
    """Merges (every kind, 2 and 3 inputs, with and without input quantizers) around depthwise
    convolutions (kernel 1 and 3, 'same' and 'valid', depth multiplier 1 and ``depth_multiplier``).
    ``quantize_input=False`` leaves out the HQuantize (the layers' own quantizers read the input)."""
    q = PER_LAYER if stream else {}
    keras.utils.set_random_seed(4)
    inputs = keras.Input((8, 3), name="x")
    x = L.HQuantize(q, name="quant")(inputs) if quantize_input else inputs
    a = L.HConv1D(3, 2, padding="same", input_quantizer=q, name="conv")(x)
    b = L.HDepthwiseConv1D(1, activation="relu", use_bias=False, input_quantizer=q, name="dw_pointwise")(x)
    d = L.HSubtract(name="sub")([a, b])
    m = L.HMultiply(input_quantizer={"init_f": 3, **q}, name="mul")([d, a])
    top = L.HMaximum(name="top")([m, d, b])
    low = L.HMinimum(input_quantizer={"init_f": 2, "overflow": "SAT", **q}, name="low")([top, a])
    y = L.HDepthwiseConv1D(3, padding="same", depth_multiplier=depth_multiplier, input_quantizer=q, name="dw")(low)
    y = L.HDepthwiseConv1D(2, strides=2, input_quantizer=q, name="dw_strided")(y)
    return keras.Model(inputs, keras.layers.Flatten(name="flat")(y))


def depthwise_model_2d(stream: bool, quantize_input: bool = True):
    """Depthwise 2D convolutions (square, tall, strided; multipliers 1 and 2) and merges."""
    q = PER_LAYER if stream else {}
    keras.utils.set_random_seed(5)
    inputs = keras.Input((6, 6, 2), name="x")
    x = L.HQuantize(q, name="quant")(inputs) if quantize_input else inputs
    a = L.HDepthwiseConv2D(3, padding="same", activation="relu", input_quantizer=q, name="dw_same")(x)
    b = L.HDepthwiseConv2D((3, 1), padding="same", use_bias=False, input_quantizer=q, name="dw_tall")(x)
    m = L.HMultiply(input_quantizer={"init_f": 2, **q}, name="mul")([a, b])
    s = L.HSubtract(input_quantizer={"init_f": 3, **q}, name="sub")([m, a])
    y = L.HMaximum(name="top")([s, b])
    y = L.HDepthwiseConv2D(2, strides=2, depth_multiplier=2, input_quantizer=q, name="dw_strided")(y)
    return keras.Model(inputs, keras.layers.Flatten(name="flat")(y))


def _data(model, scale=1.5, n=128, seed=0):
    shape = tuple(model.inputs[0].shape[1:])
    return np.random.default_rng(seed).normal(0, scale, (n, *shape)).astype(np.float32)


def test_merges_and_depthwise_1d_are_exact_in_io_parallel(tmp_path):
    model = merge_model_1d(stream=False)
    assert_bit_exact(model, _data(model), tmp_path / "prj", backend="Vitis", io_type="io_parallel")


def test_merges_and_depthwise_2d_are_exact_in_io_stream(tmp_path):
    model = depthwise_model_2d(stream=True)
    assert_bit_exact(model, _data(model), tmp_path / "prj", backend="Vitis", io_type="io_stream")


@pytest.mark.slow
@pytest.mark.parametrize("dims, io_type, strategy", [
    (1, "io_stream", "latency"), (2, "io_parallel", "latency"), (2, "io_parallel", "distributed_arithmetic"),
    (1, "io_stream", "distributed_arithmetic"),
])
def test_merges_and_depthwise_are_exact_in_every_configuration(tmp_path, dims, io_type, strategy):
    # hls4ml 1.3 cannot put distributed arithmetic right after an HQuantize: leave it out there.
    build = merge_model_1d if dims == 1 else depthwise_model_2d
    model = build(stream=io_type == "io_stream", quantize_input=strategy == "latency")
    assert_bit_exact(model, _data(model, scale=3.0), tmp_path / "prj", backend="Vivado", io_type=io_type,
                     strategy=strategy)


@pytest.mark.slow
def test_a_trained_merge_model_converts_through_the_cli_and_verifies(tmp_path, capsys):
    """Train the merge model a few epochs, save it, convert and verify through the CLI
    (calibration data and 4x out-of-range random inputs)."""
    model = merge_model_1d(stream=False)
    x = _data(model, n=256)
    y = np.sum(x[:, :6, :2], axis=(1, 2))
    head = L.HDense(1, name="head")(model.outputs[0])
    model = keras.Model(model.inputs, head)
    model.compile("adam", "mse")
    model.fit(x, y, epochs=3, batch_size=64, verbose=0)
    hgq_chip.calibrate(model, x)
    np.save(tmp_path / "x.npy", x)
    model.save(tmp_path / "model.keras")
    assert main(["convert", str(tmp_path / "model.keras"), "--backend", "Vitis", "--output-dir", str(tmp_path / "prj"), "--quiet"]) == 0
    assert main(["verify", str(tmp_path / "model.keras"), str(tmp_path / "prj"), "--data", str(tmp_path / "x.npy")]) == 0
    assert main(["verify", str(tmp_path / "model.keras"), str(tmp_path / "prj"), "--random", "200", "--scale", "4"]) == 0
    assert "bit-exact" in capsys.readouterr().out


def test_a_saved_merge_model_converts_through_the_cli(tmp_path, capsys):
    """The saved .keras file (every new class) converts via ``hgq_chip convert``; no compile here."""
    model = merge_model_1d(stream=False)
    hgq_chip.calibrate(model, _data(model))
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    x = _data(model, seed=1)
    assert np.array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
    assert hgq_chip.ebops(loaded) == hgq_chip.ebops(model)
    assert main(["convert", str(tmp_path / "model.keras"), "--backend", "Vitis", "--output-dir", str(tmp_path / "prj")]) == 0
    out = capsys.readouterr().out
    for name in ("sub", "mul", "top", "low", "dw", "dw_pointwise"):
        assert f"\n{name} " in out, f"{name} has no summary row"


@pytest.mark.parametrize("multiplier, hls_class", [(1, "DepthwiseConv1D"), (3, "Conv1D")])
def test_depthwise_handler_gives_hls4ml_one_bias_per_output_channel(multiplier, hls_class):
    """Without a bias the firmware still reads one (zero) bias per output channel."""
    from hgq_chip.conversion import hls_handlers
    from hgq_chip.conversion.graph import graph_nodes
    from hgq_chip.conversion.precision import derive
    from hgq_chip.conversion.rules.conv import handle_depthwise

    inputs = keras.Input((6, 4), name="x")
    layer = L.HDepthwiseConv1D(2, depth_multiplier=multiplier, use_bias=False, name="dw")
    model = keras.Model(inputs, layer(inputs))
    hgq_chip.calibrate(model, _data(model))
    nodes = graph_nodes(model)
    node = nodes[-1]
    with hls_handlers.converting(records=derive(nodes)):
        main = [c for c in handle_depthwise(layer, node.inputs, node.outputs) if c["name"] == "dw"][0]
    assert main["class_name"] == hls_class and np.array_equal(main["bias_data"], np.zeros(4 * multiplier))
    assert main["weight_data"].shape == (2, 4, 1 if multiplier == 1 else 4 * multiplier)


def test_multiply_ebops_are_bits_times_bits_and_priced_as_products():
    keras.utils.set_random_seed(0)
    inputs = [keras.Input((5,), name="a"), keras.Input((5,), name="b"), keras.Input((5,), name="c")]
    layer = L.HMultiply(input_quantizer={"init_f": 4}, name="mul")
    model = keras.Model(inputs, layer(inputs))
    rng = np.random.default_rng(0)
    hgq_chip.calibrate(model, [rng.uniform(-3, 3, (64, 5)).astype(np.float32) for _ in inputs])
    a, b, c = (q.fixed_format().width for q in layer.input_quantizers)
    assert layer.ebops_exact() == int(np.sum(a * b + (a + b) * c)) == hgq_chip.ebops(model)
    products = [op for op in facts_from_model(model)[-1].ops if op.kind == "product"]
    assert [np.asarray(op.b_width).tolist() for op in products] == [b.tolist(), c.tolist()]
    assert estimate(model, dsp_min_product_bits=10**6).layers[-1].lut > 0
    assert estimate(model, dsp_min_product_bits=1).layers[-1].dsp == 2 * 5


@pytest.mark.parametrize("make, error, message", [
    (lambda x, y: L.HSubtract(name="sub")([x, y]), UnsupportedLayerError, "input shapes"),
    (lambda x, y: L.HMaximum(name="top")([x, y]), UnsupportedLayerError, "no broadcasting"),
])
def test_broadcasting_merges_are_refused_before_writing(tmp_path, make, error, message):
    a, b = keras.Input((4, 3), name="a"), keras.Input((1, 3), name="b")
    out = make(L.HQuantize(name="qa")(a), L.HQuantize(name="qb")(b))
    model = keras.Model([a, b], out)
    rng = np.random.default_rng(0)
    hgq_chip.calibrate(model, [rng.normal(size=(16, 4, 3)), rng.normal(size=(16, 1, 3))])
    with pytest.raises(error, match=message):
        hgq_chip.convert(model, tmp_path / "prj", log=lambda *_: None)
    assert not (tmp_path / "prj").exists()


def test_stream_depthwise_with_a_lost_row_stride_is_refused(tmp_path):
    inputs = keras.Input((6, 6, 2), name="x")
    out = L.HDepthwiseConv2D((1, 2), strides=(2, 1), input_quantizer=PER_LAYER, name="dw")(inputs)
    model = keras.Model(inputs, out)
    hgq_chip.calibrate(model, _data(model))
    with pytest.raises(UnsupportedConfigurationError, match="'dw'.*row stride"):
        hgq_chip.convert(model, tmp_path / "prj", io_type="io_stream", log=lambda *_: None)
    assert not (tmp_path / "prj").exists()


def test_merges_and_depthwise_refuse_what_has_no_exact_firmware():
    with pytest.raises(ValueError, match="causal"):
        L.HDepthwiseConv1D(3, padding="causal")
    with pytest.raises(ValueError, match="channels_last"):
        L.HDepthwiseConv2D(3, data_format="channels_first")
    with pytest.raises(ValueError, match="tanh"):
        L.HDepthwiseConv1D(3, activation="tanh")
    with pytest.raises(UnsupportedConfigurationError, match="'sub'.*mixed_float16"):
        L.HSubtract(dtype="mixed_float16", name="sub")


@pytest.mark.parametrize("build", [merge_model_1d, depthwise_model_2d])
def test_predictions_under_xla_equal_the_plain_ones(build):
    """What the firmware is compared with does not depend on compiling the model with XLA."""
    model = build(stream=False)
    x = _data(model, scale=3.0)
    hgq_chip.calibrate(model, x[:64])
    model.compile(jit_compile=False)
    plain = model.predict(x, batch_size=64, verbose=0)
    model.compile(jit_compile=True)
    assert np.array_equal(model.predict(x, batch_size=64, verbose=0), plain)
