"""Keras computes in float32 (a 24-bit significand) or float64 (53 bits); the firmware in
fixed point, which may be wider. ``convert`` refuses, before writing anything, a model in which
some value Keras computes (a quantizer's output, an accumulator, a sum, a pooled window sum, a
value cast between layer dtypes) needs more significant bits than its layer's dtype holds, naming
the layer and the tensor; the same models built in float64 convert and are bit-exact.

Comparisons are np.array_equal (through ``verify``, which counts every differing value).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import hgq_chip
from hgq_chip.conversion.graph import graph_nodes
from hgq_chip.conversion.inputs import keras_input_dtypes
from hgq_chip.conversion.verification import check_inputs
from hgq_chip.errors import UnsupportedConfigurationError
from hgq_chip.layers import (
    ASQConv1D, ASQConv2D, HActivation, HAdd, HConv1D, HConv1DBatchNorm, HConv2D, HConv2DBatchNorm, HDense, HDenseBatchNorm, HQuantize,
    HSoftmax,
)
from hgq_chip.layers.adaqat import AConv1D, AConv2D, ADense

QUIET = {"log": lambda *_: None}
FLOAT32_ADVICE = "keras.config.set_floatx('float64') and keras.config.set_dtype_policy('float64')"


@pytest.fixture
def float64():
    """Build the test's models in float64, restoring Keras' previous floatx and dtype policy after.

    Both are needed: Keras fixes its global dtype policy from floatx when the first layer of
    the process is built, so after that ``set_floatx`` alone no longer changes new layers.
    """
    previous = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        yield
    finally:
        keras.config.set_floatx(previous[0])
        keras.config.set_dtype_policy(previous[1])


def _pinned(rng, n, shape, bound):
    """Uniform samples in [-bound, bound] with both bounds present, so calibration's ranges
    (and therefore the integer bits) are known exactly."""
    x = rng.uniform(-bound, bound, (n, *shape))
    x[0], x[1] = bound, -bound
    return x.astype(keras.config.floatx())


# ---- the models of each kind (built in whatever floatx is set) ----------------------------

def saturating_quantizer(rng):
    """HQuantize (SAT) on raw counts up to 3e5: i = 19, f = 6, so its saturated maximum
    2**19 - 2**-6 needs 25 bits (float32 rounds it to 2**19)."""
    inp = keras.Input((6,))
    return keras.Model(inp, HQuantize(name="sat")(inp)), _pinned(rng, 128, (6,), 3e5)


def wrapping_dense_input(rng):
    """The same inputs read by an HDense: its own input quantizer wraps at 26 bits and its
    accumulator needs more still."""
    inp = keras.Input((6,))
    x = HQuantize(name="sat")(inp)
    return keras.Model(inp, HDense(3, name="dense")(x)), _pinned(rng, 128, (6,), 3e5)


def wide_add(rng):
    """Two quantizers of 24 magnitude bits (exact in float32 alone) whose sum needs 25."""
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    model = keras.Model([a, b], HAdd(name="sum")([HQuantize(name="qa")(a), HQuantize(name="qb")(b)]))
    return model, [_pinned(rng, 128, (4,), 2e5), _pinned(rng, 128, (4,), 2e5)]


def wide_dense_accumulator(rng):
    """64 inputs of 21 bits times 18-fractional-bit weights: a 41-bit accumulator."""
    inp = keras.Input((64,))
    x = HQuantize({"init_f": 14}, name="q")(inp)
    out = HDense(4, input_quantizer={"init_f": 14}, kernel_quantizer={"init_f": 18}, name="wide")(x)
    return keras.Model(inp, out), _pinned(rng, 128, (64,), 30.0)


def wide_conv_accumulator(rng):
    inp = keras.Input((8, 3))
    x = HQuantize({"init_f": 12}, name="q")(inp)
    out = HConv1D(2, 3, input_quantizer={"init_f": 12}, kernel_quantizer={"init_f": 16}, name="conv")(x)
    return keras.Model(inp, keras.layers.Flatten()(out)), _pinned(rng, 128, (8, 3), 100.0)


def wide_average_pooling(rng):
    """A pool of two values of 24 magnitude bits: the window sum needs 25."""
    inp = keras.Input((8, 2))
    x = HQuantize(name="q")(inp)
    out = keras.layers.AveragePooling1D(2, name="pool")(x)
    return keras.Model(inp, keras.layers.Flatten()(out)), _pinned(rng, 128, (8, 2), 2e5)


def wide_table_output(rng):
    """A tanh table whose output quantizer keeps 30 fractional bits."""
    inp = keras.Input((4,))
    x = HQuantize(name="q")(inp)
    out = HActivation("tanh", output_quantizer={"init_f": 30}, name="act")(x)
    return keras.Model(inp, out), _pinned(rng, 128, (4,), 3.0)


def wide_softmax(rng):
    """HSoftmax whose products e x 1/sum keep 42 bits (22 + 20 fractional bits)."""
    inp = keras.Input((5,))
    x = HQuantize({"init_f": 6}, name="q")(inp)
    out = HSoftmax(exp_quantizer={"init_f": 22}, inverse_quantizer={"init_f": 20}, output_quantizer={"init_f": 12},
                   name="sm")(x)
    return keras.Model(inp, out), _pinned(rng, 128, (5,), 3.0)


REFUSED = {
    "saturating-quantizer": (saturating_quantizer, ["'sat' (HQuantize)", "output of quantizer 'sat'",
                                                    "ap_fixed<26,20,AP_RND,AP_SAT>", "needs 25 significant bits"]),
    "wrapping-dense-input": (wrapping_dense_input, ["'dense' (HDense)", "output of quantizer 'dense_iq'",
                                                    "needs 26 significant bits", "'dense' (HDense): accumulator"]),
    "add": (wide_add, ["'sum' (HAdd): sum needs 25 significant bits"]),
    "dense-accumulator": (wide_dense_accumulator, ["'wide' (HDense): accumulator", "needs 41 significant bits"]),
    "conv-accumulator": (wide_conv_accumulator, ["'conv' (HConv1D): accumulator"]),
    "average-pooling": (wide_average_pooling, ["'pool' (AveragePooling1D): window sums needs 25 significant bits"]),
    "table-output": (wide_table_output, ["'act' (HActivation)", "output of quantizer 'act_oq'"]),
    "softmax-products": (wide_softmax, ["'sm' (HSoftmax): products exp x 1/sum needs 42 significant bits"]),
}


def assert_refused(model, x, tmp_path, *words):
    hgq_chip.calibrate(model, x)
    with pytest.raises(UnsupportedConfigurationError) as caught:
        hgq_chip.convert(model, tmp_path / "out", **QUIET)
    message = str(caught.value)
    for word in words:
        assert word in message, message
    assert not (tmp_path / "out").exists(), "a refused conversion created its output folder"
    assert list(tmp_path.iterdir()) == [], "a refused conversion wrote something"
    return message


@pytest.mark.parametrize("kind", list(REFUSED))
def test_values_wider_than_float32_are_refused_before_writing(tmp_path, kind):
    build, words = REFUSED[kind]
    model, x = build(np.random.default_rng(0))
    message = assert_refused(model, x, tmp_path, *words, "float32 holds 24", FLOAT32_ADVICE)
    assert "narrow" in message


def test_refusal_keeps_an_earlier_project_untouched(tmp_path):
    """With force=True over an earlier project, the refusal still comes before any write."""
    rng = np.random.default_rng(0)
    inp = keras.Input((6,))
    narrow = keras.Model(inp, HQuantize(name="sat")(inp))
    hgq_chip.calibrate(narrow, _pinned(rng, 64, (6,), 3.0))
    hgq_chip.convert(narrow, tmp_path / "out", **QUIET)
    before = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    model, x = saturating_quantizer(rng)
    hgq_chip.calibrate(model, x)
    with pytest.raises(UnsupportedConfigurationError, match="'sat'"):
        hgq_chip.convert(model, tmp_path / "out", force=True, **QUIET)
    after = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "staging or lock files were left behind"


def test_value_cast_from_float64_into_a_float32_layer_is_refused(tmp_path):
    """A float32 layer casts its float64 input to float32: a 32-bit accumulator would round there."""
    inp = keras.Input((6,), dtype="float64")
    x = HQuantize({"init_f": 10}, dtype="float64")(inp)
    x = HDense(3, dtype="float64", input_quantizer={"init_f": 10}, kernel_quantizer={"init_f": 12}, name="d64")(x)
    model = keras.Model(inp, keras.layers.Reshape((3,), dtype="float32", name="r32")(x))
    assert_refused(model, _pinned(np.random.default_rng(0), 64, (6,), 100.0), tmp_path,
                   "'r32' (Reshape): input 0 (computed in float64, cast to float32)", "float32 holds 24")


def test_boundary_widths_are_accepted_and_bit_exact_in_float32(tmp_path):
    """The bounds are not tighter than needed: a SAT quantizer with 24 magnitude bits (25 with
    the sign), a WRAP one of 24 bits and a sum whose codes reach 2**24 all convert and are
    exact, inside and 4x outside the calibrated range; one more bit of each is refused."""
    rng = np.random.default_rng(1)
    a, b, c = keras.Input((6,), name="a"), keras.Input((6,), name="b"), keras.Input((6,), name="c")
    sat = HQuantize({"overflow": "SAT"}, name="sat24")(a)            # range 2e5: i = 18, f = 6
    wrap = HQuantize({"overflow": "WRAP"}, name="wrap24")(b)         # range 1e5: k + i + f = 1 + 17 + 6
    total = HAdd(name="sum24")([HQuantize(name="qc1")(c), HQuantize(name="qc2")(c)])  # 2 x [-2**17, 2**17): 24 bits
    model = keras.Model([a, b, c], [sat, wrap, total])
    x = [_pinned(rng, 128, (6,), 2e5), _pinned(rng, 128, (6,), 1e5), _pinned(rng, 128, (6,), 7e4)]
    hgq_chip.calibrate(model, x)
    conversion = hgq_chip.convert(model, tmp_path / "prj", **QUIET)
    widest = {r.layer_name: max(v.bits for v in r.float_values) for r in conversion.records}
    assert (widest["sat24"], widest["wrap24"], widest["sum24"]) == (24, 24, 24)
    assert hgq_chip.verify(model, tmp_path / "prj", x, strict=True, **QUIET).ok
    assert hgq_chip.verify(model, tmp_path / "prj", random=300, scale=4.0, strict=True, **QUIET).ok

    for layer_name, bound, input_index in (("sat24", 3e5, 0), ("wrap24", 2e5, 1), ("sum24", 1.4e5, 2)):
        wider = list(x)
        wider[input_index] = _pinned(rng, 128, (6,), bound)
        hgq_chip.calibrate(model, wider)
        with pytest.raises(UnsupportedConfigurationError, match=f"'{layer_name}'.* needs 25 significant bits"):
            hgq_chip.convert(model, tmp_path / "refused", **QUIET)
        assert not (tmp_path / "refused").exists()


# ---- float64: the refused kinds convert and are bit-exact -----------------------------------

@pytest.mark.parametrize("kind", ["saturating-quantizer", "wrapping-dense-input", "add", "dense-accumulator",
                                  "average-pooling", "table-output", "softmax-products"])
def test_the_same_models_in_float64_are_bit_exact(tmp_path, float64, kind):
    build, _ = REFUSED[kind]
    model, x = build(np.random.default_rng(0))
    hgq_chip.calibrate(model, x)
    conversion = hgq_chip.convert(model, tmp_path / "prj", **QUIET)
    assert {r.compute_dtype for r in conversion.records} == {"float64"}
    assert hgq_chip.verify(model, tmp_path / "prj", x, strict=True, **QUIET).ok
    assert hgq_chip.verify(model, tmp_path / "prj", random=400, scale=4.0, strict=True, **QUIET).ok


def test_float64_verify_reads_inputs_in_float64(tmp_path, float64):
    """Values a float32 cast would move across a rounding midpoint reach Keras and the firmware
    unrounded, and both round them the same way."""
    inp = keras.Input((4,))
    model = keras.Model(inp, HQuantize({"init_f": 6, "granularity": "per-layer"}, name="q")(inp))
    hgq_chip.calibrate(model, np.random.default_rng(0).uniform(-1, 1, (64, 4)))
    x = np.array([[2.0**-7 - 1e-12, 3 * 2.0**-7 - 1e-12, 0.3, 2.0**-7 + 1e-12]] * 4)
    assert check_inputs(model, x)[0].dtype == np.float64
    assert hgq_chip.random_inputs(model, 3)[0].dtype == np.float64
    assert np.array_equal(model.predict(x, verbose=0)[0], [0.0, 2.0**-6, 0.296875, 2.0**-6])
    hgq_chip.convert(model, tmp_path / "prj", **QUIET)
    assert hgq_chip.verify(model, tmp_path / "prj", x, strict=True, **QUIET).ok


def test_inputs_are_read_in_the_narrowest_dtype_on_their_way():
    """A float32 keras.Input feeding a float64 layer, or the reverse, is read as float32."""
    def model_of(input_dtype, layer_dtype):
        inp = keras.Input((3,), dtype=input_dtype)
        return keras.Model(inp, HQuantize(dtype=layer_dtype)(inp))

    for input_dtype, layer_dtype, expected in (("float32", "float32", "float32"), ("float64", "float64", "float64"),
                                               ("float32", "float64", "float32"), ("float64", "float32", "float32")):
        model = model_of(input_dtype, layer_dtype)
        assert keras_input_dtypes(model, graph_nodes(model)) == [expected]
        assert check_inputs(model, np.zeros((2, 3)))[0].dtype == np.dtype(expected)


# ---- float64: a representative model of every layer family converts bit-exact (and trains) ----

def _hgq_family_model():
    """HQuantize, HConv2D/HConv1D (+BatchNorm), max/average pooling (valid and 'same'), HDense
    (+BatchNorm), HAdd and a three-input Add, HActivation relu, tanh and sigmoid tables."""
    image, series = keras.Input((8, 8, 2), name="image"), keras.Input((12, 3), name="series")
    a = HQuantize(name="q_image")(image)
    a = HConv2DBatchNorm(3, 3, padding="same", activation="relu", name="conv2d_bn")(a)
    a = keras.layers.MaxPooling2D(2, name="max2d")(a)
    a = HConv2D(4, 2, name="conv2d")(a)
    a = keras.layers.AveragePooling2D(2, padding="same", name="avg2d")(a)
    b = HQuantize(name="q_series")(series)
    b = HConv1DBatchNorm(4, 3, strides=2, name="conv1d_bn")(b)
    b = HConv1D(4, 2, padding="same", name="conv1d")(b)
    b = keras.layers.AveragePooling1D(2, name="avg1d")(b)
    b = keras.layers.MaxPooling1D(2, padding="same", name="max1d")(b)
    a = HDense(8, name="dense_a")(keras.layers.Flatten()(a))
    b = HDenseBatchNorm(8, activation="relu", name="dense_bn")(keras.layers.Flatten()(b))
    s = HAdd(name="add")([a, b])
    three = keras.layers.Add(name="add3")([HActivation("tanh", name="tanh")(s), HActivation("relu", name="relu")(s),
                                           HActivation("sigmoid", name="sigmoid")(s)])
    model = keras.Model([image, series], HDense(3, name="out")(three))
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if hasattr(layer, "moving_mean"):
            layer.moving_mean.assign(rng.normal(0.0, 0.5, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.2, 2.0, layer.moving_variance.shape))
    return model, [rng.normal(0, 2, (128, 8, 8, 2)), rng.normal(0, 2, (128, 12, 3))]


def _adaqat_family_model():
    image, series, vector = keras.Input((8, 8, 2)), keras.Input((12, 3)), keras.Input((10,))
    signed = {"signed": True, "init_alpha": 4.0}
    a = keras.layers.Flatten()(AConv2D(3, 3, activation="relu", input_quantizer=signed, name="aconv2d")(image))
    b = keras.layers.Flatten()(AConv1D(3, 3, input_quantizer=signed, name="aconv1d")(series))
    c = ADense(6, input_quantizer=signed, name="adense")(vector)
    out = ADense(3, input_quantizer={"init_alpha": 8.0}, name="adense_out")(a)
    model = keras.Model([image, series, vector], [out, b, c])
    # Just past an integer / a tie, where a float32 copy of the variable would round the other way.
    layer = model.get_layer("adense")
    layer.kq.set_bits(5.0 + 1e-9)
    layer.iq.set_bits(6.0 + 1e-9)
    layer.iq.log2_alpha.assign(2.5 + 1e-9)
    assert (layer.kq.ceil_bits(), layer.iq.ceil_bits(), layer.iq.alpha_exponent()) == (6, 7, 3)
    rng = np.random.default_rng(4)
    return model, [
        rng.normal(0, 2, (128, 8, 8, 2)), rng.normal(0, 2, (128, 12, 3)), rng.normal(0, 2, (128, 10))]


def _asq_dense_family_model():
    from asq_post_models import calibration_inputs, three_branch_model

    return three_branch_model(), calibration_inputs().astype("float64")


def _asq_conv_family_model():
    """ASQConv2D and ASQConv1D with the ASQ input (adapter with a hidden layer) and POST weights."""
    from asq_post_models import BRANCHES, conv_calibration_inputs, randomize_adapters

    iq, kq = BRANCHES["asq_post"]
    image, series = keras.Input((7, 6, 2), name="image"), keras.Input((9, 3), name="series")
    a = HQuantize({"granularity": "per-layer", "init_f": 4}, name="q_image")(image)
    b = HQuantize({"granularity": "per-layer", "init_f": 4}, name="q_series")(series)
    a = ASQConv2D(3, (3, 2), strides=(2, 1), activation="relu", input_quantizer=iq, kernel_quantizer=kq, name="c2d")(a)
    b = ASQConv1D(3, 3, strides=2, input_quantizer=iq, kernel_quantizer=kq, name="c1d")(b)
    model = keras.Model([image, series], [keras.layers.Flatten()(a), keras.layers.Flatten()(b)])
    randomize_adapters(model, np.random.default_rng(0))
    return model, [x.astype("float64") for x in conv_calibration_inputs()]


FAMILIES = {
    "hgq-layers": _hgq_family_model,
    "adaqat": _adaqat_family_model,
    "asq-post-dense": _asq_dense_family_model,
    "asq-post-conv": _asq_conv_family_model,
}


def _outputs(model, x) -> list:
    outputs = model.predict(x, verbose=0)
    return [np.asarray(o) for o in (outputs if isinstance(outputs, list) else [outputs])]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_layer_family_converts_bit_exact_in_float64(tmp_path, float64, family):
    keras.utils.set_random_seed(0)
    model, x = FAMILIES[family]()
    assert all(o.dtype == np.float64 for o in _outputs(model, x))
    hgq_chip.calibrate(model, x)
    conversion = hgq_chip.convert(model, tmp_path / "prj", **QUIET)
    assert {r.compute_dtype for r in conversion.records} == {"float64"}
    assert hgq_chip.verify(model, tmp_path / "prj", x, strict=True, **QUIET).ok
    assert hgq_chip.verify(model, tmp_path / "prj", random=300, scale=4.0, strict=True, **QUIET).ok


@pytest.mark.parametrize("family", ["hgq-layers", "adaqat"])
def test_layers_with_an_ebops_loss_train_in_float64(float64, family):
    """One epoch of fit: the EBOPs loss term is computed in the layers' float64, no dtype clash."""
    keras.utils.set_random_seed(0)
    model, x = FAMILIES[family]()
    for layer in model.layers:
        if hasattr(layer, "beta"):
            layer.beta.assign(1e-6)
    targets = [np.zeros((len(x[0]), *o.shape[1:])) for o in model.outputs]
    model.compile("adam", "mse")
    history = model.fit(x, targets if len(targets) > 1 else targets[0], epochs=1, batch_size=64, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert all(o.dtype == np.float64 for o in _outputs(model, x))
