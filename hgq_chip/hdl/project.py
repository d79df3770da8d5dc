"""rtl(): a calibrated model as a pipelined Verilog project (``hgq_chip rtl``).

Everything is checked and traced before anything is written: an uncalibrated model is a
CalibrationError, a layer the RTL trace cannot handle an UnsupportedLayerError naming it, an
impossible stage count or clock period an UnsupportedConfigurationError. Then da4ml writes the
project into a staging folder that replaces ``output_dir`` atomically under its lock, with the
same rules as ``convert`` (``hgq_chip.conversion.output_dir``).

The folder holds da4ml's project (``src/``: ``model.v`` the top, ``model_stage*.v``,
``static/``, ``memfiles/``, ``model.xdc``/``model.sdc``; ``sim/``; ``model/pipeline.json``;
``metadata.json``; Vivado/Quartus scripts), ``PORTS.md`` (ports, bit layout, formats, latency),
``keras_model.keras`` (the model the logic was traced from) and ``hgq_chip_project.json`` (kind
``"rtl"``: pipeline, ports, the weights' fingerprint that ``verify`` checks).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..calibration import uncalibrated_quantizers
from ..conversion.fingerprint import (
    FINGERPRINT_KEY,
    LAYER_FINGERPRINTS_KEY,
    layer_fingerprints,
    weights_fingerprint,
)
from ..conversion.manifest import FORMAT_VERSION, tensor_entries, write_manifest
from ..conversion.output_dir import check_output_dir, replace_atomically
from ..conversion.project import as_functional
from ..errors import CalibrationError, NumericError, UnsupportedLayerError
from .pipeline import PipelineInfo, pipelined_verilog
from .ports import describe, layout, runs

TOP = "model"
KIND = "rtl"
PORTS_FILE = "PORTS.md"
MODEL_FILE = "keras_model.keras"


@dataclass
class RTLProject:
    """What :func:`rtl` wrote: ``output_dir``, the pipeline (stages, latency in cycles, register
    bits, sources), the strategy, the port widths in bits and the seconds it took."""

    output_dir: Path
    pipeline: PipelineInfo
    strategy: str
    input_bits: int
    output_bits: int
    seconds: float

    def describe(self) -> str:
        p = self.pipeline
        return (f"{p.stages} pipeline stage{'s' if p.stages != 1 else ''} (latency {p.latency_cycles} cycles, "
                f"{p.register_bits} register bits, depth {p.depth:g} adder levels, at most {p.max_stages} stages), "
                f"ports {self.input_bits} -> {self.output_bits} bits, clock constraint {p.clock_period_ns:g} ns, "
                f"{self.strategy} strategy")


def _check_model(model) -> None:
    missing = uncalibrated_quantizers(model)
    if missing:
        raise CalibrationError(
            f"activation ranges were never recorded for {', '.join(missing)}; train the model or call "
            "hgq_chip.calibrate(model, x) on representative inputs before writing its RTL")
    # Function tables (layers/tables.py) are derived from the quantizers, not weights: HSoftmax's 1/x
    # table holds inf at x = 0, an entry no input reads (the sum is at least one step).
    bad = [v.path for v in model.weights if not getattr(v, "derived_table", False)
           and not np.all(np.isfinite(np.asarray(v.numpy(), dtype=np.float64)))]
    if bad:
        raise NumericError(f"the variables {', '.join(bad[:4])}{' ...' if len(bad) > 4 else ''} hold NaN or infinite "
                           "values, which no fixed-point type can hold; retrain the model or use a checkpoint saved "
                           "before the values diverged")


def port_manifest(model, comb) -> dict:
    """``{"inputs": ..., "outputs": ..., "input_bits", "output_bits"}``: the run-grouped layout of both ports."""
    inputs = tensor_entries(model.inputs, [t.name for t in model.inputs])
    outputs = tensor_entries(model.outputs, list(model.output_names))
    ins, in_bits = layout(comb.inp_qint, [(e["name"], e["size"]) for e in inputs])
    outs, out_bits = layout(comb.out_qint, [(e["name"], e["size"]) for e in outputs])
    return {"input_bits": in_bits, "output_bits": out_bits, "inputs": runs(ins), "outputs": runs(outs),
            "elements": (ins, outs)}


def rtl(model, output_dir, *, stages: int | None = None, clock_period: float | None = None,
        strategy: str = "latency", force: bool = False, replace_non_project: bool = False, reads=(),
        log=print) -> RTLProject:
    """Write the pipelined Verilog project of a calibrated ``model`` (a ``keras.Model``) into ``output_dir``.

    ``stages``: exactly that many register stages (1 to the logic's maximum, see
    ``hdl.pipeline.max_stages``); else chosen from ``clock_period`` (ns, default 5; it also goes
    into the XDC/SDC constraints). ``strategy``: ``latency`` or ``distributed_arithmetic`` (how
    constant products become adders, as in ``hgq_chip.estimation.rtl``). ``force`` /
    ``replace_non_project`` / ``reads`` as for ``convert``. Raises, before writing anything:
    UnsafeOutputError / OutputExistsError (the folder), CalibrationError, NumericError,
    UnsupportedLayerError (a layer without RTL tracing, named), UnsupportedConfigurationError
    (strategy, stages, clock period), ToolMissingError (no da4ml); OutputLockedError if another
    command writes the folder.
    """
    from ..estimation.estimate import check_strategy
    from ..estimation.rtl import trace_model
    from .compat import load

    start = time.perf_counter()
    strategy = check_strategy(strategy)
    outputs = {"force": force, "replace_non_project": replace_non_project, "reads": reads}
    check_output_dir(output_dir, **outputs)
    load()  # ToolMissingError before the model is traced
    model = as_functional(model)
    _check_model(model)
    try:
        _, _, comb = trace_model(model, strategy)
    except UnsupportedLayerError as error:
        raise UnsupportedLayerError(f"{error}; `hgq_chip rtl` writes only what it can trace bit-exactly (docs/rtl.md): "
                                    "replace the layer, or use `hgq_chip convert` for the HLS flow") from None
    ports = port_manifest(model, comb)
    from .pipeline import pipeline_for_stages, stages_for_clock

    period = 5.0 if clock_period is None else clock_period
    chosen = stages if stages is not None else stages_for_clock(comb, period)
    pipeline_for_stages(comb, chosen)  # refuses an impossible count before the folder is touched
    fingerprints = {FINGERPRINT_KEY: weights_fingerprint(model), LAYER_FINGERPRINTS_KEY: layer_fingerprints(model)}
    with replace_atomically(output_dir, **outputs, log=log) as staging:
        log(f"[hgq_chip] writing pipelined Verilog ({chosen} stage{'' if chosen == 1 else 's'})")
        info = pipelined_verilog(comb, staging, TOP, stages=chosen, clock_period_ns=clock_period)
        ins, outs = ports.pop("elements")
        (staging / PORTS_FILE).write_text(describe(TOP, ins, ports["input_bits"], outs, ports["output_bits"],
                                                   info.latency_cycles, info.clock_period_ns))
        model.save(staging / MODEL_FILE)
        write_manifest(staging, {
            "format": FORMAT_VERSION, "kind": KIND, "hgq_chip_version": _version(), "model_name": model.name,
            "project_name": TOP, "backend": f"{load().backend}-verilog", "strategy": strategy,
            "clock_period_ns": info.clock_period_ns,
            "inputs": tensor_entries(model.inputs, [t.name for t in model.inputs]),
            "outputs": tensor_entries(model.outputs, list(model.output_names)),
            **fingerprints,
            "rtl": {"top": TOP, "library": f"{load().backend} {load().version}", **info.to_dict(), "ports": ports},
        })
    log(f"[hgq_chip] RTL written to {output_dir}")
    return RTLProject(Path(output_dir), info, strategy, ports["input_bits"], ports["output_bits"],
                      time.perf_counter() - start)


def _version() -> str:
    from .._version import __version__

    return __version__
