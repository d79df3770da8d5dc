"""verify refuses a project converted from other weights of the same architecture.

A model retrained (or recalibrated) after its conversion has the project's inputs and
outputs, so verify used to compile and report "MISMATCH: 500 of 500 values differ", blaming
the firmware. convert now writes a fingerprint of the weights and quantizer state the
firmware is built from into hgq_chip_project.json; verify recomputes it and raises
ProjectError (exit 16, "convert again") before compiling. State the conversion does not read
(Dropout seeds, the EBOPs loss weight beta, AdaQAT's frozen flags) is left out, so predicting,
saving and reloading, or a beta schedule keep the fingerprint; projects without it (older
hgq_chip) are not checked.
"""

from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pytest

import hgq_chip
from hgq_chip.cli import main
from hgq_chip.conversion.fingerprint import FINGERPRINT_KEY, weights_fingerprint
from hgq_chip.conversion.manifest import MANIFEST_FILE
from hgq_chip.conversion.project_io import check_project_matches_model
from hgq_chip.cost import set_beta
from hgq_chip.errors import ProjectError
from hgq_chip.layers import ADense, HDense, HQuantize

QUIET = {"log": lambda message: None}


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,), name="x")
    x = HQuantize(name="q")(inputs)
    x = keras.layers.Dropout(0.25, name="drop")(x)
    x = HDense(5, activation="relu", name="hidden")(x)
    model = keras.Model(inputs, HDense(3, name="logits")(x))
    hgq_chip.calibrate(model, _data())
    return model


def _data(scale=1.0, n=128):
    return (np.random.default_rng(0).normal(size=(n, 6)) * scale).astype(np.float32)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("fingerprint")
    model = _model()
    model.save(root / "model.keras")
    hgq_chip.convert(model, root / "prj", **QUIET)
    return model, root


def _retrained(path):
    """The model of ``project`` built again, with one kernel changed as a training step would."""
    model = _model()
    kernel = model.get_layer("hidden").kernel
    kernel.assign(kernel.numpy() + 0.125)
    model.save(path)
    return model


def test_manifest_holds_the_fingerprint_of_the_converted_weights(project):
    model, root = project
    manifest = json.loads((root / "prj" / MANIFEST_FILE).read_text())
    assert manifest[FINGERPRINT_KEY] == weights_fingerprint(model)
    assert manifest[FINGERPRINT_KEY].startswith("sha256:") and len(manifest[FINGERPRINT_KEY]) == 7 + 64
    assert set(manifest["layer_weights_sha256"]) == {"q", "hidden", "logits"}


def test_retrained_kernel_is_a_project_error_from_the_cli_before_compiling(project, tmp_path, capsys):
    _, root = project
    _retrained(tmp_path / "retrained.keras")
    code = main(["verify", str(tmp_path / "retrained.keras"), str(root / "prj"), "--random", "500", "--quiet"])
    err = capsys.readouterr().err
    assert code == ProjectError.exit_code == 16
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hgq_chip: error: ") and "Traceback" not in err, err
    assert "converted from other weights" in err and "in layer 'hidden'" in err and "Convert this model again" in err
    assert "MISMATCH" not in err
    assert not list((root / "prj" / "firmware").glob("*.so")), "nothing compiled"


def test_recalibrated_ranges_are_a_project_error(project):
    _, root = project
    model = _model()
    hgq_chip.calibrate(model, _data(scale=8.0))
    with pytest.raises(ProjectError, match="recorded ranges differ") as caught:
        hgq_chip.verify(model, root / "prj", random=50, **QUIET)
    assert "in layers 'q', 'hidden', 'logits'" in str(caught.value)


def test_other_bit_widths_are_a_project_error(project):
    _, root = project
    model = _model()
    f = model.get_layer("logits").kq.f
    f.assign(f.numpy() + 1.0)
    with pytest.raises(ProjectError, match=r"in layer 'logits'\)?"):
        check_project_matches_model(model, root / "prj", "myproject")


def test_same_model_after_convert_and_reloaded_verifies_exact(project):
    """The model convert saw, in the same process and reloaded from .keras, passes the check and
    is bit-exact (the second verify reuses the compiled library)."""
    model, root = project
    model.predict(_data(), verbose=0)  # inference leaves the fingerprint alone
    report = hgq_chip.verify(model, root / "prj", random=300, scale=4.0, strict=True, **QUIET)
    assert report.ok and report.n_values == 900
    report = hgq_chip.verify(str(root / "model.keras"), root / "prj", random=300, scale=4.0, strict=True, **QUIET)
    assert report.ok


def test_project_without_the_fingerprint_is_not_checked(project, tmp_path):
    _, root = project
    old = tmp_path / "old"
    shutil.copytree(root / "prj", old)
    manifest = json.loads((old / MANIFEST_FILE).read_text())
    del manifest[FINGERPRINT_KEY], manifest["layer_weights_sha256"]
    (old / MANIFEST_FILE).write_text(json.dumps(manifest))
    check_project_matches_model(_retrained(tmp_path / "r.keras"), old, "myproject")  # no ProjectError


def test_fingerprint_ignores_state_the_conversion_does_not_read(tmp_path):
    model = _model()
    before = weights_fingerprint(model)
    model.predict(_data(), verbose=0)
    model(_data(n=8), training=False)
    model.get_layer("drop")(_data(n=8), training=True)  # advances the Dropout's seed state
    set_beta(model, 3e-5)  # the EBOPs loss weight, set by beta schedules during training
    assert weights_fingerprint(model) == before
    model.save(tmp_path / "m.keras")
    assert weights_fingerprint(keras.saving.load_model(tmp_path / "m.keras")) == before
    assert weights_fingerprint(_model()) == before  # built again: other automatic names, same weights
    assert weights_fingerprint(_model(seed=1)) != before


def test_fingerprint_ignores_adaqat_frozen_flags_but_not_bits():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, ADense(2, name="a")(HQuantize(name="q")(inputs)))
    hgq_chip.calibrate(model, np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32))
    before = weights_fingerprint(model)
    model.get_layer("a").kq.frozen.assign(1.0)
    assert weights_fingerprint(model) == before
    model.get_layer("a").kq.set_bits(5.0)
    assert weights_fingerprint(model) != before
