"""hgq_chip.hdl.pipeline: da4ml's pipelined Verilog with exactly the stage count asked (no Verilator)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

pytest.importorskip("da4ml", reason="the RTL output needs da4ml (pip install 'hgq_chip[rtl]')")

import hgq_chip
from hgq_chip.errors import UnsupportedConfigurationError
from hgq_chip.hdl.pipeline import (
    NS_PER_LATENCY_UNIT,
    logic_depth,
    max_stages,
    pipelined_verilog,
    stages_for_clock,
)
from hgq_chip.layers import HDense, HQuantize


@pytest.fixture(scope="module")
def comb():
    from hgq_chip.estimation.rtl import trace_model

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, HDense(2)(HDense(3, activation="relu")(HQuantize()(inputs))))
    hgq_chip.calibrate(model, np.random.default_rng(0).normal(0, 1, (64, 4)).astype("float32"))
    return trace_model(model, "latency")[2]


def test_every_stage_count_from_one_to_the_maximum_is_exact(comb, tmp_path):
    top = max_stages(comb)
    assert top >= 3 and top == int(logic_depth(comb))  # one adder level per stage at the most
    for stages in range(1, top + 1):
        info = pipelined_verilog(comb, tmp_path / str(stages), "model", stages=stages)
        assert (info.stages, info.latency_cycles, info.max_stages) == (stages, stages, top)
        written = sorted(p.name for p in (tmp_path / str(stages) / "src").glob("model_stage*.v"))
        assert written == [f"model_stage{i}.v" for i in range(stages)]
        assert json.loads((tmp_path / str(stages) / "metadata.json").read_text())["latency"] == stages
        assert "src/model.v" in info.sources and "src/model.xdc" in info.sources
    assert info.register_bits > 0 and info.cutoff == pytest.approx(1.0)


@pytest.mark.parametrize("stages", [0, -1, "max+1"])
def test_an_impossible_stage_count_is_refused_with_the_range_and_writes_nothing(comb, tmp_path, stages):
    top = max_stages(comb)
    stages = top + 1 if stages == "max+1" else stages
    with pytest.raises(UnsupportedConfigurationError, match=f"1 to {top} stages"):
        pipelined_verilog(comb, tmp_path / "out", "model", stages=stages)
    assert not (tmp_path / "out").exists()


def test_the_clock_period_picks_the_stages_and_goes_into_the_constraints(comb, tmp_path):
    depth = logic_depth(comb)
    # A period holding the whole depth: one stage; one holding a single level: the maximum.
    assert stages_for_clock(comb, depth * NS_PER_LATENCY_UNIT / 0.875 + 0.01) == 1
    assert stages_for_clock(comb, 1.0 * NS_PER_LATENCY_UNIT / 0.875 + 0.01) == max_stages(comb)
    info = pipelined_verilog(comb, tmp_path, "model", clock_period_ns=3.3)
    assert info.stages == stages_for_clock(comb, 3.3) and info.clock_period_ns == 3.3
    assert "set clock_period 3.3\n" in (tmp_path / "src" / "model.xdc").read_text()
    with pytest.raises(UnsupportedConfigurationError, match="--clock-period"):
        stages_for_clock(comb, 0.1)
    with pytest.raises(UnsupportedConfigurationError, match="positive"):
        pipelined_verilog(comb, tmp_path / "x", "model", stages=2, clock_period_ns=-1.0)


def test_the_constraints_name_the_top_modules_ports(comb, tmp_path):
    pipelined_verilog(comb, tmp_path, "net", stages=2)
    for suffix in ("xdc", "sdc"):
        text = (tmp_path / "src" / f"net.{suffix}").read_text()
        assert "net_inp[*]" in text and "net_out[*]" in text and "model_inp" not in text
    assert "module net (" in (tmp_path / "src" / "net.v").read_text()
