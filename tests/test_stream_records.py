"""``stream.prepare_stream`` returns new records and leaves the derived ones as they were.

io_stream moves a Dense's input cast onto the producer ahead of a Flatten, types the in-place
Flatten with its input's type and reads a flattened stream through a Repack: the returned records
carry those changes, the records of ``precision.derive`` keep theirs (one source of types,
before and after the plan).
"""

from __future__ import annotations

import keras
import numpy as np

import hgq_chip
from hgq_chip.conversion.graph import graph_nodes
from hgq_chip.conversion.precision import derive
from hgq_chip.conversion.stream import prepare_stream
from hgq_chip.layers import HActivation, HConv1D, HDense, HQuantize

Q = {"granularity": "per-layer"}


def _stages(records) -> list:
    return [[(stage.name, {key: fmt.to_hls() for key, fmt in stage.types.items()}) for stage in record.hls_layers]
            for record in records]


def test_prepare_stream_returns_new_records_and_changes_none_of_derive():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 2), name="x")
    x = HQuantize(Q, name="q0")(inputs)
    conv = HConv1D(3, 3, input_quantizer=Q, name="conv")(x)
    flat = keras.layers.Flatten(name="flat")(conv)
    dense = HDense(2, input_quantizer=Q, name="dense")(flat)
    act = HActivation("relu", input_quantizer=Q, name="act")(keras.layers.Flatten(name="flat2")(
        HConv1D(2, 3, input_quantizer=Q, name="conv2")(x)))
    model = keras.Model(inputs, [dense, act])
    hgq_chip.calibrate(model, np.random.default_rng(0).normal(0, 1, (64, 6, 2)).astype(np.float32))
    nodes = graph_nodes(model)
    records = derive(nodes)
    before = _stages(records)
    plan, streamed = prepare_stream(model, nodes, records)
    assert _stages(records) == before
    assert streamed is not records and len(streamed) == len(records)
    by_name = {r.layer_name: r for r in streamed}
    derived = {r.layer_name: r for r in records}
    # The Dense's cast moved onto the convolution (and its in-place Flatten): new records for both.
    dense_cast = derived["dense"].hls_layers[0].types["result"]
    for name in ("conv", "flat"):
        assert by_name[name] is not derived[name]
        assert by_name[name].hls_layers[-1].types["result"] == dense_cast
    assert derived["conv"].hls_layers[-1].types["result"] != dense_cast
    # The relu reads the second flattened stream through a Repack stage.
    assert plan["repacks"] == {"act": 8}  # 4 positions x 2 channels
    assert by_name["act"].hls_layers[0].name == "act_repack" and derived["act"].hls_layers[0].name != "act_repack"
    # Untouched records are shared, not copied.
    assert by_name["q0"] is derived["q0"]
