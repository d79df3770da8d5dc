"""HSoftmax: Keras equals the NumPy reference and the C simulation bit for bit (calibrated and 4x
out-of-range inputs, stable and plain, one and several rows), its refusals, EBOPs, estimate, CLI.

One project (three softmax branches) is converted and compiled for the module (~15 s).
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import hgq_chip
from hgq_chip.cli import main
from hgq_chip.errors import UnsupportedConfigurationError, UnsupportedLayerError
from hgq_chip.layers import HActivation, HDense, HQuantize, HSoftmax
from reference_softmax import softmax_reference


def _data(shape, seed=0, n=256, scale=1.5):
    return np.random.default_rng(seed).normal(0.0, scale, (n, *shape)).astype(np.float32)


def _out_of_range(model, x, seed=1):
    """Uniform inputs over the calibration data's range widened 4x."""
    lo, hi = x.min(axis=0), x.max(axis=0)
    mid, half = (lo + hi) / 2, (hi - lo) / 2 * 4.0
    return np.random.default_rng(seed).uniform(mid - half, mid + half, (512, *x.shape[1:])).astype(np.float32)


def _softmax_model(shape, **kwargs):
    inputs = keras.Input(shape)
    return keras.Model(inputs, HSoftmax(name="sm", **kwargs)(inputs))


@pytest.mark.parametrize("shape, kwargs", [
    ((10,), {}),
    ((10,), {"stable": False}),
    ((3, 5), {"input_quantizer": {"granularity": "per-element", "init_f": 2}}),
    ((6,), {"stable": False, "input_quantizer": {"overflow": "WRAP"}, "output_quantizer": {"rounding": "TRN"}}),
])
def test_keras_equals_the_numpy_reference_in_and_out_of_range(shape, kwargs):
    model = _softmax_model(shape, **kwargs)
    x = _data(shape)
    hgq_chip.calibrate(model, x)
    layer = model.get_layer("sm")
    for data in (x, _out_of_range(model, x)):
        got = np.asarray(model.predict(data, verbose=0))
        assert np.array_equal(got, softmax_reference(layer, data))


def test_the_stable_softmax_is_close_to_the_float_softmax():
    model = _softmax_model((10,), exp_quantizer={"init_f": 10}, inverse_quantizer={"init_f": 10},
                           output_quantizer={"init_f": 10}, sum_quantizer={"init_f": 8}, input_quantizer={"init_f": 6})
    x = _data((10,))
    hgq_chip.calibrate(model, x)
    y = np.asarray(model.predict(x, verbose=0))
    ref = np.exp(x - x.max(axis=1, keepdims=True))
    ref /= ref.sum(axis=1, keepdims=True)
    assert np.abs(y - ref).max() < 0.02


def test_ebops_count_the_products_of_two_variables():
    model = _softmax_model((3, 5))
    hgq_chip.calibrate(model, _data((3, 5)))
    layer = model.get_layer("sm")
    width_e = int(layer.exp_q.fixed_format().width.max())
    width_r = int(layer.inv_q.fixed_format().width.max())
    assert layer.ebops_exact() == 15 * width_e * width_r > 0
    assert hgq_chip.ebops(model) == layer.ebops_exact()


@pytest.mark.parametrize("kwargs, error, message", [
    ({"axis": 1}, ValueError, "last axis only"),
    ({"exp_quantizer": {"granularity": "per-element"}}, ValueError, "exp_quantizer must be granularity='per-layer'"),
    ({"dtype": "mixed_float16"}, UnsupportedConfigurationError, "mixed_float16"),
])
def test_bad_arguments_are_refused_at_construction(kwargs, error, message):
    with pytest.raises(error, match=message):
        HSoftmax(**kwargs)


def test_the_other_softmaxes_point_to_hsoftmax(tmp_path):
    with pytest.raises(UnsupportedLayerError, match="HSoftmax"):
        HActivation("softmax")
    with pytest.raises(ValueError, match="HSoftmax"):
        HDense(3, activation="softmax")
    x = _data((4,))
    for make in (lambda: keras.layers.Softmax(name="plain"), lambda: keras.layers.Activation("softmax", name="plain")):
        inputs = keras.Input((4,))
        model = keras.Model(inputs, make()(HDense(3, name="d")(HQuantize(name="q")(inputs))))
        hgq_chip.calibrate(model, x)
        with pytest.raises(UnsupportedLayerError, match="'plain'.*softmax.*HSoftmax"):
            hgq_chip.convert(model, tmp_path / "prj")
        assert not (tmp_path / "prj").exists()


def _calibrated(shape=(6,), **kwargs):
    model = _softmax_model(shape, **kwargs)
    hgq_chip.calibrate(model, _data(shape))
    return model


@pytest.mark.parametrize("kwargs, options, error, message", [
    ({}, {"io_type": "io_stream"}, UnsupportedConfigurationError, "io_parallel only"),
    ({"input_quantizer": {"init_f": 14}}, {}, UnsupportedLayerError, "exp table's index .* 18 bits"),
    ({"sum_quantizer": {"init_f": 14}}, {}, UnsupportedLayerError, "inverse table's index"),
    # 23-bit exp values summed over 6 elements need more than float32's 24 bits.
    ({"exp_quantizer": {"init_f": 22}}, {}, UnsupportedConfigurationError, "row sum of the exp values"),
    ({"sum_quantizer": {"init_f": -8}}, {}, UnsupportedLayerError, "'sum_q' of HSoftmax has 0 bits"),
])
def test_what_the_firmware_cannot_reproduce_is_refused_before_writing(tmp_path, kwargs, options, error, message):
    model = _calibrated(**kwargs)
    with pytest.raises(error, match=message):
        hgq_chip.convert(model, tmp_path / "prj", **options)
    assert not (tmp_path / "prj").exists()


# ---- the C simulation ------------------------------------------------------------------------

def _branches_model():
    keras.utils.set_random_seed(4)
    inputs = keras.Input((8,), name="features")
    q = HQuantize(name="q")(inputs)
    stable = HSoftmax(name="smax_stable")(HDense(5, name="d1")(q))
    plain = HSoftmax(stable=False, name="plain",
                     input_quantizer={"granularity": "per-element", "init_f": 2},
                     exp_quantizer={"init_f": 4})(HDense(5, name="d2")(q))
    rows = keras.layers.Reshape((2, 4), name="rows")(HDense(8, name="d3")(q))
    rows = keras.layers.Flatten(name="flat")(HSoftmax(name="rowwise", output_quantizer={"init_f": 6})(rows))
    return keras.Model(inputs, [stable, plain, rows])


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("softmax")
    model = _branches_model()
    x = _data((8,), seed=2)
    hgq_chip.calibrate(model, x)
    model.save(root / "model.keras")
    hgq_chip.convert(model, root / "prj", force=True)
    return root, model, x


def test_csim_is_bit_exact_in_and_out_of_range(converted):
    root, model, x = converted
    report = hgq_chip.verify(model, root / "prj", x, strict=True)
    assert "bit-exact" in report.describe()
    report = hgq_chip.verify(model, root / "prj", random=1000, scale=4.0, strict=True)
    assert "bit-exact" in report.describe()


def test_the_project_runs_our_template_with_our_tables(converted):
    root, model, _ = converted
    firmware = root / "prj" / "firmware"
    assert (firmware / "nnet_utils" / "nnet_hgq_softmax.h").is_file()
    top = (firmware / "myproject.cpp").read_text()
    assert top.count("nnet::hgq_softmax<") == 3 and "nnet::softmax" not in top
    summary = json.loads((root / "prj" / "summary.json").read_text())
    types = {layer["layer"]: layer for layer in summary["layers"]}["smax_stable"]["hls_types"]["smax_stable"]
    assert set(types) == {"result", "diff", "exp_table", "sum", "inv_in", "inv_table", "product"}
    assert types["result"].endswith("AP_RND,AP_SAT>") and types["inv_in"].endswith("AP_RND,AP_SAT>")


def test_the_estimate_prices_both_tables_and_the_products(converted):
    root, model, _ = converted
    layers = {layer.layer: layer for layer in hgq_chip.estimate(root / "prj").layers}
    assert layers["smax_stable"].lut > 0 and layers["plain"].lut + 1000 * layers["plain"].bram > 0
    facts = {f.name: f for f in hgq_chip.conversion.facts.read_facts(root / "prj" / "estimate_inputs.json")}
    kinds = [op.kind for op in facts["smax_stable"].ops]
    assert kinds == ["cast", "maxpool", "add", "table", "add", "cast", "table", "product", "cast"]
    assert [op.kind for op in facts["plain"].ops] == ["cast", "table", "add", "cast", "table", "product", "cast"]


def test_the_cli_converts_and_verifies_the_saved_model(converted, tmp_path, capsys):
    root, _, x = converted
    np.save(tmp_path / "x.npy", x)
    assert main(["convert", str(root / "model.keras"), "--backend", "Vitis", "--output-dir", str(tmp_path / "prj"),
                 "--quiet"]) == 0
    assert "HSoftmax" in capsys.readouterr().out
    for name in ("myproject.cpp", "parameters.h"):  # the same firmware as the API's conversion
        assert (tmp_path / "prj" / "firmware" / name).read_text() == (root / "prj" / "firmware" / name).read_text()
    assert main(["verify", str(root / "model.keras"), str(root / "prj"), "--data", str(tmp_path / "x.npy"),
                 "--quiet"]) == 0
    assert "bit-exact" in capsys.readouterr().out


def test_the_weights_fingerprint_ignores_beta_but_not_a_table_format(converted):
    from hgq_chip.conversion.fingerprint import weights_fingerprint

    _, model, _ = converted
    layer = model.get_layer("smax_stable")
    before, beta, f = weights_fingerprint(model), float(layer.beta.numpy()), layer.exp_q.f.numpy()
    try:
        layer.beta.assign(1e-3)  # beta schedules move it; the firmware never reads it
        assert weights_fingerprint(model) == before
        layer.exp_q.f.assign(f + 1.0)
        assert weights_fingerprint(model) != before
    finally:
        layer.beta.assign(beta)
        layer.exp_q.f.assign(f)


def test_the_report_shows_the_softmax_row_and_its_table_types(converted, tmp_path):
    root, _, _ = converted
    page = tmp_path / "report.md"
    assert main(["report", str(root / "prj"), "--format", "md", "--output", str(page)]) == 0
    rows = [line for line in page.read_text().splitlines() if line.startswith("| smax_stable |")]
    assert any("| HSoftmax |" in row for row in rows)
    assert any("exp_table ap_ufixed" in row and "inv_in ap_ufixed" in row for row in rows)


@pytest.mark.parametrize("stable", [True, False])
def test_predictions_under_xla_equal_the_plain_ones(stable):
    """exp and 1/x run in float64 and are rounded to float32 once, so XLA's kernels give the same tables."""
    model = _softmax_model((10,), stable=stable, exp_quantizer={"init_f": 5})
    x = _data((10,))
    hgq_chip.calibrate(model, x)
    data = np.concatenate([x, _out_of_range(model, x)])
    model.compile(jit_compile=False)
    plain = model.predict(data, batch_size=128, verbose=0)
    model.compile(jit_compile=True)
    assert np.array_equal(plain, model.predict(data, batch_size=128, verbose=0))


def test_the_stable_exp_table_ends_where_its_entries_become_constant(converted):
    from hgq_chip.conversion.rules.softmax import constant_tail_cut

    assert constant_tail_cut(np.array([3.0, 2.0, 1.0, 0.0, 0.0, 0.0])).tolist() == [3.0, 2.0, 1.0, 0.0]
    assert constant_tail_cut(np.array([5.0, 5.0])).tolist() == [5.0]
    assert constant_tail_cut(np.array([1.0, 2.0])).tolist() == [1.0, 2.0]
    root, _, _ = converted
    summary = json.loads((root / "prj" / "summary.json").read_text())
    diff = {layer["layer"]: layer["hls_types"] for layer in summary["layers"]}["smax_stable"]["smax_stable"]["diff"]
    width = int(diff.split("<")[1].split(",")[0])
    firmware = root / "prj" / "firmware"
    call = next(line for line in (firmware / "myproject.cpp").read_text().splitlines() if line.endswith("// smax_stable"))
    table = call.split("(")[1].split(",")[2].strip()  # (input, output, exp_tableN, inv_tableN)
    entries = (firmware / "weights" / f"{table}.txt").read_text().split(",")
    assert 1 < len(entries) < 2**width  # the 4x out-of-range verify above reads past the cut
