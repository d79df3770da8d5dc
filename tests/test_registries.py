"""The conversion registries: no silent double registration, and every ruled class is complete.

"Complete" means: a class with a precision rule (``@rule``, inherited through the MRO) also has
an hls4ml handler (ours, ``@handler``, or hls4ml's own for the Keras classes listed in
NATIVE_HLS4ML), and the estimate prices it (operations in ``estimate_inputs.json``, unless it
is a reshaping layer listed in COST_FREE). Our handlers' dicts must carry the keys hls4ml 1.3
asserts for its own handlers; those keys are read from hls4ml's source, so an hls4ml upgrade
that adds one fails here.
"""

from __future__ import annotations

import ast
import inspect

import keras
import numpy as np
import pytest
from poison import poisoned

import hgq_chip
from hgq_chip import layers as L
from hgq_chip.conversion import family, hls_handlers, precision, rules  # noqa: F401  (rules: registers everything)
from hgq_chip.conversion.facts import facts_from_model
from hgq_chip.conversion.graph import graph_nodes
from hgq_chip.conversion.rules.inference import IDENTITY_AT_INFERENCE
from hgq_chip.errors import UnsupportedLayerError
from hgq_chip.estimation import estimate
from hgq_chip.registry import DuplicateRegistrationError

# Keras classes with a rule and no handler of ours: hls4ml's own handler converts them.
NATIVE_HLS4ML = {keras.layers.Flatten, keras.layers.Reshape, keras.layers.Dropout, keras.layers.AveragePooling1D,
                 keras.layers.AveragePooling2D, keras.layers.Permute, keras.layers.GlobalMaxPooling1D,
                 keras.layers.GlobalMaxPooling2D, keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D}
# Keras classes hls4ml 1.3 has only Keras 2 parsers for: our @keras_handler writes their dicts.
NO_HLS4ML_V3_HANDLER = {keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D, keras.layers.Cropping1D,
                        keras.layers.Cropping2D, keras.layers.UpSampling1D, keras.layers.UpSampling2D}
# Identity at inference: hls4ml's NoOp handler writes some; ours (a @keras_handler) the others.
NO_HLS4ML_V3_HANDLER |= {cls for cls in IDENTITY_AT_INFERENCE
                         if hls_handlers.class_key(cls) not in __import__("hls4ml.converters.keras_v3",
                                                                          fromlist=["layer_handlers"]).layer_handlers}
# Layers that only rename, reshape or move wires: no operation, no cost (conversion/facts.py).
COST_FREE = {keras.layers.Flatten, keras.layers.Reshape, keras.layers.Dropout, keras.layers.Permute,
             keras.layers.Concatenate, *NO_HLS4ML_V3_HANDLER, *IDENTITY_AT_INFERENCE}


def ruled_classes() -> set[type]:
    """Every class registered with @rule, plus each exported hgq_chip layer class a rule reaches."""
    exported = {getattr(L, name) for name in L.__all__ if isinstance(getattr(L, name), type)}
    return set(precision.ruled_classes()) | {cls for cls in exported if precision.rule_for_class(cls) is not None}


def test_every_exported_layer_class_has_a_rule():
    exported = {getattr(L, name) for name in L.__all__ if isinstance(getattr(L, name), type)}
    assert exported <= ruled_classes(), exported - ruled_classes()


@pytest.mark.parametrize("decorator", [family.rule, family.handler, family.keras_handler, family.trace,
                                       lambda *classes: lambda fn: family.limits(*classes, options=[fn])])
def test_a_second_registration_of_a_class_is_refused_and_the_first_stays(decorator):
    class Probe(keras.layers.Layer):
        pass

    class Twice(keras.layers.Layer):
        pass

    tables = [family.RULES, family.HANDLERS, family.KERAS_HANDLERS, family.TRACES, family.LIMITS]

    def first(*args):
        return "first"

    def second(*args):
        return "second"

    try:
        decorator(Probe)(first)
        with pytest.raises(DuplicateRegistrationError, match=r"Probe is already registered as .*first.*second"):
            decorator(Probe)(second)
        assert [table[Probe] for table in tables if Probe in table] in ([first], [(first,)])
        with pytest.raises(DuplicateRegistrationError, match="Twice is listed twice"):
            decorator(Twice, Twice)(first)
        assert not any(Twice in table for table in tables)  # nothing registered by a refused call
    finally:
        for table in tables:
            table.pop(Probe, None)
            table.pop(Twice, None)


def test_registering_a_shipped_class_again_is_refused():
    with pytest.raises(DuplicateRegistrationError, match="HDense is already registered as the precision rule"):
        precision.rule(L.HDense)(lambda layer, intervals: None)
    with pytest.raises(DuplicateRegistrationError, match="HActivation is already registered as the hls4ml handler"):
        hls_handlers.handler(L.HActivation)(lambda layer, inputs, outputs: ())
    with pytest.raises(DuplicateRegistrationError, match="Dense is already registered as the option limits"):
        family.limits(keras.layers.Dense, options=[])
    assert family.RULES[L.HDense].__name__ == "hdense_rule"
    assert family.HANDLERS[L.HActivation].__name__ == "handle_hactivation"


def test_every_ruled_class_has_an_hls4ml_handler():
    from hls4ml.converters.keras_v3 import layer_handlers

    ours = set(hls_handlers.own_handlers())
    without = ruled_classes() - ours
    assert without == NATIVE_HLS4ML | set(hls_handlers.wrapped_keras_classes()), (
        "a ruled class needs @handler, or hls4ml's own handler listed in NATIVE_HLS4ML / wrapped by @keras_handler")
    for cls in without - NO_HLS4ML_V3_HANDLER:
        assert hls_handlers.class_key(cls) in layer_handlers, f"hls4ml 1.3 has no handler for {cls.__name__}"
    assert NO_HLS4ML_V3_HANDLER <= set(hls_handlers.wrapped_keras_classes())
    assert not (NATIVE_HLS4ML & ours), "NATIVE_HLS4ML lists a class that has a handler of ours"


def test_our_mandatory_keys_are_the_ones_hls4ml_asserts():
    from hls4ml.converters.keras_v3._base import KerasV3LayerHandler

    tree = ast.parse(inspect.getsource(KerasV3LayerHandler.__call__).lstrip())
    found = [node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
             and any(getattr(t, "id", None) == "mandatory_keys" for t in node.targets)]
    assert len(found) == 1, "hls4ml's handler base no longer names mandatory_keys: re-check its contract"
    assert set(ast.literal_eval(found[0])) == set(hls_handlers.MANDATORY_KEYS)


def test_a_handler_output_without_the_mandatory_keys_is_a_typed_error():
    layer = keras.layers.Dense(2, name="d")
    good = {"name": "d", "class_name": "Dense", "input_keras_tensor_names": ["x"], "output_keras_tensor_names": ["y"]}
    assert hls_handlers.check_handler_output(layer, (good,), str) == (good,)
    for broken, message in [({k: v for k, v in good.items() if k != "class_name"}, "class_name"),
                            ({"name": "d"}, "input_keras_tensor_names")]:
        with pytest.raises(UnsupportedLayerError, match=f"layer 'd'.*{message}"):
            hls_handlers.check_handler_output(layer, (good, broken), str)
    with pytest.raises(UnsupportedLayerError, match="not a tuple of layer dicts"):
        hls_handlers.check_handler_output(layer, good, str)


# ---- every ruled class, converted by its handler and priced by the estimate ---------------------

ASQ_IN = {"kind": "asq", "bits": 4, "signed": True}
POST_K = {"kind": "post", "bits": 4}


def _one_d(inp):
    q = L.HQuantize(name="q1")(inp)
    x = L.HConv1D(4, 3, activation="relu", name="conv1")(q)
    x = L.HConv1DBatchNorm(4, 2, name="conv1bn")(x)
    x = L.AConv1D(3, 2, name="aconv1")(x)
    x = keras.layers.MaxPooling1D(2, name="max1")(x)
    x = keras.layers.AveragePooling1D(2, name="avg1")(x)
    y = L.ASQConv1D(2, 2, input_quantizer=ASQ_IN, kernel_quantizer=POST_K, name="asqconv1")(q)
    z = L.HDepthwiseConv1D(2, depth_multiplier=2, name="dwconv1")(q)
    m = keras.layers.ZeroPadding1D(1, name="zpad1")(q)
    m = keras.layers.Cropping1D((2, 1), name="crop1")(m)
    m = keras.layers.UpSampling1D(2, name="up1")(m)
    m = keras.layers.Permute((2, 1), name="permute1")(m)
    m = keras.layers.Concatenate(name="cat1")([keras.layers.GlobalMaxPooling1D(name="gmax1")(q),
                                               keras.layers.GlobalAveragePooling1D(name="gavg1")(keras.layers.Cropping1D((0, 1), name="crop1b")(q)),
                                               keras.layers.Flatten(name="flat1m")(m)])
    return keras.layers.Flatten(name="flat1")(x), keras.layers.Flatten(name="flat1b")(y), z, m


def _two_d(inp):
    q = L.HQuantize(name="q2")(inp)
    x = L.HConv2D(3, 2, name="conv2")(q)
    x = L.HConv2DBatchNorm(3, 2, name="conv2bn")(x)
    x = L.AConv2D(2, 1, name="aconv2")(x)
    x = keras.layers.MaxPooling2D(2, name="max2")(x)
    x = keras.layers.AveragePooling2D(1, name="avg2")(x)
    y = L.ASQConv2D(2, 2, input_quantizer=ASQ_IN, kernel_quantizer=POST_K, name="asqconv2")(q)
    z = L.HDepthwiseConv2D(2, activation="relu", name="dwconv2")(q)
    m = keras.layers.ZeroPadding2D(1, name="zpad2")(q)
    m = keras.layers.Cropping2D(((0, 4), (0, 4)), name="crop2")(m)
    m = keras.layers.UpSampling2D(2, name="up2")(m)
    m = keras.layers.Concatenate(name="cat2")([keras.layers.GlobalMaxPooling2D(name="gmax2")(m),
                                               keras.layers.GlobalAveragePooling2D(name="gavg2")(m)])
    return keras.layers.Flatten(name="flat2")(x), keras.layers.Flatten(name="flat2b")(y), z, m


def _dense(inp):
    q = L.HQuantize(name="q3")(inp)
    x = L.HDense(4, activation="relu", name="dense")(q)
    x = keras.layers.Dropout(0.5, name="drop")(x)
    a = L.HDenseBatchNorm(4, name="densebn")(x)
    b = L.ADense(4, name="adense")(x)
    s = keras.layers.Add(name="add")([a, b])
    t = L.HAdd(name="hadd")([a, s])
    t = L.HActivation("tanh", name="act")(t)
    t = keras.layers.Reshape((2, 2), name="reshape")(t)
    u = L.ASQDense(3, input_quantizer=ASQ_IN, kernel_quantizer=POST_K, name="asqdense")(q)
    d = L.HSubtract(name="sub")([a, b])
    m = L.HMultiply(name="mul")([d, b])
    v = L.HMaximum(input_quantizer={"init_f": 2}, name="maximum")([m, a, d])
    w = L.HMinimum(name="minimum")([v, b])
    u = L.HSoftmax(name="softmax")(u)
    w = L.HLayerNormalization(name="layernorm")(w)
    tokens = L.HEinsumDense("abc,cd->abd", (None, 4), bias_axes="d", name="einsum")(keras.layers.Reshape((2, 3), name="tokens")(q))
    tokens = keras.layers.Flatten(name="flat4")(L.HMultiHeadAttention(2, 2, name="mha")(tokens, tokens))
    return keras.layers.Flatten(name="flat3")(t), u, w, tokens


def _inference(vector, rgb):
    """Issue 33: Keras layers that are the identity or a relu at inference, Keras' own merges."""
    q = L.HQuantize(name="q4")(vector)
    x = keras.layers.Identity(name="identity")(q)
    for cls in (keras.layers.GaussianNoise, keras.layers.GaussianDropout, keras.layers.AlphaDropout):
        x = cls(0.2, name=cls.__name__.lower())(x)
    x = keras.layers.ActivityRegularization(l1=0.01, name="actreg")(x)
    x = keras.layers.ReLU(name="relu_layer")(keras.layers.Subtract(name="ksub")([x, q]))
    x = keras.layers.Maximum(name="kmax")([x, q])
    x = keras.layers.Activation("relu", name="relu_act")(keras.layers.Minimum(name="kmin")([x, q]))
    image = L.HQuantize(name="q5")(rgb)
    for index, cls in enumerate(c for c in IDENTITY_AT_INFERENCE if c.__module__.startswith("keras.src.layers.preprocessing")):
        image = cls(**_AUGMENT_ARGS.get(cls.__name__, {}), name=f"augment{index}")(image)
    return x, keras.layers.Flatten(name="flat5")(image)


_AUGMENT_ARGS = {name: {"factor": 0.2} for name in ("RandomBrightness", "RandomColorDegeneration", "RandomContrast",
                                                    "RandomHue", "RandomRotation", "RandomSaturation",
                                                    "RandomSharpness")}
_AUGMENT_ARGS.update(RandomPosterization={"factor": 4}, RandomTranslation={"height_factor": 0.1, "width_factor": 0.1},
                     RandomZoom={"height_factor": 0.1})


@pytest.fixture(scope="module")
def every_class_model():
    keras.utils.set_random_seed(3)
    inputs = [keras.Input((9, 3), name="series"), keras.Input((6, 6, 2), name="image"), keras.Input((6,), name="vector"),
              keras.Input((6, 6, 3), name="rgb")]
    outputs = [*_one_d(inputs[0]), *_two_d(inputs[1]), *_dense(inputs[2]), *_inference(inputs[2], inputs[3])]
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    hgq_chip.calibrate(model, [rng.normal(0, 1, (64, *t.shape[1:])).astype(np.float32) for t in inputs])
    return model


def test_the_model_holds_every_ruled_class(every_class_model):
    present = {type(layer) for layer in every_class_model.layers}
    assert ruled_classes() <= present, f"add these classes to every_class_model: {ruled_classes() - present}"


def test_every_ruled_layer_is_priced_by_the_estimate(every_class_model):
    facts = {f.name: f for f in facts_from_model(every_class_model)}
    result = {e.layer: e for e in estimate(every_class_model).layers}
    for layer in every_class_model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        assert layer.name in facts and layer.name in result, f"{layer.name} is missing from the estimate"
        if type(layer) in COST_FREE:
            assert facts[layer.name].ops == [], f"{layer.name} ({type(layer).__name__}) is listed as free but has ops"
        else:
            assert facts[layer.name].ops, f"{layer.name} ({type(layer).__name__}) has no operations to price"
    assert result["dense"].lut > 0 and result["asqdense"].lut > 0
    assert result["mul"].lut + result["mul"].dsp > 0 and result["dwconv2"].lut > 0


def test_our_handlers_return_the_keys_hls4ml_requires(every_class_model):
    from hls4ml.converters.keras_v3 import layer_handlers

    checked = set()
    nodes = graph_nodes(every_class_model)
    with hls_handlers.converting(records=precision.derive(nodes)):
        for node in nodes:
            cls = type(node.layer)
            if cls not in hls_handlers.own_handlers() and cls not in hls_handlers.wrapped_keras_classes():
                continue
            registered = layer_handlers[hls_handlers.class_key(cls)]
            configs = registered(node.layer, list(node.inputs), list(node.outputs))
            assert configs and all(set(hls_handlers.MANDATORY_KEYS) <= set(config) for config in configs), cls
            checked.add(cls)
    assert checked == set(hls_handlers.own_handlers()) | set(hls_handlers.wrapped_keras_classes())


def _handler_output(model, nodes, records) -> dict:
    from hls4ml.converters.keras_v3 import layer_handlers

    out = {}
    with hls_handlers.converting(records=records):
        for node in nodes:
            cls = type(node.layer)
            if cls in hls_handlers.own_handlers() or cls in hls_handlers.wrapped_keras_classes():
                out[node.layer.name] = layer_handlers[hls_handlers.class_key(cls)](
                    node.layer, list(node.inputs), list(node.outputs))
    return out


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return str(a) == str(b)


def test_handlers_render_the_record_and_re_derive_nothing(every_class_model, monkeypatch):
    """Derive once: after ``derive``, every variable of the model is overwritten with noise and every
    method that derives a weight table, a table or a type raises (tests/poison.py); the handlers
    still return the same layer dicts (weights, tables, quantizer masks): they read the records."""
    nodes = graph_nodes(every_class_model)
    records = precision.derive(nodes)
    clean = _handler_output(every_class_model, nodes, records)
    with poisoned(every_class_model, monkeypatch):
        rendered = _handler_output(every_class_model, nodes, records)
    assert rendered.keys() == clean.keys()
    differ = [(name, i, key) for name in clean for i, (a, b) in enumerate(zip(clean[name], rendered[name]))
              for key in set(a) | set(b) if not _same(a.get(key), b.get(key))]
    assert not differ, f"handler output changed (layer, dict, key): {differ}"


def test_every_operation_kind_has_a_cost_and_every_emitted_operation_a_kind(every_class_model):
    """The estimate prices operations through one table (estimation/ops.COSTS) keyed like the
    operation kinds the families emit (conversion/ops.KINDS); every operation of the every-class
    model is of a listed kind with its listed fields, and every kind but the ones this model has
    no layer for is emitted."""
    from hgq_chip.conversion.ops import KINDS
    from hgq_chip.estimation.ops import COSTS

    assert set(COSTS) == set(KINDS)
    emitted = set()
    for facts in facts_from_model(every_class_model):
        for op in facts.ops:
            assert op["op"] in KINDS, (facts.name, op["op"])
            missing = [field for field in KINDS[op["op"]] if field not in op]
            assert not missing, f"{facts.name}: {op['op']} without {missing}"
            emitted.add(op["op"])
    assert emitted == set(KINDS)
