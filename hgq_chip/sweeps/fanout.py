"""The firmware fan-out: every front member converted, verified, estimated (and synthesized) as a Ray task.

Per member (``process_member``, one Ray task of one CPU): load the checkpoint, calibrate its
ranges on the training set, measure exact EBOPs and test accuracy, convert to an hls4ml
project in ``OUT/members/<trial>-e<epoch>/project``, verify the C simulation bit for bit on
``fanout.random`` samples drawn over the calibrated range widened ``fanout.scale`` times (4x
by default: out-of-range inputs) and on the test set, estimate LUT/DSP/latency and, with
``synth="yosys"``, synthesize the RTL with yosys (``hgq_chip.synth``). Any failure is
recorded in the member's row (``status: failed``, ``error``), never raised: one bad member
does not stop the others.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path

from .trial import load_data

MEMBERS_DIR = "members"


def member_dir(out, row: dict) -> Path:
    return Path(out) / MEMBERS_DIR / f"{row['trial']}-e{row['epoch']:04d}"


def _check(report) -> dict:
    return {"samples": report.n_samples, "values": report.n_values, "mismatches": report.n_mismatches}


def process_member(row: dict, data_spec: dict, out: str, fanout: dict, synth: str | None = None) -> dict:
    """The fan-out fields of one front member (see the module doc); never raises an hgq_chip error."""
    import numpy as np

    from .. import api, calibrate, ebops, estimate

    result: dict = {"status": "failed", "error": None}
    quiet = {"log": lambda message: None}
    start = time.perf_counter()
    stage = "load"
    try:
        data = load_data(data_spec)
        model = api.load_model(row["path"])
        stage = "calibrate"
        calibrate(model, data["train"][0])
        result["ebops_firmware"] = int(ebops(model))
        x_test, y_test = data["test"]
        logits = model.predict(x_test, batch_size=1024, verbose=0)
        result["test_accuracy"] = float(np.mean(np.argmax(logits, axis=1) == y_test))
        stage = "estimate"
        cost = estimate(model, strategy=fanout["strategy"], clock_period=fanout["clock_period"])
        total = cost.to_dict()["total"]
        result.update(lut=int(total["lut"]), dsp=int(total["dsp"]), latency_cycles=int(total["latency_cycles"]),
                      latency_ns=float(total["latency_ns"]))
        stage = "convert"
        project = member_dir(out, row) / "project"
        api.convert(model, project, backend=fanout["backend"], strategy=fanout["strategy"],
                    clock_period=fanout["clock_period"], force=True, **quiet)
        result["project"] = str(project)
        stage = "verify"
        random_check = api.verify(model, project, random=int(fanout["random"]), scale=float(fanout["scale"]), **quiet)
        test_check = api.verify(model, project, x_test, **quiet)
        result["verify"] = {f"random {fanout['scale']:g}x": _check(random_check), "test": _check(test_check)}
        if not (random_check.ok and test_check.ok):
            raise RuntimeError(f"C simulation differs from Keras: random {random_check.describe()}; "
                               f"test {test_check.describe()}")
        if synth:
            stage = "synth"
            from .. import synth as run_synth

            result["synth"] = run_synth(model, strategy=fanout["strategy"], tool=synth).to_dict()
        result["status"] = "ok"
    except Exception as error:  # noqa: BLE001  (recorded, not raised: the sweep goes on with the other members)
        result["error"] = f"{stage}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        result["traceback"] = traceback.format_exc(limit=5)
    result["fanout_seconds"] = round(time.perf_counter() - start, 2)
    return result
