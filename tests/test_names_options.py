"""Names and options that cannot build are refused before anything is written.

Keras accepts layer and input names that are no C++ identifiers ('-', '.', spaces, a
leading digit, keywords) or that collide with names hgq_chip or hls4ml generate
(``<layer>_iq``, ``layer2_out``, ``w4``); such a name becomes part of the firmware, so
convert refuses it with UnsupportedLayerError and a valid suggestion. Options that cannot
build (reuse factor 0, a clock period <= 0, a project name that is no identifier, a
reuse factor other than 1 with distributed_arithmetic) raise UnsupportedConfigurationError. The
suggested names and the accepted unusual names convert into projects that compile and are exact.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

import hgq_chip
from hgq_chip.cli import main
from hgq_chip.conversion.hls_config import check_reuse_factors_applied
from hgq_chip.conversion.names import name_problem
from hgq_chip.errors import UnsupportedConfigurationError, UnsupportedLayerError
from hgq_chip.layers import HDense, HQuantize

QUIET = {"log": lambda message: None}
DEFAULT_NAMES = {"input": "pixels", "quantize": "input_q", "hidden": "hidden", "logits": "logits"}


def _model(**names):
    names = {**DEFAULT_NAMES, **names}
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,), name=names["input"])
    x = HQuantize(name=names["quantize"])(inputs)
    x = HDense(4, activation="relu", name=names["hidden"])(x)
    model = keras.Model(inputs, HDense(2, name=names["logits"])(x))
    hgq_chip.calibrate(model, np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32))
    return model


HOSTILE = [
    ("hidden", "conv-1"), ("hidden", "block.1"), ("hidden", "has space"), ("hidden", "2nd"), ("hidden", "int"),
    ("hidden", "class"), ("hidden", "layer2_out"), ("hidden", "w4"), ("hidden", "_private"), ("hidden", "a__b"), ("hidden", "schicht_ä"),
    ("logits", "BIAS"), ("logits", "result_t"), ("quantize", "config3"), ("input", "in-put"), ("input", "x.1"),
    ("input", "input_t"), ("input", "3d"), ("quantize", "pixels_ap"), ("logits", "DIV_ROUNDUP"), ("input", "INLINE"),
]


@pytest.mark.parametrize("role, name", HOSTILE)
def test_layer_or_input_name_that_is_no_cpp_identifier_is_refused_with_a_valid_suggestion(tmp_path, role, name):
    with pytest.raises(UnsupportedLayerError) as caught:
        hgq_chip.convert(_model(**{role: name}), tmp_path / "prj", **QUIET)
    message = str(caught.value)
    assert repr(name) in message
    suggestion = message.split("name=")[1].split("'")[1]
    assert name_problem(suggestion) is None and suggestion not in DEFAULT_NAMES.values()
    assert not (tmp_path / "prj").exists()


def test_layer_named_like_another_layers_derived_stage_is_refused(tmp_path):
    # "hidden" gets the stages hidden_iq (its input quantizer) and hidden_relu: a layer may not take those names.
    for stage in ("hidden_iq", "hidden_relu"):
        with pytest.raises(UnsupportedLayerError, match=f"'{stage}' has the name of a stage"):
            hgq_chip.convert(_model(logits=stage), tmp_path / "prj", **QUIET)
    assert not (tmp_path / "prj").exists()


def test_per_element_quantizer_named_like_an_nnet_function_is_refused(tmp_path):
    """A per-element HQuantize becomes the function nnet::<name>; 'dense' is hls4ml's own."""
    model = _model(quantize="dense")
    quantizer = model.get_layer("dense").q
    quantizer.f.assign(np.resize([2.0, 3.0, 4.0], quantizer.f.shape).astype("float32"))
    with pytest.raises(UnsupportedLayerError, match="nnet::dense"):
        hgq_chip.convert(model, tmp_path / "prj", **QUIET)
    assert not (tmp_path / "prj").exists()


@pytest.mark.parametrize("options, option_named", [
    ({"reuse_factor": 0}, "reuse factor"), ({"reuse_factor": -2}, "reuse factor"),
    ({"reuse_factor": 2.5}, "reuse factor"), ({"reuse_factor": True}, "reuse factor"),
    ({"reuse_factor": "2"}, "reuse factor"),
    ({"clock_period": 0}, "clock period"), ({"clock_period": -5.0}, "clock period"),
    ({"clock_period": math.nan}, "clock period"), ({"clock_period": math.inf}, "clock period"),
    ({"project_name": "my-project"}, "project name"), ({"project_name": "class"}, "project name"),
    ({"project_name": "1top"}, "project name"), ({"project_name": "defines"}, "project name"),
    ({"project_name": "Parameters"}, "project name"), ({"project_name": "nnet"}, "project name"),
    ({"project_name": "pixels"}, "project name"), ({"project_name": "hidden"}, "project name"),
    ({"part": "xc7 z020"}, "part"), ({"part": 'xcu250"; exit'}, "part"), ({"part": ""}, "part"),
])
def test_option_that_cannot_build_is_refused_naming_the_option(tmp_path, options, option_named):
    with pytest.raises(UnsupportedConfigurationError, match=option_named):
        hgq_chip.convert(_model(), tmp_path / "prj", **options, **QUIET)
    assert not (tmp_path / "prj").exists()


def test_reuse_factor_other_than_one_with_distributed_arithmetic_is_refused(tmp_path):
    with pytest.raises(UnsupportedConfigurationError, match="reuse factor 2 cannot be built with strategy distrib"):
        hgq_chip.convert(_model(), tmp_path / "prj", reuse_factor=2, strategy="distributed_arithmetic", **QUIET)
    assert not (tmp_path / "prj").exists()


def test_reuse_factor_changed_inside_hls4ml_is_refused_with_the_valid_values(tmp_path):
    """hls4ml's resource strategies replace an invalid reuse factor by the closest valid one and
    only print a warning; the check after hls4ml's conversion refuses any such change."""
    conversion = hgq_chip.convert(_model(), tmp_path / "prj", reuse_factor=3, **QUIET)
    check_reuse_factors_applied(conversion.hls_model, 3, "")  # as written: nothing changed
    conversion.hls_model.graph["hidden"].set_attr("reuse_factor", 4)
    printed = 'WARNING: Invalid ReuseFactor=3 in layer "hidden".Using ReuseFactor=4 instead. Valid ReuseFactor(s): 1,2,4.'
    with pytest.raises(UnsupportedConfigurationError, match=r"'hidden' \(hls4ml would use 4; valid: 1,2,4\)"):
        check_reuse_factors_applied(conversion.hls_model, 3, printed)


def test_cli_refuses_reuse_factor_zero_and_nan_clock_with_exit_5(tmp_path, capsys):
    _model().save(tmp_path / "model.keras")
    for option, value in (("--reuse-factor", "0"), ("--clock-period", "nan"), ("--project-name", "a.b")):
        code = main(["convert", str(tmp_path / "model.keras"), "--backend", "Vitis", "--output-dir", str(tmp_path / "prj"),
                     option, value])
        assert code == UnsupportedConfigurationError.exit_code, option
        assert "hgq_chip: error:" in capsys.readouterr().err
        assert not (tmp_path / "prj").exists()


@pytest.mark.slow
def test_unusual_but_accepted_names_and_options_compile_and_are_exact(tmp_path):
    """Names near the refused ones (capitals, digits, suffixes like those of stages) with a
    reuse factor that divides no layer's multiplications (hls4ml's latency strategy keeps
    it) and another project name: the project keeps that factor, compiles and is exact."""
    model = _model(input="Input_1", quantize="q2", hidden="Dense_relu", logits="hidden_iq2")
    hgq_chip.convert(model, tmp_path / "prj", reuse_factor=5, clock_period=3.3, project_name="Top_1", **QUIET)
    parameters = (tmp_path / "prj" / "firmware" / "parameters.h").read_text()
    assert "reuse_factor = 5;" in parameters and "reuse_factor = 4;" not in parameters
    report = hgq_chip.verify(model, tmp_path / "prj", random=200, **QUIET)
    assert report.ok, report.describe()
    assert "'Dense_relu'" in (tmp_path / "prj" / "summary.json").read_text().replace('"', "'")


# hls4ml 1.3's Keras 3 parser starts its set of used names as set('input') -- the letters
# i, n, p, u, t -- and renames a layer of such a name to '<name>_0'; its Layer rejects 'input'.
HLS4ML_RESERVED = [(role, name) for name in ("i", "n", "p", "u", "t", "input")
                   for role in ("input", "quantize", "hidden", "logits")]


def test_hls4ml_reserves_the_letters_of_input():
    from hgq_chip.conversion.names import HLS4ML_REJECTED, hls4ml_renamed_names

    assert hls4ml_renamed_names() == frozenset("input") and HLS4ML_REJECTED == {"input"}


@pytest.mark.parametrize("role, name", HLS4ML_RESERVED)
def test_layer_or_input_name_hls4ml_renames_or_rejects_is_refused_with_a_valid_suggestion(tmp_path, role, name):
    from hgq_chip.conversion.names import layer_name_problem

    with pytest.raises(UnsupportedLayerError) as caught:
        hgq_chip.convert(_model(**{role: name}), tmp_path / "prj", **QUIET)
    message = str(caught.value)
    assert f"{'input' if role == 'input' else 'layer'} {name!r}" in message and "hls4ml" in message
    suggestion = message.split("name=")[1].split("'")[1]
    assert layer_name_problem(suggestion) is None and suggestion not in DEFAULT_NAMES.values()
    assert not (tmp_path / "prj").exists()


def test_cli_refuses_a_layer_named_n_with_exit_4_and_one_line(tmp_path, capsys):
    _model(hidden="n").save(tmp_path / "model.keras")
    code = main(["convert", str(tmp_path / "model.keras"), "--backend", "Vitis", "--output-dir", str(tmp_path / "prj"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == UnsupportedLayerError.exit_code == 4
    assert err.count("\n") == 1 and err.startswith("hgq_chip: error: layer 'n' ") and "internal" not in err
    assert not (tmp_path / "prj").exists()


def _streamed_model_read_twice(name):
    """io_stream: 'hidden''s stream is read by two layers, so hls4ml inserts 'clone_hidden'."""
    keras.utils.set_random_seed(0)
    q = {"granularity": "per-layer"}
    inputs = keras.Input((6,), name="pixels")
    hidden = HDense(4, name="hidden", input_quantizer=q)(HQuantize(q, name="input_q")(inputs))
    a, b = HDense(2, name=name, input_quantizer=q)(hidden), HDense(2, name="other", input_quantizer=q)(hidden)
    model = keras.Model(inputs, keras.layers.Add(name="total")([a, b]))
    hgq_chip.calibrate(model, np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32))
    return model


@pytest.mark.parametrize("name", ["clone_hidden", "clone_repack_hidden", "repack_other", "zp1d_hidden", "bnbt_input_q"])
def test_layer_named_like_a_layer_hls4ml_inserts_for_another_is_refused(tmp_path, name):
    """A layer called clone_<x> would replace the clone hls4ml inserts for x in its graph
    (the firmware then does not compile), likewise repack_, zp1d_/zp2d_, bnbt_, broadcast_."""
    with pytest.raises(UnsupportedLayerError, match=f"layer {name!r} has the name hls4ml gives a layer it may insert"):
        hgq_chip.convert(_streamed_model_read_twice(name), tmp_path / "prj", io_type="io_stream", **QUIET)
    assert not (tmp_path / "prj").exists()


def test_a_layer_hls4ml_renames_anyway_is_refused_typed_before_the_project_is_written(tmp_path, monkeypatch):
    """The check after hls4ml's conversion: were a reserved name let through, hls4ml's rename
    ('n' -> 'n_0') is reported as UnsupportedLayerError naming the layer, not as an internal error."""
    from hgq_chip.conversion import names

    monkeypatch.setattr(names, "layer_name_problem", names.name_problem)
    with pytest.raises(UnsupportedLayerError, match="hls4ml renamed layer 'n' to 'n_0'"):
        hgq_chip.convert(_model(hidden="n"), tmp_path / "prj", **QUIET)
    assert not (tmp_path / "prj").exists()


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_names_near_the_ones_hls4ml_renames_convert_compile_and_are_exact(tmp_path, io_type):
    """Capitals and longer names of hls4ml's reserved letters, 'n_0' with no 'n', 'inputs', and
    prefixes of inserted layers not followed by a layer name: all kept, compiled, exact."""
    keras.utils.set_random_seed(0)
    q = {"granularity": "per-layer"}
    inputs = keras.Input((6,), name="I")
    x = HQuantize(q, name="n_0")(inputs)
    x = HDense(4, activation="relu", name="clone", input_quantizer=q)(x)
    a, b = HDense(2, name="inputs", input_quantizer=q)(x), HDense(2, name="clone_N", input_quantizer=q)(x)
    model = keras.Model(inputs, keras.layers.Add(name="repack_in")([a, b]))
    hgq_chip.calibrate(model, np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32))
    conversion = hgq_chip.convert(model, tmp_path / "prj", io_type=io_type, **QUIET)
    assert {"I", "n_0", "clone", "inputs", "clone_N", "repack_in"} <= set(conversion.hls_model.graph)
    report = hgq_chip.verify(model, tmp_path / "prj", random=300, scale=4.0, strict=True, **QUIET)
    assert report.ok and report.n_mismatches == 0, report.describe()
