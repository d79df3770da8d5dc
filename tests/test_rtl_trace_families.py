"""RTL traces per layer family: da4ml's interpreter of ``trace_model``'s logic equals Keras bit
for bit (np.array_equal via ``check_trace``), on codes of the firmware's input type and on
``random_inputs`` at scale 1 (calibrated range) and 4 (out of range), for the latency and the
distributed_arithmetic strategies; layers without an exact trace are refused by name."""

from __future__ import annotations

import importlib.util

import keras
import numpy as np
import pytest

import hgq_chip
from hgq_chip.errors import HGQChipError, UnsupportedLayerError
from hgq_chip.layers import (
    ASQDense,
    HActivation,
    HAdd,
    HConv1D,
    HConv2D,
    HDense,
    HDepthwiseConv1D,
    HDepthwiseConv2D,
    HLayerNormalization,
    HMaximum,
    HMinimum,
    HMultiHeadAttention,
    HMultiply,
    HQuantize,
    HSoftmax,
    HSubtract,
)
from hgq_chip.layers.einsum_dense import HEinsumDense

pytestmark = pytest.mark.skipif(importlib.util.find_spec("da4ml") is None,
                                reason="da4ml is not installed (pip install 'hgq_chip[rtl]')")
STRATEGIES = ("latency", "distributed_arithmetic")


def _calibrated(model, shape, seed=0, act_f=(1, 5), weight_f=(0, 4)):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if getattr(layer, "use_bias", False) and getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0.0, 0.5, layer.bias.shape))
        for q in getattr(layer, "quantizers", list)():
            if not hasattr(q, "rounded_f"):
                continue
            lo, hi = act_f if hasattr(q, "record_range") else weight_f
            if isinstance(layer, HSoftmax) and q is not layer.iq:
                lo, hi = 2, 8
            q.f.assign(rng.integers(lo, hi + 1, size=q.f.shape).astype("float32"))
    shapes = shape if isinstance(shape, list) else [shape]
    data = [rng.normal(0, 1, (256, *s)).astype("float32") for s in shapes]
    hgq_chip.calibrate(model, data if len(data) > 1 else data[0])
    return model


def _input_sets(model, n: int, seed: int) -> dict:
    """None: codes of the firmware's input type; 1.0 / 4.0: random_inputs at that scale."""
    return {None: None, **{scale: hgq_chip.random_inputs(model, n, seed, scale) for scale in (1.0, 4.0)}}


def _mismatches(model, strategies=STRATEGIES) -> dict:
    from hgq_chip.estimation.rtl import check_trace, trace_model

    found = {}
    sets = _input_sets(model, 200, 1)
    for strategy in strategies:
        _, _, comb = trace_model(model, strategy)
        for scale, inputs in sets.items():
            found[strategy, scale] = check_trace(model, comb, n=200, seed=1, inputs=inputs)
    return found


def _assert_exact(model, strategies=STRATEGIES):
    found = _mismatches(model, strategies)
    assert found and all(count == 0 for count in found.values()), found


def test_convolutions_with_padding_strides_and_depthwise():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((5, 4, 2))
    x = HQuantize()(inputs)
    x = HConv2D(3, (3, 2), strides=(2, 1), padding="same", activation="relu")(x)
    x = HDepthwiseConv2D((2, 3), padding="same", depth_multiplier=2)(x)
    x = HDepthwiseConv2D(2, strides=2, activation="relu")(x)
    _assert_exact(_calibrated(keras.Model(inputs, x), (5, 4, 2)))
    keras.utils.set_random_seed(2)
    inputs = keras.Input((9, 2))
    x = HQuantize()(inputs)
    x = HConv1D(2, 3, strides=2, padding="same")(x)
    x = HDepthwiseConv1D(3, padding="same", use_bias=False)(x)
    _assert_exact(_calibrated(keras.Model(inputs, x), (9, 2)))


def test_pooling_valid_same_and_global():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((5, 7, 2))
    x = HQuantize()(inputs)
    a = keras.layers.MaxPooling2D(2, padding="same")(x)  # odd map: border windows of 2 and 1
    b = keras.layers.AveragePooling2D(2, padding="same")(x)
    c = keras.layers.MaxPooling2D((2, 3), strides=(1, 2))(x)
    outs = [keras.layers.GlobalMaxPooling2D()(a), keras.layers.GlobalAveragePooling2D()(
        keras.layers.Cropping2D(((0, 1), (0, 0)))(b)), keras.layers.Flatten()(c)]
    seq_in = keras.Input((8, 3))
    s = HQuantize()(seq_in)
    s = HActivation("relu")(s)  # unsigned: the padded max pool casts to a signed type first
    outs += [keras.layers.GlobalAveragePooling1D()(keras.layers.AveragePooling1D(2, padding="same")(s)),
             keras.layers.GlobalMaxPooling1D()(keras.layers.MaxPooling1D(3, strides=2, padding="same")(s))]
    model = keras.Model([inputs, seq_in], keras.layers.Concatenate()(outs))
    _assert_exact(_calibrated(model, [(5, 7, 2), (8, 3)]), ("latency",))


def test_data_movement_and_concatenate():
    keras.utils.set_random_seed(4)
    inputs = keras.Input((3, 4, 2))
    x = HQuantize()(inputs)
    a = keras.layers.ZeroPadding2D(((1, 0), (2, 1)))(x)
    a = keras.layers.Cropping2D(((0, 1), (1, 2)))(a)
    b = keras.layers.UpSampling2D((1, 2))(x)
    b = keras.layers.Cropping2D(((0, 0), (2, 2)))(b)
    c = keras.layers.Permute((2, 1, 3))(x)
    c = keras.layers.Reshape((3, 4, 2))(c)
    y = keras.layers.Concatenate(axis=2)([a, b, c])
    s = keras.layers.Reshape((12, 6))(y)
    s = keras.layers.ZeroPadding1D((1, 2))(s)
    s = keras.layers.UpSampling1D(2)(keras.layers.Cropping1D((2, 3))(s))
    model = keras.Model(inputs, [keras.layers.Flatten()(s), keras.layers.Concatenate(axis=1)([a, c])])
    _assert_exact(_calibrated(model, (3, 4, 2)), ("latency",))


def test_merges_with_and_without_input_quantizers():
    keras.utils.set_random_seed(5)
    inputs = keras.Input((6,))
    x = HQuantize()(inputs)
    a, b, c = (HDense(4)(x) for _ in range(3))
    q = {"granularity": "per-element", "rounding": "RND_CONV", "overflow": "SAT"}
    outs = [
        HAdd()([a, b, c]),
        keras.layers.Add()([a, c]),
        HSubtract(input_quantizer=q)([a, b]),
        HSubtract()([b, c]),
        HMultiply()([a, b, c]),
        HMultiply(input_quantizer={"granularity": "per-layer", "overflow": "WRAP"})([b, c]),
        HMaximum(input_quantizer={"rounding": "RND"})([a, b, c]),
        HMinimum()([c, a]),
    ]
    model = keras.Model(inputs, keras.layers.Concatenate()(outs))
    _assert_exact(_calibrated(model, (6,), act_f=(0, 3)))


def test_keras_merges_identities_and_relu_layers():
    """Keras' own Subtract/Maximum/Minimum, the layers that are the identity at inference and the
    plain ReLU/Activation layers (all convert exactly) trace bit-exact too."""
    keras.utils.set_random_seed(6)
    inputs = keras.Input((6,))
    x = HQuantize()(inputs)
    a, b = HDense(4)(x), HDense(4)(x)
    outs = [
        keras.layers.Subtract()([a, b]),
        keras.layers.Maximum()([a, b]),
        keras.layers.Minimum()([b, a]),
        keras.layers.ReLU()(keras.layers.GaussianNoise(0.3)(a)),
        keras.layers.Activation("relu")(keras.layers.Identity()(b)),
        keras.layers.Activation("linear")(keras.layers.ActivityRegularization()(a)),
    ]
    model = keras.Model(inputs, keras.layers.Concatenate()(outs))
    _assert_exact(_calibrated(model, (6,), act_f=(0, 3)), strategies=("latency",))


def test_tables_and_softmax():
    keras.utils.set_random_seed(6)
    inputs = keras.Input((3, 5))
    x = HQuantize()(inputs)
    per_layer = {"granularity": "per-layer"}
    t = HActivation("sigmoid", input_quantizer=per_layer, output_quantizer=per_layer)(x)
    quantizers = {name: per_layer for name in ("exp_quantizer", "sum_quantizer", "inverse_quantizer",
                                                 "output_quantizer")}
    stable = HSoftmax(True, **quantizers)(HDense(4)(t))
    plain = HSoftmax(False, **quantizers)(HDense(3)(x))
    model = keras.Model(inputs, [stable, plain])
    _assert_exact(_calibrated(model, (3, 5), act_f=(1, 3)))


def test_layer_normalization_with_and_without_gamma_and_beta():
    """Sums, the quantized 1/n, squares, the rsqrt table read and the per-element gamma/beta."""
    keras.utils.set_random_seed(7)
    inputs = keras.Input((2, 5))
    x = HQuantize()(inputs)
    full = HLayerNormalization(gamma_initializer="random_normal", beta_initializer="random_normal")(x)
    plain = HLayerNormalization(center=False, scale=False)(HDense(3)(x))
    model = keras.Model(inputs, [full, plain])
    _assert_exact(_calibrated(model, (2, 5), act_f=(2, 4)))


def test_einsum_dense_projections():
    keras.utils.set_random_seed(7)
    inputs = keras.Input((4, 3, 2))
    x = HQuantize()(inputs)
    y = HEinsumDense("abcd,cde->abe", (None, 5), bias_axes="e", activation="relu")(x)
    y = HEinsumDense("abc,cde->abde", (None, 2, 3))(y)
    _assert_exact(_calibrated(keras.Model(inputs, y), (4, 3, 2)))


def test_round_half_to_even_casts_inside_the_model():
    keras.utils.set_random_seed(8)
    inputs = keras.Input((5,))
    x = HQuantize()(inputs)
    x = HDense(6, input_quantizer={"rounding": "RND_CONV", "overflow": "SAT_SYM"})(x)
    x = HActivation("relu", input_quantizer={"rounding": "RND_CONV", "granularity": "per-element"})(x)
    _assert_exact(_calibrated(keras.Model(inputs, HDense(2)(x)), (5,), act_f=(0, 2)))


def test_asq_post_layers_are_refused_by_name():
    from hgq_chip.estimation.rtl import trace_model

    keras.utils.set_random_seed(9)
    inputs = keras.Input((4,))
    model = _calibrated(keras.Model(inputs, ASQDense(3, name="asq_dense")(HQuantize()(inputs))), (4,))
    with pytest.raises(UnsupportedLayerError, match="'asq_dense' \\(ASQDense\\)"):
        trace_model(model, "latency")


def test_multi_head_attention():
    keras.utils.set_random_seed(10)
    query_in = keras.Input((3, 2))
    q = HQuantize()(query_in)
    model = keras.Model(query_in, HMultiHeadAttention(1, 2)(q, q))
    _assert_exact(_calibrated(model, (3, 2), act_f=(1, 3)), ("latency",))


@pytest.mark.slow
def test_multi_head_attention_self_and_cross_both_strategies():
    keras.utils.set_random_seed(10)
    query_in = keras.Input((4, 3))
    q = HQuantize()(query_in)
    self_attention = HMultiHeadAttention(2, 2)(q, q)
    context_in = keras.Input((3, 2))
    c = HQuantize()(context_in)
    cross = HMultiHeadAttention(2, 2, value_dim=3, output_shape=4, use_bias=False)(q, c, c)
    model = keras.Model([query_in, context_in], [self_attention, cross])
    _assert_exact(_calibrated(model, [(4, 3), (3, 2)], act_f=(1, 3)))


@pytest.mark.slow
def test_fuzzer_models_trace_bit_exact_or_are_refused_with_a_typed_error():
    """Random convertible models (``hgq_chip.testing.model_fuzz``): every model trace_model takes
    is bit-exact on all three input sets; the rest are refused with a typed hgq_chip error."""
    from hypothesis import HealthCheck, Phase, given, settings

    from hgq_chip.estimation.rtl import check_trace, trace_model
    from hgq_chip.testing.fuzz_build import build_model
    from hgq_chip.testing.model_fuzz import model_specs

    traced = []

    @settings(max_examples=6, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=(Phase.generate,))  # no shrinking: bounded time
    @given(model_specs())
    def check(spec):
        try:
            model, _ = build_model(spec)
        except (ValueError, HGQChipError):
            return  # the layer API refused the options: not the trace's business
        strategy = spec["convert"].get("strategy", "latency")
        try:
            _, _, comb = trace_model(model, strategy)
        except HGQChipError as error:
            assert type(error) is not HGQChipError, error
            return
        found = [check_trace(model, comb, n=100, seed=2, inputs=inputs) for inputs in _input_sets(model, 100, 2).values()]
        assert found == [0, 0, 0], (spec, found)
        traced.append(spec)

    check()
    assert traced  # some examples were traced, not all refused


@pytest.mark.parametrize("overflow", ["WRAP", "SAT", "SAT_SYM"])
@pytest.mark.parametrize("rounding", ["TRN", "RND", "RND_CONV"])
def test_cast_equals_the_reference_quantizer(rounding, overflow):
    """rules._cast.cast (da4ml has no RND_CONV, and clips a 1-bit signed SAT_SYM type to 0)
    against hgq_chip.fixed.quantize_np on every input code, per-element formats."""
    from da4ml.trace import FixedVariableArray, comb_trace

    from hgq_chip.conversion.rules._cast import cast
    from hgq_chip.fixed.format import ArrayFormat
    from hgq_chip.fixed.quantize_np import quantize

    k_in, i_in, f_in = np.array([1, 1, 0, 1, 1, 1, 1]), np.array([3, 2, 3, 1, 4, 2, 1]), np.array([4, 3, 2, 5, 0, 6, 2])
    fmt = ArrayFormat(np.array([1, 0, 1, 1, 1, 0, 1]), np.array([1, 2, 1, 0, 2, -1, 0]),
                      np.array([1, 1, 3, 2, -1, 4, 0]), rounding, overflow)
    x = FixedVariableArray.from_kif(k_in, i_in, f_in)
    comb = comb_trace(x, cast(x, fmt))
    codes = np.random.default_rng(0).integers(-k_in * 2 ** (i_in + f_in), 2 ** (i_in + f_in), size=(3000, 7))
    values = codes * 2.0 ** -f_in
    assert np.array_equal(comb.predict(values), quantize(values, fmt.k, fmt.i, fmt.f, rounding, overflow))
