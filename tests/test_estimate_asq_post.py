"""The estimate of ASQ/POST layers (our own template): priced from their own operations."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import hgq_chip
from asq_post_models import randomize_adapters
from hgq_chip.estimation import estimate
from hgq_chip.conversion.facts import FACTS_FILE, facts_from_model, read_facts, write_facts
from hgq_chip.layers import ASQConv2D, ASQDense, HQuantize


def _model(input_kind="lsq", weight_kind="post", bits=4, conv=False, seed=0):
    keras.utils.set_random_seed(seed)
    shape = (6, 6, 2) if conv else (12,)
    inputs = keras.Input(shape)
    x = HQuantize({"granularity": "per-layer", "init_f": 4}, name="q")(inputs)
    iq = {"kind": input_kind, "bits": bits, "signed": True}
    kq = {"kind": weight_kind, "bits": 4}
    layer = ASQConv2D(4, 3, input_quantizer=iq, kernel_quantizer=kq, name="asq") if conv else \
        ASQDense(8, input_quantizer=iq, kernel_quantizer=kq, name="asq")
    model = keras.Model(inputs, layer(x))
    randomize_adapters(model, np.random.default_rng(seed))
    hgq_chip.calibrate(model, np.random.default_rng(seed).normal(0, 1, (128, *shape)).astype(np.float32))
    return model


def _lut(model) -> int:
    return next(layer.lut for layer in estimate(model).layers if layer.layer == "asq")


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("input_kind, weight_kind", [("lsq", "post"), ("lsq", "pot"), ("lsq", "lsq"), ("asq", "post")])
def test_asq_post_layers_have_a_positive_estimate_that_grows_with_code_bits(conv, input_kind, weight_kind):
    narrow = _lut(_model(input_kind, weight_kind, bits=3, conv=conv))
    wide = _lut(_model(input_kind, weight_kind, bits=6, conv=conv))
    assert 0 < narrow < wide


def test_pruned_weights_never_raise_the_estimate():
    model = _model()
    before = _lut(model)
    layer = model.get_layer("asq")
    kernel = layer.kernel.numpy()
    kernel[: kernel.shape[0] // 2] = 0.0
    layer.kernel.assign(kernel)
    assert _lut(model) < before


def test_asq_costs_its_adapter_table_and_rescale_on_top_of_lsq():
    lsq, asq = _model("lsq", "post"), _model("asq", "post")
    lsq_layer, asq_layer = lsq.get_layer("asq"), asq.get_layer("asq")
    asq_layer.kernel.assign(lsq_layer.kernel.numpy())
    asq_layer.kq.alpha.assign(lsq_layer.kq.alpha.numpy())
    asq_ops = {op.kind for op in facts_from_model(asq)[1].ops}
    assert {"table", "product"} <= asq_ops and "product" not in {op.kind for op in facts_from_model(lsq)[1].ops}
    assert _lut(asq) > _lut(lsq)


def test_asq_post_estimate_is_the_same_for_every_strategy_and_from_a_project(tmp_path):
    model = _model("asq", "post", conv=True)
    from hgq_chip.conversion.graph import graph_nodes
    from hgq_chip.conversion.inputs import all_input_formats
    from hgq_chip.conversion.precision import derive

    nodes = graph_nodes(model)
    write_facts(tmp_path / FACTS_FILE, derive(nodes), all_input_formats(model, nodes))
    assert len(read_facts(tmp_path / FACTS_FILE)[1].ops) == len(facts_from_model(model)[1].ops)
    latency = estimate(model).to_dict()
    assert estimate(tmp_path).to_dict() == latency
    # Our template fixes the arithmetic: hls4ml's strategy choice does not change it.
    da = estimate(model, strategy="distributed_arithmetic").to_dict()
    assert da["layers"][1] == latency["layers"][1]
