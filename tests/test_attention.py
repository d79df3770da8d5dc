"""HEinsumDense and HMultiHeadAttention: Keras equals a NumPy reference bit for bit, EBOPs, config and
save/load round trips, refusals (before writing anything), and one converted project (a projection
and a cross-attention block): its firmware calls, the estimate's products against the generated
code, and (slow: the compile) bit-exact C simulation on calibrated and 4x out-of-range inputs."""

from __future__ import annotations

import json
import re

import keras
import numpy as np
import pytest
from reference_softmax import softmax_reference

import hgq_chip
from hgq_chip.errors import UnsupportedConfigurationError, UnsupportedLayerError
from hgq_chip.layers import HDense, HEinsumDense, HMultiHeadAttention, HQuantize
from hgq_chip.layers.einsum_dense import parse_projection


def _data(shape, seed=0, n=128, scale=1.5):
    return np.random.default_rng(seed).normal(0.0, scale, (n, *shape)).astype(np.float32)


def _out_of_range(x, seed=1):
    lo, hi = x.min(axis=0), x.max(axis=0)
    mid, half = (lo + hi) / 2, (hi - lo) / 2 * 4.0
    return np.random.default_rng(seed).uniform(mid - half, mid + half, (256, *x.shape[1:])).astype(np.float32)


def _projection_reference(layer, x):
    """NumPy float64 of the projection on quantized values (every sum exact in float64)."""
    xq = layer.iq.quantize_np(np.asarray(x, np.float64))
    lead = xq.shape[: 1 + layer.n_lead]
    flat = xq.reshape(*lead, -1) @ layer.flat_kernel(layer.kq.quantized(layer.fused_kernel()))
    if layer.use_bias:
        flat = flat + layer.flat_bias(layer.bq.quantized(layer.fused_bias()))
    if layer.activation is keras.activations.relu:
        flat = np.maximum(flat, 0.0)
    return flat.reshape(*lead, *layer.free_shape)


def _attention_reference(layer, query, value, key=None):
    key = value if key is None else key
    q = layer.q_q.quantize_np(_projection_reference(layer.query_dense, query))
    k = layer.k_q.quantize_np(_projection_reference(layer.key_dense, key))
    v = layer.v_q.quantize_np(_projection_reference(layer.value_dense, value))
    scores = np.einsum("aecd,abcd->acbe", k, q)
    p = softmax_reference(layer.softmax, scores).astype(np.float64)
    return _projection_reference(layer.output_dense, np.einsum("acbe,aecd->abcd", p, v))


# ---- HEinsumDense ------------------------------------------------------------------------------

@pytest.mark.parametrize("equation, expected", [
    ("btf,fo->bto", (1, "f", "o")), ("abc,cde->abde", (1, "c", "de")), ("abcd,cde->abe", (1, "cd", "e")),
    ("ab,bc->ac", (0, "b", "c")),
])
def test_projection_equations_parse(equation, expected):
    assert parse_projection(equation) == expected


@pytest.mark.parametrize("equation", ["abc,bd->acd", "abc,cd->adb", "abc,acd->abd", "...b,bc->...c", "ab,bc"])
def test_other_equations_are_refused_with_the_supported_form(equation):
    with pytest.raises(ValueError, match="projections over trailing axes"):
        HEinsumDense(equation, (4,))


@pytest.mark.parametrize("equation, shape, out, kwargs", [
    ("btf,fo->bto", (5, 6), (None, 3), {"bias_axes": "o", "activation": "relu"}),
    ("abc,cde->abde", (4, 6), (None, 2, 3), {"bias_axes": "e"}),
    ("abcd,cde->abe", (4, 2, 3), (None, 5), {}),
])
def test_heinsum_dense_equals_the_reference_and_round_trips(tmp_path, equation, shape, out, kwargs):
    inputs = keras.Input(shape)
    layer = HEinsumDense(equation, out, name="p", kernel_quantizer={"init_f": 4}, **kwargs)
    model = keras.Model(inputs, layer(HQuantize(name="q")(inputs)))
    x = _data(shape)
    hgq_chip.calibrate(model, x)
    for data in (x, _out_of_range(x)):
        xq = model.get_layer("q").q.quantize_np(data)
        got = np.asarray(model.predict(data, verbose=0), np.float64)
        assert np.array_equal(got, _projection_reference(layer, xq))
    channels = layer.flat_kernel(layer.fused_kernel()).shape[0]
    bits_in = np.broadcast_to(layer.iq.fixed_format().width, shape).reshape(-1, channels)
    bits_w = layer.flat_kernel(np.broadcast_to(layer.kq.fixed_format(layer.fused_kernel()).width, layer.kernel.shape))
    assert layer.ebops_exact() == int(np.sum(bits_in @ bits_w)) > 0
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.get_layer("p").get_config() == layer.get_config()


# ---- HMultiHeadAttention -----------------------------------------------------------------------

def _attention_model(cross=False, **kwargs):
    query_in = keras.Input((4, 3), name="query_in")
    q = HQuantize(name="q")(query_in)
    layer = HMultiHeadAttention(2, 2, name="mha", **kwargs)
    if not cross:
        return keras.Model(query_in, layer(q, q)), layer
    context_in = keras.Input((5, 2), name="context_in")
    c = HQuantize(name="c")(context_in)
    return keras.Model([query_in, context_in], layer(q, c, c)), layer


@pytest.mark.parametrize("cross, kwargs", [
    (False, {}),
    (True, {"value_dim": 3, "output_shape": 4, "use_bias": False,
            "softmax": {"stable": False, "input_quantizer": {"init_f": 2}}}),
])
def test_attention_equals_the_numpy_reference_in_and_out_of_range(tmp_path, cross, kwargs):
    keras.utils.set_random_seed(1)
    model, layer = _attention_model(cross, **kwargs)
    x = [_data((4, 3))] + ([_data((5, 2), seed=3)] if cross else [])
    hgq_chip.calibrate(model, x if cross else x[0])
    for data in (x, [_out_of_range(a, seed=i) for i, a in enumerate(x)]):
        quantized = [model.get_layer(n).q.quantize_np(a) for n, a in zip(("q", "c"), data)]
        got = np.asarray(model.predict(data if cross else data[0], verbose=0), np.float64)
        context = quantized[-1]
        assert np.array_equal(got, _attention_reference(layer, quantized[0], context))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    data = x if cross else x[0]
    assert np.array_equal(loaded.predict(data, verbose=0), model.predict(data, verbose=0))


def test_attention_ebops_count_every_product_of_two_variables():
    model, layer = _attention_model()
    hgq_chip.calibrate(model, _data((4, 3)))
    bq, bk, bv = (np.broadcast_to(q.fixed_format().width, s) for q, s in
                  ((layer.q_q, (4, 2, 2)), (layer.k_q, (4, 2, 2)), (layer.v_q, (4, 2, 2))))
    bp = int(layer.softmax.oq.fixed_format().width.max())
    scores = sum(int(bq[i, h, d]) * int(bk[j, h, d]) for i in range(4) for j in range(4) for h in range(2)
                 for d in range(2))
    combine = sum(bp * int(bv[j, h, d]) for i in range(4) for j in range(4) for h in range(2) for d in range(2))
    projections = sum(dense.ebops_exact() for dense in layer.projections())
    assert layer.ebops_exact() == scores + combine + projections + layer.softmax.ebops_exact()
    assert hgq_chip.ebops(model) == layer.ebops_exact()
    assert abs(float(layer.ebops_surrogate()) - layer.ebops_exact()) / layer.ebops_exact() < 0.5


@pytest.mark.parametrize("kwargs, message", [
    ({"attention_axes": (1,)}, "attention_axes"),
    ({"softmax": {"scale": 2.0}}, "set by the layer"),
    ({"output_shape": (2, 3)}, "one axis"),
    ({"output_shape": 0}, "output_shape must be at least 1"),
    ({"value_dim": -1}, "value_dim must be at least 1"),
])
def test_bad_attention_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HMultiHeadAttention(2, 2, **kwargs)


@pytest.mark.parametrize("num_heads, key_dim, what", [(0, 2, "num_heads"), (2, 0, "key_dim")])
def test_empty_heads_are_refused_at_construction(num_heads, key_dim, what):
    # key_dim=0 divided by zero (1/sqrt(key_dim)) and num_heads=0 failed in TensorFlow during calibration.
    with pytest.raises(ValueError, match=f"{what} must be at least 1"):
        HMultiHeadAttention(num_heads, key_dim)


def test_masks_and_score_outputs_are_refused():
    x = keras.Input((4, 3))
    with pytest.raises(ValueError, match="use_causal_mask is not supported"):
        HMultiHeadAttention(2, 2)(x, x, use_causal_mask=True)


@pytest.mark.parametrize("mask_kind", ["symbolic", "eager"])
def test_mask_tensors_are_refused_with_the_message(mask_kind):
    # A mask tensor has no truth value (symbolic) or an ambiguous one (eager): the refusal must still be the
    # layer's ValueError naming the argument, not Keras' "cannot be used as a boolean" TypeError.
    if mask_kind == "symbolic":
        x, mask = keras.Input((4, 3)), keras.Input((4, 4), dtype="bool")
    else:
        x, mask = np.zeros((1, 4, 3), "float32"), np.ones((1, 4, 4), bool)
    with pytest.raises(ValueError, match="attention_mask is not supported"):
        HMultiHeadAttention(2, 2)(x, x, attention_mask=mask)
    with pytest.raises(ValueError, match="query_mask is not supported"):
        HMultiHeadAttention(2, 2)(x, x, query_mask=mask[..., 0])


def test_io_stream_and_layer_normalization_are_refused_before_writing(tmp_path):
    model, _ = _attention_model()
    hgq_chip.calibrate(model, _data((4, 3)))
    with pytest.raises(UnsupportedConfigurationError, match="mha.*io_parallel only"):
        hgq_chip.convert(model, tmp_path / "prj", io_type="io_stream")
    inputs = keras.Input((4, 3))
    norm = keras.layers.LayerNormalization(name="norm")(HQuantize(name="q")(inputs))
    plain = keras.Model(inputs, HDense(2, name="d")(norm))
    hgq_chip.calibrate(plain, _data((4, 3)))
    with pytest.raises(UnsupportedLayerError, match="'norm'.*LayerNormalization.*HLayerNormalization"):
        hgq_chip.convert(plain, tmp_path / "prj")
    assert not (tmp_path / "prj").exists()


# ---- the C simulation --------------------------------------------------------------------------

def _converted_model():
    keras.utils.set_random_seed(5)
    inputs = keras.Input((6, 4), name="tokens")
    x = HQuantize(name="q")(inputs)
    context = HEinsumDense("abc,cde->abde", (None, 2, 3), bias_axes="de", activation="relu", name="split")(x)
    context = keras.layers.Reshape((6, 6), name="merge_heads")(context)
    queries = HEinsumDense("abc,cd->abd", (None, 3), name="queries")(x)
    attended = HMultiHeadAttention(2, 3, value_dim=2, output_shape=5, name="mha")(queries, context)
    return keras.Model(inputs, HDense(3, name="head")(keras.layers.Flatten(name="flat")(attended)))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("attention")
    model = _converted_model()
    x = _data((6, 4), seed=2)
    hgq_chip.calibrate(model, x)
    hgq_chip.convert(model, root / "prj", force=True)
    return root, model, x


@pytest.mark.slow  # the g++ compile of the project: ~40 s
def test_csim_is_bit_exact_in_and_out_of_range(converted):
    root, model, x = converted
    assert "bit-exact" in hgq_chip.verify(model, root / "prj", x, strict=True).describe()
    assert "bit-exact" in hgq_chip.verify(model, root / "prj", random=500, scale=4.0, strict=True).describe()


def test_the_project_runs_einsum_and_our_softmax(converted):
    root, _, _ = converted
    top = (root / "prj" / "firmware" / "myproject.cpp").read_text()
    assert top.count("nnet::einsum<") == 2 and top.count("nnet::hgq_softmax<") == 1
    assert "nnet::softmax" not in top and "multiheadattention" not in top.lower()
    summary = json.loads((root / "prj" / "summary.json").read_text())
    stages = {layer["layer"]: layer for layer in summary["layers"]}["mha"]["hls_types"]
    assert {"mha_scores", "mha_softmax", "mha_attend", "mha_query", "mha_attention_output"} <= set(stages)


def test_the_estimate_counts_the_products_the_generated_code_makes(converted):
    """Each Einsum computes n_free0 * n_free1 * n_contract * n_inplace products of two variables
    (nnet_einsum.h); the estimate's product operations must count the same."""
    root, _, _ = converted
    parameters = (root / "prj" / "firmware" / "parameters.h").read_text()
    generated = []
    for block in re.findall(r"struct config\d+ \{[^}]*n_free0[^}]*\}", parameters):
        sizes = [int(re.search(rf"{key} = (\d+)", block).group(1)) for key in ("n_free0", "n_free1", "n_contract",
                                                                             "n_inplace")]
        generated.append(int(np.prod(sizes)))
    facts = {f.name: f for f in hgq_chip.conversion.facts.read_facts(root / "prj" / "estimate_inputs.json")}
    products = [int(np.size(op.out["k"])) for op in facts["mha"].ops if op.kind == "product"]
    softmax_products = 2 * 6 * 6  # e x 1/sum per score
    assert sorted(generated) == sorted(p for p in products if p != softmax_products) == [6 * 6 * 2 * 2, 6 * 6 * 2 * 3]
    layers = {layer.layer: layer for layer in hgq_chip.estimate(root / "prj").layers}
    assert layers["mha"].lut > layers["head"].lut > 0
    assert layers["split"].lut > 0


def test_attention_reading_raw_inputs_takes_each_inputs_own_quantizers():
    # HMultiHeadAttention straight on two model inputs of different lengths: the value input is read by
    # the value and key projections, not the query's. Before, the query projection's quantizer was taken
    # for every input: verify(random=...) crashed with numpy's broadcast ValueError ((4, 5) vs (6, 5)) and
    # the value input's C++ type was derived from the query's format.
    from hgq_chip.api import input_ranges, random_inputs
    from hgq_chip.conversion.graph import graph_nodes
    from hgq_chip.conversion.inputs import input_quantizers

    query_in, value_in = keras.Input((4, 5), name="query_in"), keras.Input((6, 5), name="value_in")
    layer = HMultiHeadAttention(2, 3, name="mha")
    model = keras.Model([query_in, value_in], layer(query_in, value_in))
    hgq_chip.calibrate(model, [_data((4, 5)), _data((6, 5), seed=1, scale=3.0)])
    nodes = graph_nodes(model)
    assert input_quantizers(nodes, model.inputs[0]) == [layer.query_dense.iq]
    assert input_quantizers(nodes, model.inputs[1]) == [layer.value_dense.iq, layer.key_dense.iq]
    (q_lo, _), (v_lo, v_hi) = input_ranges(model)
    assert q_lo.shape == (4, 5) and v_lo.shape == (6, 5)
    expected_hi = np.maximum(layer.value_dense.iq.range_hi.numpy(), layer.key_dense.iq.range_hi.numpy())
    assert np.array_equal(v_hi, np.broadcast_to(expected_hi, (6, 5)))
    assert [x.shape for x in random_inputs(model, 3)] == [(3, 4, 5), (3, 6, 5)]
