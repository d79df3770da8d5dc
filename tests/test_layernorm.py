"""HLayerNormalization: Keras equals a NumPy reference and the C simulation bit for bit (calibrated
and 4x out-of-range inputs; center/scale on and off; n = 10, 6 and 7, not powers of two), its
refusals, EBOPs, a training step, the estimate's operations, save/load.

One project (three layer normalizations) is converted and compiled for the module (~20 s).
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import hgq_chip
from hgq_chip.errors import UnsupportedConfigurationError, UnsupportedLayerError
from hgq_chip.layers import HDense, HLayerNormalization, HQuantize
from hgq_chip.layers.layernorm import mean_factor
from hgq_chip.testing.families.layernorm import reference


def _data(shape, seed=0, n=256):
    rng = np.random.default_rng(seed)
    return (rng.normal(0.5, 1.5, (n, *shape)) * rng.uniform(0.2, 2.0, (n,) + (1,) * len(shape))).astype(np.float32)


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, HLayerNormalization):
            for weight, mean in ((layer.ln_gamma, 1.0), (layer.ln_beta, 0.0)):
                if weight is not None:
                    weight.assign(rng.normal(mean, 0.4, weight.shape))
    return model


def _single(shape, **kwargs):
    inputs = keras.Input(shape)
    return _randomize(keras.Model(inputs, HLayerNormalization(**{"name": "ln", **kwargs})(inputs)))


def _out_of_range(x, seed=1):
    lo, hi = x.min(axis=0), x.max(axis=0)
    mid, half = (lo + hi) / 2, (hi - lo) / 2 * 4.0
    return np.random.default_rng(seed).uniform(mid - half, mid + half, (512, *x.shape[1:])).astype(np.float32)


@pytest.mark.parametrize("shape, kwargs", [
    ((10,), {}),
    ((10,), {"center": False, "scale": False}),
    ((3, 6), {"center": False, "input_quantizer": {"granularity": "per-element", "init_f": 3}}),
    ((7,), {"scale": False, "diff_quantizer": {"rounding": "TRN", "overflow": "WRAP"}, "mean_factor_bits": 5}),
])
def test_keras_equals_the_numpy_reference_in_and_out_of_range(shape, kwargs):
    model = _single(shape, **kwargs)
    x = _data(shape)
    hgq_chip.calibrate(model, x)
    layer = model.get_layer("ln")
    for data in (x, _out_of_range(x)):
        got = np.asarray(model.predict(data, verbose=0))
        assert np.array_equal(got, reference(layer, data))
        assert len(np.unique(got)) > 20  # not a saturated constant


def test_the_quantized_mean_factor_is_exact_for_powers_of_two_and_close_otherwise():
    assert mean_factor(8, 8) == (1, 3) and mean_factor(1, 8) == (1, 0)
    code, frac = mean_factor(10, 8)
    assert code.bit_length() <= 8 and abs(code * 2.0**-frac - 0.1) < 0.1 * 2.0**-8


def test_with_enough_bits_it_is_close_to_keras_layer_normalization():
    wide = {"init_f": 10}
    model = _single((10,), input_quantizer={"init_f": 8}, diff_quantizer=wide, variance_quantizer={"init_f": 6},
                    rsqrt_quantizer=wide, normalized_quantizer=wide, output_quantizer=wide, mean_factor_bits=16,
                    gamma_quantizer=wide, beta_quantizer=wide)
    x = _data((10,))
    hgq_chip.calibrate(model, x)
    layer = model.get_layer("ln")
    reference = keras.layers.LayerNormalization(epsilon=layer.epsilon)
    reference.build((None, 10))
    reference.set_weights([layer.gq.quantized(layer.ln_gamma.numpy()), layer.bq.quantized(layer.ln_beta.numpy())])
    assert np.abs(model.predict(x, verbose=0) - np.asarray(reference(x))).max() < 0.03


@pytest.mark.parametrize("kwargs, message", [
    ({"axis": 1}, "last axis only.*Permute"),
    ({"axis": [1, 2]}, "one axis, the last"),
    ({"rms_scaling": True}, "rms_scaling=False"),
    ({"diff_quantizer": {"granularity": "per-element"}}, "diff_quantizer granularity='per-layer'"),
    ({"epsilon": 0.0}, "epsilon > 0"),
    ({"mean_factor_bits": 30}, "mean_factor_bits in 1..24"),
])
def test_bad_arguments_are_refused_naming_the_layer_and_the_remedy(kwargs, message):
    with pytest.raises(UnsupportedLayerError, match="'?bad'?: HLayerNormalization .*" + message):
        _single((3, 4), name="bad", **kwargs) if "axis" in kwargs else HLayerNormalization(name="bad", **kwargs)


def test_ebops_count_squares_products_and_per_element_gamma_bits():
    model = _single((3, 10))
    hgq_chip.calibrate(model, _data((3, 10)))
    layer = model.get_layer("ln")
    width = {q.name: int(layer.__dict__[q.name].fixed_format().width.max()) for q in (layer.diff_q, layer.rsqrt_q,
                                                                                          layer.norm_q, layer.iq)}
    gamma_bits = int(layer.gq.fixed_format(layer.ln_gamma.numpy()).width.sum())
    per_row = (10 * width["diff_q"] ** 2 + 10 * width["diff_q"] * width["rsqrt_q"]
               + (width["iq"] + 4) * layer.factor_code.bit_length() + width["norm_q"] * gamma_bits)
    assert layer.ebops_exact() == 3 * per_row > 0 and hgq_chip.ebops(model) == layer.ebops_exact()


def test_a_training_step_moves_the_weights_and_bit_widths_and_saves_and_loads(tmp_path):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8,))
    x = HLayerNormalization(name="ln", beta0=1e-4)(HDense(6, name="d")(HQuantize(name="q")(inputs)))
    model = keras.Model(inputs, HDense(2, name="out")(x))
    data = _data((8,), n=96)
    target = np.stack([data[:, :4].sum(1), data[:, 4:].std(1)], 1)
    layer = model.get_layer("ln")
    before = [np.array(v) for v in (layer.ln_gamma.numpy(), layer.diff_q.f.numpy(), layer.rsqrt_q.f.numpy())]
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    history = model.fit(data, target, epochs=1, batch_size=32, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    after = (layer.ln_gamma.numpy(), layer.diff_q.f.numpy(), layer.rsqrt_q.f.numpy())
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))
    hgq_chip.calibrate(model, data)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert np.array_equal(loaded.predict(data, verbose=0), model.predict(data, verbose=0))


# ---- conversion ------------------------------------------------------------------------------

def _branches_model():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((12,), name="features")
    q = HQuantize(name="q")(inputs)
    full = HLayerNormalization(name="ln_full")(HDense(10, name="d1")(q))
    rows = keras.layers.Reshape((2, 6), name="rows")(HDense(12, name="d2")(q))
    plain = HLayerNormalization(name="ln_plain", center=False, scale=False)(rows)
    scaled = HLayerNormalization(name="ln_scale", center=False,
                                 input_quantizer={"granularity": "per-element", "init_f": 3})(HDense(7, name="d3")(q))
    return _randomize(keras.Model(inputs, [full, keras.layers.Flatten(name="flat")(plain), scaled]))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("layernorm")
    model = _branches_model()
    x = _data((12,), seed=2, n=512)
    hgq_chip.calibrate(model, x)
    hgq_chip.convert(model, root / "prj", force=True)
    return root, model, x


def test_csim_is_bit_exact_in_and_out_of_range(converted):
    root, model, x = converted
    assert "bit-exact" in hgq_chip.verify(model, root / "prj", x, strict=True).describe()
    assert "bit-exact" in hgq_chip.verify(model, root / "prj", random=1000, scale=4.0, strict=True).describe()


def test_the_project_runs_our_template_with_our_types(converted):
    root, _, _ = converted
    firmware = root / "prj" / "firmware"
    assert (firmware / "nnet_utils" / "nnet_hgq_layernorm.h").is_file()
    assert (firmware / "myproject.cpp").read_text().count("nnet::hgq_layernorm<") == 3
    summary = json.loads((root / "prj" / "summary.json").read_text())
    types = {layer["layer"]: layer for layer in summary["layers"]}["ln_full"]["hls_types"]["ln_full"]
    assert {"diff", "var", "rsqrt_table", "norm", "gamma", "beta", "affine", "factor"} <= set(types)
    assert types["var"].endswith("AP_RND,AP_SAT>") and types["result"].endswith("AP_RND,AP_SAT>")


def test_the_estimate_prices_the_sums_the_table_and_the_products(converted):
    root, _, _ = converted
    layers = {layer.layer: layer for layer in hgq_chip.estimate(root / "prj").layers}
    assert layers["ln_full"].lut > layers["ln_plain"].lut > 0
    facts = {f.name: f for f in hgq_chip.conversion.facts.read_facts(root / "prj" / "estimate_inputs.json")}
    kinds = [op.kind for op in facts["ln_full"].ops]
    assert kinds == ["cast", "add", "product", "add", "cast", "product", "add", "cast", "table", "product", "cast",
                     "product", "add", "cast"]


@pytest.mark.parametrize("kwargs, options, error, message", [
    ({}, {"io_type": "io_stream"}, UnsupportedConfigurationError, "io_parallel only"),
    ({"variance_quantizer": {"init_f": 14}}, {}, UnsupportedLayerError, "rsqrt table's index"),
    ({"input_quantizer": {"init_f": 18}}, {}, UnsupportedConfigurationError, "row sum of x"),
    ({"normalized_quantizer": {"init_f": -8}}, {}, UnsupportedLayerError, "'norm_q' of HLayerNormalization has 0 bits"),
])
def test_what_the_firmware_cannot_reproduce_is_refused_before_writing(tmp_path, kwargs, options, error, message):
    model = _single((6,), **kwargs)
    hgq_chip.calibrate(model, _data((6,)))
    with pytest.raises(error, match=message):
        hgq_chip.convert(model, tmp_path / "prj", **options)
    assert not (tmp_path / "prj").exists()


def test_keras_layer_normalization_points_to_it(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.LayerNormalization(name="plain")(HQuantize(name="q")(inputs)))
    hgq_chip.calibrate(model, _data((4,)))
    with pytest.raises(UnsupportedLayerError, match="'plain'.*HLayerNormalization"):
        hgq_chip.convert(model, tmp_path / "prj")


@pytest.mark.slow
def test_the_transformer_example_with_a_pre_ln_block_trains_converts_and_is_bit_exact(tmp_path):
    """examples/transformer_mnist.py --pre-ln on sklearn digits (2 epochs): HLayerNormalization in
    front of the attention, the best Pareto member converted and verified bit-exact (~2-4 min)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "transformer_mnist.py"
    spec = importlib.util.spec_from_file_location("transformer_mnist_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main([str(tmp_path), "--data", "", "--pre-ln", "--epochs", "2", "--verify-samples", "100"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["pre_ln"] and results["bit_exact"]
    assert "hgq_layernorm" in (tmp_path / "project" / "firmware" / "myproject.cpp").read_text()
