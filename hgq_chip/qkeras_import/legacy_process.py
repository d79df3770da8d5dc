"""Running QKeras (Keras 2) beside hgq_chip (Keras 3): a child Python with TF_USE_LEGACY_KERAS=1.

The child is the same interpreter as this process (so the same virtual environment); it
runs ``legacy_reader.py`` as a script, which imports no hgq_chip code.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..errors import DataError, ModelFileError, ToolMissingError

READER = Path(__file__).with_name("legacy_reader.py")
INSTALL_HINT = "pip install 'hgq_chip[qkeras]' (qkeras, tf-keras matching your TensorFlow, pyparsing)"


def legacy_environment() -> dict:
    env = dict(os.environ)
    env["TF_USE_LEGACY_KERAS"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def run_legacy_python(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` in the legacy-Keras environment; output is captured as text."""
    return subprocess.run(
        [sys.executable, *args], env=legacy_environment(), capture_output=True, text=True, timeout=timeout
    )


@functools.lru_cache(maxsize=1)
def qkeras_problem() -> str | None:
    """None when QKeras imports in the legacy child, else the reason it does not."""
    # The version comes from the package metadata: QKeras' own module has no __version__ in every release.
    result = run_legacy_python(["-c", "import importlib.metadata, tf_keras, qkeras; "
                                      "print(importlib.metadata.version('qkeras'))"])
    if result.returncode == 0:
        return None
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {result.returncode}"


def require_qkeras() -> None:
    problem = qkeras_problem()
    if problem is not None:
        raise ToolMissingError(f"QKeras is not usable with TF_USE_LEGACY_KERAS=1 ({problem}); {INSTALL_HINT}")


def _run_reader(args: list[str], what: str) -> None:
    require_qkeras()
    result = run_legacy_python([str(READER), *args])
    if result.returncode != 0:
        # The child's last line is its exception; the traceback above it is only noise to a user.
        lines = [line.strip() for line in result.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else "no message"
        raise ModelFileError(
            f"QKeras could not {what} (exit status {result.returncode}: {reason}); "
            "pass a model saved by QKeras with model.save('name.h5')"
        )


def _check_model_file(path) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise ModelFileError(
            f"got a {type(path).__name__}, not a file path: QKeras needs Keras 2 and runs in a separate "
            "process, so save the QKeras model with model.save('name.h5') and pass that path"
        )
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"QKeras model file {path!r} not found; save the model with model.save('name.h5')")
    return os.path.abspath(path)


def describe_qkeras(path) -> tuple[dict, dict[str, np.ndarray]]:
    """(description, weights) of a saved QKeras model, read in the legacy child."""
    path = _check_model_file(path)
    with tempfile.TemporaryDirectory(prefix="hgq_chip_qkeras_") as scratch:
        _run_reader(["describe", path, scratch], f"read {path!r}")
        with open(os.path.join(scratch, "description.json")) as handle:
            description = json.load(handle)
        with np.load(os.path.join(scratch, "weights.npz")) as archive:
            weights = {name: archive[name] for name in archive.files}
    return description, weights


def qkeras_predict(path, x) -> np.ndarray:
    """The saved QKeras model's inference output on ``x`` (computed in the legacy child)."""
    path = _check_model_file(path)
    x = np.asarray(x)
    if x.ndim < 2:
        raise DataError(f"inputs must have a batch axis first, got shape {x.shape}")
    with tempfile.TemporaryDirectory(prefix="hgq_chip_qkeras_") as scratch:
        x_path, y_path = os.path.join(scratch, "x.npy"), os.path.join(scratch, "y.npy")
        np.save(x_path, x)
        _run_reader(["predict", path, x_path, y_path], f"run {path!r}")
        return np.load(y_path)
