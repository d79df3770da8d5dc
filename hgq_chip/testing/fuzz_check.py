"""The fuzzer's property for one spec: ``convert`` is exact or refuses with a typed error.

``check_spec`` builds and calibrates the spec's model, converts it, and on success compares
the C simulation with Keras on the calibration inputs and on ``random_inputs(scale=4)``
(far outside the calibrated range). The C simulation runs in a child process
(``python -m hgq_chip.testing.fuzz_csim_child``) through ``hgq_chip``'s own comparison
(``verification.compare_with_csim``, what ``verify`` runs after its checks), with the Keras
outputs computed here, so an abort or segfault in firmware becomes an outcome,
not the end of the fuzzer.
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
CSIM_TIMEOUT_SECONDS = 900

# Outcome kinds that satisfy the property.
GOOD_KINDS = ("exact", "refused", "rejected-by-layer")


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


def _convert(model, spec, project_dir: Path) -> Outcome | None:
    """None when convert wrote the project; otherwise the refusal or failure."""
    from ..api import convert
    from ..errors import HGQChipError

    try:
        convert(model, project_dir, log=lambda *_: None, **spec["convert"])
    except HGQChipError as error:
        name = type(error).__name__
        if project_dir.exists():
            return Outcome("output-left-behind", str(error)[:2000], name)
        if type(error) is HGQChipError:
            return Outcome("untyped-error", str(error)[:2000], name)
        return Outcome("refused", str(error)[:500], name)
    except Exception as error:  # noqa: BLE001  (any other type is the failure being looked for)
        return Outcome("convert-crash", traceback.format_exc()[-3000:], type(error).__name__)
    return None


def _keras_outputs(model, x: np.ndarray) -> list[np.ndarray]:
    out = model.predict(x, verbose=0, batch_size=1024)
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def run_csim_isolated(project_dir: Path, project_name: str, input_sets: dict, keras_outputs: dict,
                      scratch: Path) -> dict:
    """``hgq_chip`` verification of each input set in a child process.

    Returns {set name: {"ok", "describe"}} or {"error": (type, message)} or
    {"crash": (returncode, stderr tail)}.
    """
    arrays = {}
    for name, x in input_sets.items():
        arrays[f"in__{name}"] = x
        for i, o in enumerate(keras_outputs[name]):
            arrays[f"out__{name}__{i}"] = o
    io_file, result_file = scratch / "csim_io.npz", scratch / "csim_result.json"
    np.savez(io_file, **arrays)
    result_file.unlink(missing_ok=True)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "hgq_chip.testing.fuzz_csim_child", str(project_dir), project_name, str(io_file),
         str(result_file)],
        capture_output=True, text=True, env=env, timeout=CSIM_TIMEOUT_SECONDS,
    )
    if done.returncode != 0 or not result_file.exists():
        return {"crash": (done.returncode, (done.stderr or "")[-3000:])}
    return json.loads(result_file.read_text())


def _verify(model, spec, project_dir: Path, x_calibration, scratch: Path) -> Outcome:
    from ..api import random_inputs

    x_random = random_inputs(model, RANDOM_SAMPLES, seed=spec["seed"], scale=RANDOM_SCALE)[0]
    sets = {"calibration": x_calibration, "random_x4": x_random}
    arrays = {f"inputs_{k}": v for k, v in sets.items()}
    outputs = {name: _keras_outputs(model, x) for name, x in sets.items()}
    project_name = spec["convert"].get("project_name", "myproject")
    result = run_csim_isolated(project_dir, project_name, sets, outputs, scratch)
    if "crash" in result:
        code, stderr = result["crash"]
        kind = "csim-crash" if code < 0 else "verify-error"  # negative: killed by a signal (abort, segfault)
        return Outcome(kind, f"child exit code {code}\n{stderr}", arrays=arrays)
    if "error" in result:
        kind, message = result["error"]
        failure = "compile-failure" if "compil" in message.lower() else "verify-error"
        return Outcome(failure, message[-3000:], kind, arrays=arrays)
    bad = [f"{name}: {r['describe']}" for name, r in result.items() if not r["ok"]]
    if bad:
        return Outcome("mismatch", "\n".join(bad), arrays=arrays)
    return Outcome("exact", "; ".join(f"{k}: {r['describe']}" for k, r in result.items()), arrays=arrays)


def check_spec(spec: dict, workdir) -> Outcome:
    """Build, calibrate, convert and verify one spec inside ``workdir`` (created if missing).

    Never raises for the converter's behaviour: failures come back as an Outcome whose
    ``ok`` is False. The model is returned in ``outcome.arrays["model"]`` for reports.
    """
    from ..errors import HGQChipError
    from .fuzz_build import build_model

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
        outcome = _verify(model, spec, project_dir, x, workdir)
    outcome.arrays.setdefault("inputs_calibration", x)
    outcome.arrays["model"] = model
    return outcome


def save_failure(spec: dict, outcome: Outcome, folder, open_kinds=()) -> Path:
    """Write a failing example: model.keras, inputs_*.npy, spec.json and report.txt."""
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
        f"known open kinds: {', '.join(open_kinds) or 'none'}\n"
        f"conversion options: {json.dumps(spec['convert'])}\n"
        f"rebuild: hgq_chip.testing.fuzz_build.build_model(json.load(open('spec.json')))\n"
        + "".join(f"{n}\n" for n in notes)
    )
    return folder
