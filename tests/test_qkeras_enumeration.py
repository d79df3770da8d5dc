"""from_qkeras over every QKeras layer class and every Keras 2 layer class a QKeras model may hold.

One Keras 2 child process (tests/qkeras_layer_table.py ``ENUMERATE``) lists the classes, builds
a small QKeras model per QKeras class and a graph of every weightless layer and merge the importer
handles, and writes their descriptions and QKeras' outputs on grid inputs. Here each model is
imported: an imported class must equal QKeras bit for bit (``np.array_equal``), a refused one must
raise UnsupportedLayerError naming the layer and the way forward. Every Keras 2 class either
imports or has a refusal hint. Counts go to pytest's terminal summary.

Needs the `qkeras` extra; skipped with the reason otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import hgq_chip
from hgq_chip.errors import UnsupportedLayerError
from hgq_chip.qkeras_import import model_from_description, qkeras_problem, run_legacy_python
from hgq_chip.qkeras_import.import_hints import import_hint
from hgq_chip.qkeras_import.plan import SUPPORTED
from qkeras_layer_table import (
    ENUMERATE, KERAS_NOT_A_LAYER, QKERAS_CELLS, QKERAS_IMPORTED, QKERAS_NOT_BUILDABLE, QKERAS_REFUSED,
)

# One Keras 2 child process builds, saves, describes and runs about 20 QKeras models (~2.5 min).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def enumerated(tmp_path_factory):
    problem = qkeras_problem()
    if problem is not None:
        pytest.skip(f"QKeras does not import with TF_USE_LEGACY_KERAS=1: {problem} (pip install '.[qkeras]')")
    import hgq_chip.qkeras_import.legacy_reader as reader

    root = tmp_path_factory.mktemp("qkeras_enum")
    result = run_legacy_python(["-c", ENUMERATE, str(root), reader.__file__])
    assert result.returncode == 0, result.stderr[-3000:]
    return root, json.loads((root / "index.json").read_text())


def _load(root: Path, name: str):
    folder = root / name
    description = json.loads((folder / "description.json").read_text())
    with np.load(folder / "weights.npz") as weights:
        return description, dict(weights), np.load(folder / "x.npy"), np.load(folder / "y.npy")


def test_every_qkeras_class_is_imported_or_refused_with_its_way_forward(enumerated, summary_lines):
    root, index = enumerated
    classes = set(index["qkeras_classes"])
    tabled = set(QKERAS_IMPORTED) | set(QKERAS_REFUSED) | set(QKERAS_CELLS) | set(QKERAS_NOT_BUILDABLE)
    assert classes == tabled, f"untabled: {classes - tabled}, stale: {tabled - classes}"
    assert set(index["built"]) == set(QKERAS_IMPORTED) | set(QKERAS_REFUSED)
    assert set(index["unbuildable"]) == set(QKERAS_NOT_BUILDABLE)
    for name, words in QKERAS_NOT_BUILDABLE.items():
        assert all(word in index["unbuildable"][name] for word in words), index["unbuildable"][name]
        assert import_hint(name), name
    for name in QKERAS_IMPORTED:
        description, weights, x, y = _load(root, name)
        model = model_from_description(description, weights, log=lambda m: None)
        assert np.array_equal(np.asarray(model(x, training=False)), y), name
    for name, words in QKERAS_REFUSED.items():
        description, weights, _, _ = _load(root, name)
        with pytest.raises(UnsupportedLayerError) as caught:
            model_from_description(description, weights, log=lambda m: None)
        for word in words:
            assert word in str(caught.value), (name, str(caught.value))
    for cell in QKERAS_CELLS:  # inside an RNN: the RNN is refused with the recurrent hint
        assert "no exact recurrent layer yet" in import_hint("RNN"), cell
    summary_lines.append(
        f"QKeras enumeration: {len(classes)} layer classes: {len(QKERAS_IMPORTED)} imported bit-exact, "
        f"{len(QKERAS_REFUSED)} refused with a remedy, {len(QKERAS_CELLS)} recurrent cells (refused inside RNN), "
        f"{len(QKERAS_NOT_BUILDABLE)} that QKeras cannot call here")


def test_every_keras2_class_is_imported_or_has_a_hint(enumerated, summary_lines):
    _, index = enumerated
    names = index["keras_classes"]
    imported = [n for n in names if n in SUPPORTED]
    hinted = [n for n in names if n not in SUPPORTED and n not in KERAS_NOT_A_LAYER and import_hint(n)]
    missing = [n for n in names if n not in SUPPORTED and n not in KERAS_NOT_A_LAYER and not import_hint(n)]
    assert not missing, f"Keras 2 layers refused by from_qkeras without a way forward: {missing}"
    summary_lines.append(
        f"from_qkeras over tf.keras.layers: {len(names)} names: {len(imported)} imported, {len(hinted)} refused "
        f"with a remedy, {len(set(names) & set(KERAS_NOT_A_LAYER))} not layers of a model")


def test_movement_graph_equals_qkeras_on_its_input_grid(enumerated, tmp_path):
    root, _ = enumerated
    description, weights, x, y = _load(root, "movement_graph")
    model = model_from_description(description, weights, log=lambda m: None)
    assert np.array_equal(np.asarray(model(x, training=False)), y)
    assert len(np.unique(y)) > 100  # not a comparison of constant outputs
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {"Subtract", "Maximum", "Minimum", "Permute", "Cropping2D", "ZeroPadding2D", "UpSampling2D",
            "Cropping1D", "ZeroPadding1D", "UpSampling1D", "GaussianNoise", "RandomFlip"} <= kinds, kinds


@pytest.mark.slow
def test_imported_movement_graph_firmware_is_bit_exact(enumerated, tmp_path):
    root, _ = enumerated
    description, weights, x, _ = _load(root, "movement_graph")
    model = model_from_description(description, weights, log=lambda m: None)
    hgq_chip.convert(model, tmp_path / "prj", log=lambda m: None)
    report = hgq_chip.verify(model, tmp_path / "prj", x[:600], log=lambda m: None)
    assert report.ok, report.describe()
