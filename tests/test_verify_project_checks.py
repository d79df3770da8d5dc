"""verify checks the project against the model, and the inputs against the model, before
it compiles anything: a project converted from another model is a ProjectError (never a
bogus mismatch or a crash), inputs of the wrong shape a DataError. A project without
hgq_chip_project.json falls back to the sizes in its hls4ml bridge file. A real project
whose firmware aborts leaves the calling process alive with SimulationCrashError.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

import hgq_chip
from hgq_chip.cli import main
from hgq_chip.conversion.manifest import MANIFEST_FILE
from hgq_chip.conversion.project_io import bridge_interface, check_project_matches_model
from hgq_chip.errors import DataError, ProjectError, SimulationCrashError
from mlp_models import MLPSpec, build_model, calibration_data

QUIET = {"log": lambda message: None}
# Two branches: the project has two inputs (4 and 3 values) and two outputs (5 and 2 values).
SPECS = [MLPSpec(n_in=4, widths=(5,), seed=1), MLPSpec(n_in=3, widths=(2,), seed=2)]
BIGGER = [MLPSpec(n_in=4, widths=(5,), seed=1), MLPSpec(n_in=6, widths=(2,), seed=2)]


def _model(specs):
    model = build_model(specs)
    hgq_chip.calibrate(model, calibration_data(specs, 64, 0))
    return model


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify_checks")
    model = _model(SPECS)
    hgq_chip.convert(model, root / "prj", **QUIET)
    return model, root / "prj"


def test_project_of_a_different_model_is_a_project_error_before_compiling(project):
    _, directory = project
    other = _model(BIGGER)
    with pytest.raises(ProjectError) as caught:
        hgq_chip.verify(other, directory, random=4, **QUIET)
    message = str(caught.value)
    assert "input 1" in message and "size 3" in message and "size 6" in message
    assert "not converted from this model" in message
    assert not list((directory / "firmware").glob("*.so")), "nothing compiled"
    one_branch = _model(SPECS[:1])
    with pytest.raises(ProjectError, match="the project has 2 inputs, the model 1"):
        hgq_chip.verify(one_branch, directory, random=4, **QUIET)


def test_project_without_manifest_falls_back_to_bridge_sizes(project, tmp_path):
    model, directory = project
    copy = tmp_path / "old_project"
    shutil.copytree(directory, copy)
    (copy / MANIFEST_FILE).unlink()
    interface = bridge_interface(copy, "myproject")
    assert [e["size"] for e in interface["inputs"]] == [4, 3]
    assert [e["size"] for e in interface["outputs"]] == [5, 2]
    check_project_matches_model(model, copy, "myproject")  # the right model: no bogus mismatch
    with pytest.raises(ProjectError, match="size 6"):
        hgq_chip.verify(_model(BIGGER), copy, random=4, **QUIET)


def test_inputs_of_the_wrong_shape_are_a_data_error_naming_the_expected_shape(project):
    model, directory = project
    x = [np.zeros((5, 4), np.float32), np.zeros((5, 3), np.float32)]
    with pytest.raises(DataError, match=r"expects \(n, 3\)"):
        hgq_chip.verify(model, directory, [x[0], np.zeros((5, 4), np.float32)], **QUIET)
    with pytest.raises(DataError, match="2 inputs"):
        hgq_chip.verify(model, directory, x[0], **QUIET)
    with pytest.raises(DataError, match="same number"):
        hgq_chip.verify(model, directory, [x[0], x[1][:2]], **QUIET)
    with pytest.raises(DataError, match="not numeric"):
        hgq_chip.verify(model, directory, [x[0], np.array([["a", "b", "c"]])], **QUIET)


@pytest.mark.slow
def test_real_project_whose_firmware_aborts_leaves_the_process_alive(project, tmp_path):
    """The converted project verifies exact; a copy whose top function calls abort() raises
    SimulationCrashError (SIGABRT) from hgq_chip.verify, and this process goes on."""
    model, directory = project
    assert hgq_chip.verify(model, directory, random=50, **QUIET).ok
    broken = tmp_path / "aborting"
    shutil.copytree(directory, broken)
    for library in (broken / "firmware").glob("*.so"):
        library.unlink()
    source = broken / "firmware" / "myproject.cpp"
    text = source.read_text()
    body = text.index("{", text.index("void myproject(")) + 1
    source.write_text("#include <cstdlib>\n" + text[:body] + "\n    std::abort();\n" + text[body:])
    pid = os.getpid()
    with pytest.raises(SimulationCrashError, match="SIGABRT") as caught:
        hgq_chip.verify(model, broken, random=5, **QUIET)
    assert "sample 0 (0-based) of 5" in str(caught.value)
    assert os.getpid() == pid
    model.save(tmp_path / "model.keras")
    code = main(["verify", str(tmp_path / "model.keras"), str(broken), "--random", "3", "--quiet"])
    assert code == SimulationCrashError.exit_code
    assert hgq_chip.verify(model, directory, random=20, **QUIET).ok
