"""A tensor that is a model output and is also read by another layer (or read by several).

In io_stream hls4ml copies such a stream with a ``Clone`` layer whose copies get the type of
the producer's ``result_t``. A Flatten that is a model output, and a Reshape to more than one
axis, become hls4ml's ``Repack`` layer ``repack_<name>``, whose ``result_t`` hls4ml leaves at
the configuration's type for that name: without an entry of its own the copies were the unused
default type (an internal error, and without the check wrong values). convert now gives that
Repack the Reshape's derived type. Each kind of tensor below is both a model output and read by
another layer, in io_stream and io_parallel, and must be bit-exact on random inputs 4x outside
the calibrated range (strict verify).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import hgq_chip
from hgq_chip.errors import HGQChipError
from hgq_chip.layers import HActivation, HAdd, HConv1D, HDense, HQuantize

Q = {"granularity": "per-layer"}
QUIET = {"log": lambda message: None}


def _conv(filters, kernel, name, **options):
    return HConv1D(filters, kernel, input_quantizer=Q, name=name, **options)


def _build(kind):
    """(inputs, [the tensor of ``kind``, ...], the layer reading it)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 2), name="x")
    x = HQuantize(Q, name="q0")(inputs)
    if kind == "quantize":
        shared = x
        return inputs, shared, _conv(2, 3, "reader")(shared)
    if kind in ("conv", "conv_relu"):
        shared = _conv(3, 3, "conv", activation="relu" if kind == "conv_relu" else None)(x)
        return inputs, shared, _conv(2, 3, "reader")(shared)
    conv = _conv(3 if kind in ("activation", "maxpool", "avgpool", "dropout") else 2, 3, "conv")(x)
    if kind == "activation":
        shared = HActivation("relu", input_quantizer=Q, name="act")(conv)
    elif kind == "maxpool":
        shared = keras.layers.MaxPooling1D(2, name="pool")(conv)
    elif kind == "avgpool":
        shared = keras.layers.AveragePooling1D(2, name="pool")(conv)
    elif kind == "dropout":
        shared = keras.layers.Dropout(0.2, name="drop")(conv)
    elif kind in ("flatten", "flatten_activation"):
        shared = keras.layers.Flatten(name="flat")(conv)
        reader = HDense(2, input_quantizer=Q, name="reader") if kind == "flatten" else \
            HActivation("relu", input_quantizer=Q, name="reader")
        return inputs, shared, reader(shared)
    elif kind == "reshape":
        shared = keras.layers.Reshape((3, 4), name="reshape")(conv)
    elif kind == "add":
        shared = HAdd(name="sum")([conv, _conv(2, 3, "conv_b")(x)])
    else:
        raise ValueError(kind)
    return inputs, shared, _conv(2, 2, "reader")(shared)


def _exact(model, directory, io_type):
    hgq_chip.calibrate(model, np.random.default_rng(0).normal(size=(256, 8, 2)).astype(np.float32))
    hgq_chip.convert(model, directory, io_type=io_type, **QUIET)
    report = hgq_chip.verify(model, directory, random=500, seed=1, scale=4.0, strict=True, **QUIET)
    assert report.ok and report.n_values > 0, report.describe()


KINDS = ["flatten", "reshape", "conv", "activation", "maxpool"]
MORE_KINDS = ["flatten_activation", "quantize", "conv_relu", "avgpool", "add", "dropout"]


@pytest.mark.parametrize("io_type", ["io_stream", "io_parallel"])
@pytest.mark.parametrize("kind", KINDS + [pytest.param(k, marks=pytest.mark.slow) for k in MORE_KINDS])
def test_tensor_that_is_a_model_output_and_read_by_a_layer_is_exact(tmp_path, kind, io_type):
    inputs, shared, reader = _build(kind)
    _exact(keras.Model(inputs, [reader, shared]), tmp_path / "prj", io_type)


def test_streamed_reshape_read_by_two_layers_is_exact(tmp_path):
    """A Reshape to more than one axis is a Repack in io_stream even when it is no model output."""
    inputs, shared, reader = _build("reshape")
    other = _conv(2, 2, "reader_b")(shared)
    _exact(keras.Model(inputs, HAdd(name="total")([reader, other])), tmp_path / "prj", "io_stream")


def test_a_copy_of_a_type_convert_did_not_derive_is_caught_before_writing(tmp_path, monkeypatch):
    """Without the Repack's entry, hls4ml's copies of the stream get the default type: the check
    of every output variable's type refuses that project instead of writing inexact firmware."""
    from hgq_chip.conversion import stream

    monkeypatch.setattr(stream, "_type_reshape_repacks", lambda streams, records: None)
    inputs, shared, reader = _build("flatten")
    model = keras.Model(inputs, [reader, shared])
    hgq_chip.calibrate(model, np.random.default_rng(0).normal(size=(64, 8, 2)).astype(np.float32))
    with pytest.raises(HGQChipError, match=r"internal error: .*clone_repack_flat"):
        hgq_chip.convert(model, tmp_path / "prj", io_type="io_stream", **QUIET)
    assert not (tmp_path / "prj").exists()


def test_hls_config_names_the_repack_hls4ml_inserts_with_the_flattens_type(tmp_path):
    inputs, shared, reader = _build("flatten")
    model = keras.Model(inputs, [reader, shared])
    hgq_chip.calibrate(model, np.random.default_rng(0).normal(size=(64, 8, 2)).astype(np.float32))
    conversion = hgq_chip.convert(model, tmp_path / "prj", io_type="io_stream", **QUIET)
    layers = conversion.hls_config["LayerName"]
    assert layers["repack_flat"]["Precision"]["result"] == layers["flat"]["Precision"]["result"]
    clone = conversion.hls_model.graph["clone_repack_flat"]
    types = {str(clone.get_output_variable(out).type.precision) for out in clone.outputs}
    assert types == {str(conversion.hls_model.graph["flat" if "flat" in conversion.hls_model.graph
                                                     else "repack_flat"].get_output_variable().type.precision)}
