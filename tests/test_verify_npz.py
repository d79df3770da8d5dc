"""`hgq_chip verify --data X.npz` on a two-input model: arrays map to inputs by name, whatever their order
in the file, and the C simulation matches Keras bit for bit (one g++ compilation)."""

from __future__ import annotations

import numpy as np

import hgq_chip
from hgq_chip.cli import main
from mlp_models import MLPSpec, saved_model

SPECS = [MLPSpec(n_in=3, widths=(2,), seed=7), MLPSpec(n_in=5, widths=(2,), granularity="per-layer", seed=8)]


def test_two_input_model_verifies_from_an_npz_keyed_by_input_name(tmp_path, capsys):
    model, data = saved_model(tmp_path / "model.keras", SPECS)
    hgq_chip.convert(model, tmp_path / "prj", backend="Vitis", log=lambda m: None)
    rng = np.random.default_rng(1)
    x = {"in1": rng.normal(0, 3, (40, 5)).astype("float32"), "in0": rng.normal(0, 3, (40, 3)).astype("float32")}
    np.savez(tmp_path / "x.npz", **x)
    code = main(["verify", str(tmp_path / "model.keras"), str(tmp_path / "prj"), "--data", str(tmp_path / "x.npz"),
                 "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "mismatches: 0 of 160 values (40 samples)" in out  # 2 outputs x 2 values x 40 samples
