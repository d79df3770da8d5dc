"""The firmware fan-out: every front member converted, verified, estimated (and synthesized) as a Ray task.

Per member (``process_member``, one Ray task of one CPU): load the checkpoint, calibrate its
ranges on the training set, measure exact EBOPs and test accuracy, convert to an hls4ml
project in ``OUT/members/<trial>-e<epoch>/project``, verify the C simulation bit for bit on
``fanout.random`` samples drawn over the calibrated range widened ``fanout.scale`` times (4x
by default: out-of-range inputs) and on the test set, estimate LUT/DSP/latency and, with
``synth="yosys"`` or ``fanout.synth``/``fanout.pnr``, synthesize the pipelined RTL with yosys
(``hgq_chip.synth``: Xilinx cell counts; ``pnr: ecp5`` adds nextpnr's Lattice ECP5 Fmax and
latency in ns). With ``fanout.rtl`` also write the pipelined Verilog project
``OUT/members/<trial>-e<epoch>/rtl`` (``hgq_chip.rtl``) and verify it in Verilator on the same
random and test samples (row ``rtl``: stages, latency, verify counts; synthesis then runs at its
stage count and is saved in ``rtl/results/synth.json``). The ``lut`` / ``latency_ns`` objective
values of the member and where they came from go to ``objective_values`` (``objectives.py``).
Any failure is recorded in the member's row (``status: failed``, ``error``), never raised: one
bad member does not stop the others.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path

from .objectives import objective_values, rtl_options, run_synth
from .trial import load_data

MEMBERS_DIR = "members"


def member_dir(out, row: dict) -> Path:
    return Path(out) / MEMBERS_DIR / f"{row['trial']}-e{row['epoch']:04d}"


def _check(report) -> dict:
    return {"samples": report.n_samples, "values": report.n_values, "mismatches": report.n_mismatches}


def _rtl(model, folder: Path, fanout: dict, x_test, quiet: dict) -> dict:
    """Write and verify the member's RTL project; its row entry. RuntimeError when Verilator differs from Keras."""
    from .. import api

    options = rtl_options(fanout)
    project = api.rtl(model, folder, stages=options["stages"], clock_period=options["clock_period"],
                      strategy=fanout["strategy"], force=True, **quiet)
    random_check = api.verify(model, folder, random=int(fanout["random"]), scale=float(fanout["scale"]), **quiet)
    test_check = api.verify(model, folder, x_test, **quiet)
    info = project.pipeline
    entry = {"project": str(folder), "stages": info.stages, "latency_cycles": info.latency_cycles,
             "clock_period_ns": info.clock_period_ns, "register_bits": info.register_bits,
             "verify": {f"random {fanout['scale']:g}x": _check(random_check), "test": _check(test_check)}}
    if not (random_check.ok and test_check.ok):
        raise RuntimeError(f"RTL (Verilator) differs from Keras: random {random_check.describe()}; "
                           f"test {test_check.describe()}")
    return entry


def process_member(row: dict, data_spec: dict, out: str, fanout: dict, synth: str | None = None,
                   objectives: dict | None = None, objective_source: str = "estimate") -> dict:
    """The fan-out fields of one front member (see the module doc); never raises an hgq_chip error.

    ``objectives`` / ``objective_source``: the spec's (``lut`` / ``latency_ns`` values recorded)."""
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
        if rtl_options(fanout) is not None:
            stage = "rtl"
            result["rtl"] = _rtl(model, member_dir(out, row) / "rtl", fanout, x_test, quiet)
        if synth or fanout.get("synth") or fanout.get("pnr"):
            stage = "synth"
            rtl = result.get("rtl")
            result["synth"] = run_synth(model, fanout, stages=rtl["stages"] if rtl else None)
            if rtl:
                from ..hdl.results import save_synth

                save_synth(rtl["project"], result["synth"])
        if objectives:
            stage = "objectives"
            reuse = result.get("synth") if objective_source == "synth" else None
            if reuse is not None and "latency_ns" in objectives and not (reuse.get("ecp5") or {}).get("pnr"):
                reuse = None
            values = objective_values(model, objectives, objective_source, fanout, reuse)
            if values:
                result["objective_values"] = values
        result["status"] = "ok"
    except Exception as error:  # noqa: BLE001  (recorded, not raised: the sweep goes on with the other members)
        result["error"] = f"{stage}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        result["traceback"] = traceback.format_exc(limit=5)
    result["fanout_seconds"] = round(time.perf_counter() - start, 2)
    return result
