"""A layer named like one of its own hls4ml attributes is refused before anything is written.

hls4ml stores a layer's output variable among its attributes under the layer's name
(``Layer.add_output_variable``), so a Permute named ``perm`` lost its permutation and a layer named
``strategy`` or ``reuse_factor`` broke hls4ml's passes (seen as a bare "hls4ml failed" error).
Three sources of such names are checked: the attributes hls4ml's passes set on any layer (a fixed
list, kept complete by re-reading hls4ml's sources here), those a layer's hls4ml class declares, and
those hls4ml's Keras parser gives the layer (read from the parsed model).
"""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np
import pytest

import hgq_chip
from hgq_chip.conversion.names import HLS4ML_PASS_ATTRIBUTES, name_problem
from hgq_chip.errors import UnsupportedLayerError
from hgq_chip.layers import HDense, HQuantize, HSoftmax

QUIET = {"log": lambda message: None}


def _model(make_layer, input_shape):
    inputs = keras.Input(input_shape, name="x")
    x = HQuantize({"granularity": "per-layer"}, name="xq")(inputs)
    x = make_layer(x)
    model = keras.Model(inputs, keras.layers.Flatten(name="flat")(x))
    hgq_chip.calibrate(model, np.random.default_rng(0).normal(size=(32, *input_shape)).astype(np.float32))
    return model


CASES = [
    # (name, layer factory, input shape, which check refuses it)
    ("perm", lambda n: keras.layers.Permute((2, 1), name=n), (3, 4), "set by hls4ml's passes"),
    ("strategy", lambda n: HDense(3, name=n), (6,), "set by hls4ml's passes"),
    ("reuse_factor", lambda n: HDense(3, name=n), (6,), "set by hls4ml's passes"),
    ("n_out", lambda n: HDense(3, name=n), (6,), "given by hls4ml's Keras parser"),
    ("class_name", lambda n: keras.layers.Permute((2, 1), name=n), (3, 4), "given by hls4ml's Keras parser"),
    # A plain (not stable) HSoftmax named 'stable' read its output variable as its 'stable' flag: true, so its
    # firmware subtracted the maximum that Keras did not (wrong firmware, no error) before this check.
    ("stable", lambda n: HSoftmax(stable=False, name=n), (6,), "given by our softmax handler"),
    ("n_filt", lambda n: keras.layers.Reshape((2, 3), name=n), (6,), None),  # not an attribute of a Reshape
    ("dims", lambda n: keras.layers.Permute((2, 1), name=n), (3, 4), None),
]


@pytest.mark.parametrize("name, make, shape, source", CASES, ids=[c[0] for c in CASES])
def test_layer_named_like_its_hls4ml_attribute_is_refused_before_writing(tmp_path, name, make, shape, source):
    model = _model(lambda x: make(name)(x), shape)
    if source is None:
        hgq_chip.convert(model, tmp_path / "prj", **QUIET)  # converts; test_convert_movement checks exactness
        return
    with pytest.raises(UnsupportedLayerError) as caught:
        hgq_chip.convert(model, tmp_path / "prj", **QUIET)
    message = str(caught.value)
    assert repr(name) in message and "hls4ml" in message
    suggestion = message.split("name=")[1].split("'")[1]
    assert name_problem(suggestion) is None and suggestion != name
    assert not (tmp_path / "prj").exists()


def test_the_pass_attribute_list_holds_every_set_attr_of_hls4ml():
    """Every ``set_attr('<name>', ...)`` in hls4ml's sources is in HLS4ML_PASS_ATTRIBUTES: a new hls4ml
    release that sets another attribute fails here until the list is updated."""
    import hls4ml

    root = Path(hls4ml.__file__).parent
    found = set()
    for path in root.rglob("*.py"):
        found.update(re.findall(r"set_attr\(\s*'([A-Za-z_0-9]+)'", path.read_text(errors="replace")))
    assert len(found) > 50, "the scan found too few set_attr calls: hls4ml's layout changed?"
    assert found <= HLS4ML_PASS_ATTRIBUTES, sorted(found - HLS4ML_PASS_ATTRIBUTES)
