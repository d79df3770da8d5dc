"""Every layer class exported by ``keras.layers``: convert works bit-exact, or refuses with the way forward.

The tables (tests/keras_layer_table.py) hold a small model per class. A converted class must
convert and, in the C simulation, equal Keras bit for bit (the fast test runs one C simulation
of a model holding every class added for issue 33; the slow test one per class); a refused
class must raise a typed hgq_chip error naming the layer and its exact alternative (or why none
exists), writing nothing; a class that cannot sit in such a model must fail the probe that
shows why. The counts are printed in pytest's terminal summary.
"""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
from exactness import assert_bit_exact
from keras_layer_table import CONVERTED, NOT_BUILDABLE, REFUSED, exported_layer_classes

import hgq_chip
from hgq_chip.conversion.facts import facts_from_model
from hgq_chip.conversion.graph import graph_nodes
from hgq_chip.conversion.layer_options import check_layer_options
from hgq_chip.errors import HGQChipError, UnsupportedLayerError
from hgq_chip.layers import HQuantize

PL = {"granularity": "per-layer"}  # one type per tensor: io_stream's requirement


def _model(shape, build, seed=1, quantizer=None):
    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape, name="x")
    return keras.Model(inp, build(HQuantize(quantizer, name="q")(inp)))


def _data(shape, n=48, seed=0):
    return np.random.default_rng(seed).normal(0, 2, (n, *shape)).astype("float32")


def test_every_exported_class_is_in_exactly_one_table(summary_lines):
    classes = exported_layer_classes()
    tables = (CONVERTED, REFUSED, NOT_BUILDABLE)
    exported = {name for names in classes.values() for name in names}
    stale = [name for table in tables for name in table if name not in exported]
    assert not stale, f"tabled names keras.layers does not export: {stale}"
    counts = [0, 0, 0]
    for cls, names in classes.items():
        hits = [(index, name) for index, table in enumerate(tables) for name in names if name in table]
        assert len(hits) == 1, f"{cls.__name__} (exported as {names}) must be in exactly one table, found {hits}"
        counts[hits[0][0]] += 1
    summary_lines.append(
        f"keras.layers enumeration (keras {keras.__version__}): {len(classes)} layer classes "
        f"({len(exported)} names): {counts[0]} converted, {counts[1]} refused with a remedy, "
        f"{counts[2]} not buildable in a model")


@pytest.mark.parametrize("name", sorted(CONVERTED))
def test_converted_class_passes_what_convert_checks_first(name):
    """The option table and the precision derivation (what convert runs before writing) accept it;
    the slow test below converts and C-simulates each class."""
    shape, build = CONVERTED[name]
    model = _model(shape, build)
    hgq_chip.calibrate(model, _data(shape))
    check_layer_options(graph_nodes(model), "io_parallel")
    assert [facts.name for facts in facts_from_model(model)][-1] == "layer"


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_class_names_its_way_forward(name, tmp_path):
    shape, build, words = REFUSED[name]
    model = _model(shape, build)
    hgq_chip.calibrate(model, _data(shape))
    with pytest.raises(HGQChipError) as caught:
        hgq_chip.convert(model, tmp_path / "out", log=lambda *_: None)
    message = str(caught.value)
    assert "'layer'" in message, message
    for word in words:
        assert word in message, message
    assert list(tmp_path.iterdir()) == [], "a refused conversion wrote something"


@pytest.mark.parametrize("name", sorted(NOT_BUILDABLE))
def test_not_buildable_class_fails_its_probe(name):
    reason, probe, pattern = NOT_BUILDABLE[name]
    assert reason
    with pytest.raises(Exception) as caught:  # the probe shows Keras' own refusal
        probe()
    assert re.search(pattern, str(caught.value)), str(caught.value)


def test_a_custom_layer_without_a_hint_lists_the_supported_layers(tmp_path):
    class Custom(keras.layers.Layer):
        def call(self, x):
            return x

    model = _model((4,), lambda q: Custom(name="layer")(q))
    hgq_chip.calibrate(model, _data((4,)))
    with pytest.raises(UnsupportedLayerError, match="'layer' of type Custom .*supported layers: .*HDense"):
        hgq_chip.convert(model, tmp_path / "out", log=lambda *_: None)


# The classes issue 33 added (identity at inference, exact activations, Keras' own merges), in one
# model per input shape, each through one C simulation per io type.
def _flat(q):
    x = keras.layers.Identity(name="identity")(q)
    x = keras.layers.GaussianNoise(0.3, name="noise")(x)
    x = keras.layers.GaussianDropout(0.3, name="gdrop")(x)
    x = keras.layers.AlphaDropout(0.3, name="adrop")(x)
    x = keras.layers.ActivityRegularization(l1=0.01, name="reg")(x)
    x = keras.layers.Activation("linear", name="linear")(x)
    x = keras.layers.Subtract(name="sub")([x, HQuantize({**PL, "init_f": 1}, name="q_sub")(x)])
    r = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.Maximum(name="max")([x, HQuantize({**PL, "init_f": 2}, name="q_max")(q), r])
    x = keras.layers.Minimum(name="min")([x, HQuantize({**PL, "init_f": 3}, name="q_min")(q)])
    return keras.layers.Activation("relu", name="act_relu")(x)


def _image(q):
    x = keras.layers.SpatialDropout2D(0.3, name="sdrop")(q)
    x = keras.layers.RandomFlip(name="flip")(x)
    x = keras.layers.RandomBrightness(0.2, name="bright")(x)
    x = keras.layers.RandAugment(name="randaug")(x)
    x = keras.layers.MixUp(name="mixup")(x)
    return keras.layers.RandomZoom(0.1, name="zoom")(x)


@pytest.mark.parametrize("build, shape, io_type", [
    (_flat, (4,), "io_parallel"),
    (_image, (6, 6, 3), "io_stream"),
    pytest.param(_flat, (4,), "io_stream", marks=pytest.mark.slow),
    pytest.param(_image, (6, 6, 3), "io_parallel", marks=pytest.mark.slow),
], ids=["flat-io_parallel", "image-io_stream", "flat-io_stream", "image-io_parallel"])
def test_added_classes_are_bit_exact(build, shape, io_type, tmp_path):
    model = _model(shape, build, quantizer=PL)
    assert_bit_exact(model, _data(shape), tmp_path / "out", io_type=io_type)
