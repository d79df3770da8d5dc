"""The fuzzer's property for one spec: ``convert`` is exact or refuses with a typed error.

``check_spec`` builds and calibrates the spec's model, converts it, and on success compares
the C simulation with Keras on the calibration inputs and on ``random_inputs(scale=4)``
(far outside the calibrated range), through ``hgq_chip``'s own ``verify``: its C simulation
runs in a child process, so an abort or segfault in the firmware becomes an outcome
(SimulationCrashError), not the end of the fuzzer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RANDOM_SAMPLES = 64
RANDOM_SCALE = 4.0

# Outcome kinds that satisfy the property.
GOOD_KINDS = ("exact", "refused", "rejected-by-layer", "backend-unavailable")


@dataclass
class Outcome:
    """What happened to one spec: ``kind`` is one of GOOD_KINDS or a failure kind."""

    kind: str
    detail: str = ""
    error_type: str = ""
    arrays: dict = field(default_factory=dict, repr=False)  # name -> inputs, kept for failure reports

    @property
    def ok(self) -> bool:
        return self.kind in GOOD_KINDS

    def describe(self) -> str:
        return f"{self.kind}{f' ({self.error_type})' if self.error_type else ''}: {self.detail}"


def _raised_in(error: BaseException, module: str) -> bool:
    """Whether ``error`` was raised by code of ``module``."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_globals.get("__name__") == module


def _convert(model, spec, project_dir: Path) -> Outcome | None:
    """None when convert wrote the project; otherwise the refusal or failure.

    A refusal of a name (by ``hgq_chip.conversion.names``) is a failure unless the spec drew
    a bad name: the grammar's names (``quant1``, ``conv2``, ..., input ``x``) are all valid.
    """
    from ..api import convert
    from ..errors import HGQChipError
    from .model_fuzz import spec_kinds

    try:
        convert(model, project_dir, log=lambda *_: None, **spec["convert"])
    except HGQChipError as error:
        name = type(error).__name__
        if project_dir.exists():
            return Outcome("output-left-behind", str(error)[:2000], name)
        if type(error) is HGQChipError:
            return Outcome("untyped-error", str(error)[:2000], name)
        bad_names = {"non_identifier_name", "bad_build_option"} & set(spec_kinds(spec))
        if _raised_in(error, "hgq_chip.conversion.names") and not bad_names:
            return Outcome("valid-name-refused", str(error)[:2000], name)
        return Outcome("refused", str(error)[:500], name)
    except Exception as error:  # noqa: BLE001  (any other type is the failure being looked for)
        return Outcome("convert-crash", traceback.format_exc()[-3000:], type(error).__name__)
    return None


def _verify(model, spec, project_dir: Path, x_calibration) -> Outcome:
    """``hgq_chip``'s own ``verify`` of the project on each input set (its C simulation runs in
    a child process, so an abort or segfault in the firmware comes back as SimulationCrashError)."""
    from ..api import random_inputs
    from ..conversion.verification import verify
    from ..errors import CompileError, HGQChipError, SimulationCrashError

    x_random = random_inputs(model, RANDOM_SAMPLES, seed=spec["seed"], scale=RANDOM_SCALE)[0]
    sets = {"calibration": x_calibration, "random_x4": x_random}
    arrays = {f"inputs_{k}": v for k, v in sets.items()}
    project_name = spec["convert"].get("project_name", "myproject")
    results = {}
    for name, x in sets.items():
        try:
            results[name] = verify(model, project_dir, x, project_name=project_name, log=lambda *_: None)
        except (SimulationCrashError, CompileError) as error:
            kind = "csim-crash" if isinstance(error, SimulationCrashError) else "compile-failure"
            return Outcome(kind, f"{name}: {error}"[-3000:], type(error).__name__, arrays=arrays)
        except HGQChipError as error:
            return Outcome("verify-error", f"{name}: {error}"[-3000:], type(error).__name__, arrays=arrays)
        except Exception as error:  # noqa: BLE001
            return Outcome("verify-crash", traceback.format_exc()[-3000:], type(error).__name__, arrays=arrays)
    bad = [f"{name}: {r.describe()}" for name, r in results.items() if not r.ok]
    if bad:
        return Outcome("mismatch", "\n".join(bad), arrays=arrays)
    return Outcome("exact", "; ".join(f"{k}: {r.describe()}" for k, r in results.items()), arrays=arrays)


def check_spec(spec: dict, workdir) -> Outcome:
    """Build, calibrate, convert and verify one spec inside ``workdir`` (created if missing),
    under the spec's Keras backend (``spec["keras_backend"]``; a backend other than this
    process' runs the check in a child process, :func:`check_spec_in_backend`).

    Never raises for the converter's behaviour: failures come back as an Outcome whose
    ``ok`` is False. The model is returned in ``outcome.arrays["model"]`` for reports (not for
    a check in another backend: its spec rebuilds it).
    """
    import keras

    from ..errors import HGQChipError
    from .fuzz_build import build_model

    backend = spec.get("keras_backend")
    if backend and backend != keras.backend.backend():
        return check_spec_in_backend(spec, workdir, backend)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        model, x = build_model(spec)
    except (ValueError, HGQChipError) as error:
        # The layer API refused the options (e.g. a kernel larger than its input): not convert's business.
        return Outcome("rejected-by-layer", str(error)[:500], type(error).__name__)
    except Exception as error:  # noqa: BLE001
        return Outcome("build-crash", traceback.format_exc()[-3000:], type(error).__name__)
    project_dir = workdir / "project"
    outcome = _convert(model, spec, project_dir)
    if outcome is None:
        outcome = _verify(model, spec, project_dir, x)
    outcome.arrays.setdefault("inputs_calibration", x)
    outcome.arrays["model"] = model
    return outcome


def save_failure(spec: dict, outcome: Outcome, folder, kinds=()) -> Path:
    """Write a failing example: model.keras, inputs_*.npy, spec.json and report.txt (which names ``kinds``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.json").write_text(json.dumps(spec, indent=1))
    notes = []
    for name, value in outcome.arrays.items():
        if name == "model":
            try:
                value.save(folder / "model.keras")
            except Exception as error:  # noqa: BLE001  (the report still holds the spec to rebuild it)
                notes.append(f"model.save failed: {type(error).__name__}: {error}")
        else:
            np.save(folder / f"{name}.npy", value)
    (folder / "report.txt").write_text(
        f"failure: {outcome.describe()}\n"
        f"spec kinds: {', '.join(kinds) or 'none'}\n"
        f"conversion options: {json.dumps(spec['convert'])}\n"
        f"rebuild: hgq_chip.testing.fuzz_build.build_model(json.load(open('spec.json')))\n"
        + "".join(f"{n}\n" for n in notes)
    )
    return folder


# The child's last stdout line: the outcome as JSON.
_CHILD = """
import json, sys
from hgq_chip.testing.fuzz_check import check_spec
outcome = check_spec(json.loads(sys.argv[1]), sys.argv[2])
print(json.dumps({"kind": outcome.kind, "detail": outcome.detail, "error_type": outcome.error_type}))
"""
CHILD_TIMEOUT_S = 900


def check_spec_in_backend(spec: dict, workdir, backend: str) -> Outcome:
    """``check_spec`` in a child Python with ``KERAS_BACKEND=backend`` (Keras reads it once, at
    import). A backend that is not installed is not a fault of the converter: the outcome is
    ``backend-unavailable`` (good, counted by the fuzzer's statistics). A child that dies or prints
    no outcome is a ``backend-child-crash``.
    """
    import importlib.util

    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    if importlib.util.find_spec(module) is None:
        return Outcome("backend-unavailable", f"{backend} is not installed; the spec was not run")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        result = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(spec), str(workdir)], env=env, check=False,
                                capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return Outcome("backend-child-timeout", f"{backend}: no outcome in {CHILD_TIMEOUT_S} s")
    lines = result.stdout.strip().splitlines()
    try:
        found = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return Outcome("backend-child-crash", f"{backend}: exit {result.returncode}: {result.stderr[-3000:]}")
    return Outcome(found["kind"], f"[{backend}] {found['detail']}", found["error_type"])
