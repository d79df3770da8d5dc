"""Data movement and global pooling: bit-exact C simulation, derived types, refusals.

ZeroPadding1D/2D, Cropping1D/2D, UpSampling1D/2D, Permute, Concatenate (any axis, inputs of
different types, three inputs) and GlobalMax/AveragePooling1D/2D. Each csim model groups
every layer of one rank, so a compile covers them all: the fast tests run the 1D model in
io_parallel and the 2D model in io_stream, the slow ones the other two pairs. Inputs: the
calibration data, uniform over the calibrated range, and 4x outside it (``exactness.py``).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import hgq_chip
from exactness import assert_bit_exact, randomize_bits
from hgq_chip.conversion.graph import graph_nodes
from hgq_chip.conversion.precision import derive
from hgq_chip.conversion.rules.movement import resize_index_exact
from hgq_chip.errors import UnsupportedConfigurationError, UnsupportedLayerError
from hgq_chip.layers import HConv1D, HConv2D, HDense, HQuantize

L = keras.layers


def _act(io_type):
    granularity = "per-layer" if io_type == "io_stream" else "per-element"
    return {"granularity": granularity, "rounding": "RND", "overflow": "WRAP"}


def movement_1d(io_type):
    act = _act(io_type)
    q = {"input_quantizer": act}
    inp = keras.Input((7, 2))
    x = HQuantize(act, name="q0")(inp)
    a = L.ZeroPadding1D((2, 1), name="zpad")(x)
    a = HConv1D(2, 3, padding="same", name="conv_a", **q)(a)  # (10, 2), wider type than x
    b = L.Cropping1D((1, 1), name="crop")(x)
    b = L.UpSampling1D(2, name="up")(b)  # (10, 2)
    c = L.Concatenate(axis=1, name="cat_len")([a, b])  # (20, 2)
    d = L.Concatenate(axis=-1, name="cat_chan")([a, b, a])  # (10, 6): a chain of two
    d = L.Permute((2, 1), name="swap")(d)  # (6, 10)
    e = L.Cropping1D((2, 0), name="crop_b")(d)  # (4, 10)
    gmax = L.GlobalMaxPooling1D(name="gmax")(c)
    # RepeatVector(3) as the refusal suggests: a row, up-sampled.
    repeated = L.UpSampling1D(3, name="repeat")(L.Reshape((1, 2), name="row")(gmax))
    outputs = [gmax, L.GlobalAveragePooling1D(name="gavg")(e), HDense(2, name="dense", **q)(L.Flatten()(d)),
               HDense(2, name="dense_rep", **q)(L.Flatten(name="flat_rep")(repeated))]
    return keras.Model(inp, L.Concatenate(name="cat_out")(outputs))


def movement_2d(io_type):
    act = _act(io_type)
    q = {"input_quantizer": act}
    inp = keras.Input((6, 5, 2))
    x = HQuantize(act, name="q0")(inp)
    a = L.ZeroPadding2D(((1, 0), (2, 1)), name="zpad")(x)
    a = HConv2D(3, 2, padding="same", name="conv_a", **q)(a)  # (7, 8, 3)
    b = L.Cropping2D(((1, 1), (0, 1)), name="crop")(x)
    b = L.UpSampling2D((2, 1), name="up")(b)
    b = HConv2D(3, 1, name="conv_b", **q)(b)
    b = L.Cropping2D(((0, 1), (0, 2)), name="crop_b")(b)  # (7, 2, 3)
    c = L.Concatenate(axis=2, name="cat")([a, b])  # (7, 10, 3)
    d = L.Cropping2D(((3, 0), (2, 0)), name="crop_c")(c)  # (4, 8, 3)
    p = L.Flatten(name="flat")(L.Permute((2, 1, 3), name="swap")(d))
    gmax = L.GlobalMaxPooling2D(name="gmax")(c)
    # A flattened branch concatenated with a vector (io_stream: the flattened input is repacked).
    flat_cat = L.Concatenate(name="cat_flat")([L.Flatten(name="flat_b")(b), gmax])
    outputs = [gmax, L.GlobalAveragePooling2D(name="gavg")(d), HDense(2, name="dense", **q)(p),
               HDense(2, name="dense_cat", **q)(flat_cat)]
    return keras.Model(inp, L.Concatenate(name="cat_out")(outputs))


BUILDERS = {"1d": movement_1d, "2d": movement_2d}


def _check(tmp_path, rank, io_type, seed=1):
    keras.utils.set_random_seed(seed)
    model = BUILDERS[rank](io_type)
    rng = np.random.default_rng(seed)
    randomize_bits(model, rng)
    x = rng.normal(0, 2, (64, *model.input.shape[1:])).astype("float32")
    report = assert_bit_exact(model, x, tmp_path / "prj", io_type=io_type)
    assert report.n_values == 3 * 64 * int(np.prod(model.output.shape[1:]))


@pytest.mark.parametrize("rank, io_type", [("1d", "io_parallel"), ("2d", "io_stream")])
def test_movement_layers_are_bit_exact(tmp_path, rank, io_type):
    _check(tmp_path, rank, io_type)


@pytest.mark.slow
@pytest.mark.parametrize("rank, io_type", [("1d", "io_stream"), ("2d", "io_parallel")])
def test_movement_layers_are_bit_exact_other_io(tmp_path, rank, io_type):
    _check(tmp_path, rank, io_type, seed=2)


# ---- derived types (no compile) --------------------------------------------------------------


def _records(model, x):
    hgq_chip.calibrate(model, x)
    return {r.layer_name: r for r in derive(graph_nodes(model))}


def test_concatenate_type_holds_inputs_of_different_types():
    inp = keras.Input((4, 2))
    a = HQuantize({"granularity": "per-layer", "overflow": "SAT"}, name="narrow")(inp)
    b = HQuantize({"granularity": "per-layer", "overflow": "SAT"}, name="wide")(inp)
    model = keras.Model(inp, L.Concatenate(axis=1, name="cat")([a, b]))
    model.get_layer("narrow").q.f.assign(np.full(model.get_layer("narrow").q.f.shape, 1.0, "float32"))
    model.get_layer("wide").q.f.assign(np.full(model.get_layer("wide").q.f.shape, 4.0, "float32"))
    records = _records(model, np.random.default_rng(0).normal(0, 3, (64, 4, 2)).astype("float32"))
    cat = records["cat"].hls_layers[-1].types["result"]
    for name in ("narrow", "wide"):
        source = records[name].hls_layers[-1].types["result"]
        assert cat.k >= source.k and cat.f >= source.f and cat.i >= source.i, (name, source, cat)
    assert np.array_equal(records["cat"].output.f[:4], np.full((4, 2), 1))
    assert np.array_equal(records["cat"].output.f[4:], np.full((4, 2), 4))


def test_padding_adds_exact_zeros_and_keeps_the_input_type():
    inp = keras.Input((3, 1))
    x = HQuantize({"granularity": "per-layer"}, name="q")(inp)
    model = keras.Model(inp, L.ZeroPadding1D((1, 2), name="pad")(x))
    records = _records(model, np.random.default_rng(0).uniform(1, 2, (32, 3, 1)).astype("float32"))
    out = records["pad"].output
    assert np.array_equal(out.lo[[0, 4, 5], 0], [0, 0, 0]) and np.array_equal(out.hi[[0, 4, 5], 0], [0, 0, 0])
    assert records["pad"].hls_layers[-1].types["result"] == records["q"].hls_layers[-1].types["result"].with_modes("TRN", "WRAP")


def test_resize_index_check_matches_the_firmware_formula():
    assert resize_index_exact(8, 2) and resize_index_exact(7, 3)
    assert not resize_index_exact(64, 37)  # (64 * 37 - 1) * ratio >> 16 misses by one


# ---- refusals (nothing written) --------------------------------------------------------------


def _calibrated(inp, out):
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).normal(0, 2, (16, *inp.shape[1:])).astype("float32")
    hgq_chip.calibrate(model, x)
    return model


def _refused(model, tmp_path, error, *words, io_type="io_parallel"):
    with pytest.raises(error) as caught:
        hgq_chip.convert(model, tmp_path / "out", io_type=io_type, log=lambda *_: None)
    for word in words:
        assert word in str(caught.value), str(caught.value)
    assert list(tmp_path.iterdir()) == []


PL = {"granularity": "per-layer"}


@pytest.mark.parametrize("make, words", [
    (lambda x: L.UpSampling2D(2, interpolation="bilinear", name="up")(x), ("'up'", "interpolation", "nearest")),
    (lambda x: L.GlobalMaxPooling2D(keepdims=True, name="gp")(x), ("'gp'", "keepdims", "Reshape")),
    (lambda x: L.GlobalAveragePooling2D(name="gp")(L.Cropping2D(((0, 1), (0, 0)))(x)), ("gp", "power of two")),
    (lambda x: L.UpSampling2D((1, 37), name="up")(L.ZeroPadding2D(((0, 0), (0, 60)))(x)), ("'up'", "io_stream")),
    (lambda x: L.RepeatVector(3, name="rep")(L.Flatten()(x)), ("'rep'", "RepeatVector", "UpSampling1D")),
])
def test_movement_the_firmware_cannot_do_is_refused(tmp_path, make, words):
    inp = keras.Input((4, 4, 2))
    model = _calibrated(inp, make(HQuantize(PL)(inp)))
    error = UnsupportedConfigurationError if "io_stream" in words else UnsupportedLayerError
    _refused(model, tmp_path, error, *words)


def test_movement_model_round_trips_and_converts_through_the_cli(tmp_path, capsys):
    from hgq_chip.cli import main

    keras.utils.set_random_seed(0)
    model = movement_2d("io_parallel")
    x = np.random.default_rng(0).normal(0, 2, (32, 6, 5, 2)).astype("float32")
    hgq_chip.calibrate(model, x)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert main(["convert", str(tmp_path / "m.keras"), "--backend", "Vitis", "--output-dir", str(tmp_path / "prj"), "--quiet"]) == 0
    assert "cat" in capsys.readouterr().out and (tmp_path / "prj" / "hgq_chip_project.json").is_file()


@pytest.mark.slow
def test_asq_conv_after_zero_padding_is_bit_exact(tmp_path):
    """ASQ convolutions refuse padding='same' and name ZeroPadding1D before a 'valid' one: that converts."""
    from hgq_chip.layers import ASQConv1D

    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 2))
    x = L.ZeroPadding1D(1, name="zpad")(HQuantize(PL, name="q0")(inp))
    out = ASQConv1D(2, 3, input_quantizer={"kind": "asq", "bits": 4, "signed": True},
                    kernel_quantizer={"kind": "post", "bits": 4}, name="asq")(x)
    x = np.random.default_rng(0).normal(0, 2, (64, 6, 2)).astype("float32")
    assert_bit_exact(keras.Model(inp, out), x, tmp_path / "prj")


def test_estimate_liveness_stops_at_layers_that_move_values():
    """A consumer's live mask passes through a Flatten (same order) but not through a Permute
    (same size, other order): there every input counts as live."""
    from hgq_chip.conversion.facts import LayerFacts
    from hgq_chip.estimation.liveness import operation_liveness

    kif = {key: np.full((4,), v) for key, v in zip("kif", (1, 2, 2))}
    from hgq_chip.conversion.ops import CMVM, Cast

    cast = Cast(stage="q", in_lo=np.zeros(4), in_hi=np.ones(4), in_f=np.zeros(4), out=kif, rounding="TRN",
                overflow="WRAP")
    producer = LayerFacts("q", "HQuantize", [cast], [-1])
    reader = LayerFacts("d", "HDense", [CMVM(positions=1, kernel=np.array([[1.0], [0], [0], [0]]), rows=kif,
                                             bias=np.zeros(1))], [1])
    for klass, expected in (("Flatten", [True, False, False, False]), ("Permute", None)):
        masks = operation_liveness([producer, LayerFacts("m", klass, [], [0]), reader])
        assert (masks[0][0] is None) if expected is None else masks[0][0].tolist() == expected, klass
