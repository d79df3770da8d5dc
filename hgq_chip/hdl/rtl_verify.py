"""verify() of an RTL project: the Verilated top against Keras, bit for bit and cycle for cycle.

Samples are cast to the model's input type exactly as the firmware's input is defined (the
converter's input format: truncation, and saturation for SAT inputs, ``hgq_chip.fixed``), packed
into the top's input port as ``PORTS.md`` documents, clocked in one per cycle, and the output
port read after every rising edge. Sample ``s`` must be at the output after edge ``s + latency``
(the manifest's ``latency_cycles``, the pipeline's stage count); the outputs are compared with
Keras by exact equality. When they differ, every other offset is tried too, so a design whose
outputs come a cycle early or late is reported as a latency error, not as wrong arithmetic.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..conversion.graph import graph_nodes
from ..conversion.inputs import all_input_formats
from ..conversion.manifest import read_manifest
from ..conversion.output_dir import project_in_use
from ..conversion.project import as_functional
from ..conversion.project_io import check_project_matches_model
from ..conversion.verification import PROGRESS_SECONDS, VerifyReport, _add, check_inputs
from ..errors import ProjectError
from ..fixed.quantize_np import quantize_to
from .ports import Element, pack, unpack
from .verilator import RTLSimulation

EXTRA_CYCLES = 2  # clocked past the last sample's output, so late outputs are seen too


@dataclass
class RTLVerifyReport(VerifyReport):
    """A :class:`VerifyReport` plus the latency in cycles: ``latency_cycles`` as documented,
    ``latency_found`` the offset at which the outputs equal Keras (None: at none)."""

    latency_cycles: int = 0
    latency_found: int | None = None

    def describe(self) -> str:
        text = super().describe().replace("vs csim", "vs RTL")
        if self.ok:
            return f"{text}; outputs {self.latency_cycles} cycles after their inputs, one sample per clock"
        if self.latency_found is not None and self.latency_found != self.latency_cycles:
            return (f"{text}. The outputs equal Keras {self.latency_found} cycles after their inputs, not the "
                    f"documented {self.latency_cycles}: the pipeline's latency is wrong")
        return text


def is_rtl_project(project_dir) -> bool:
    try:
        return read_manifest(project_dir).get("kind") == "rtl"
    except ProjectError:
        return False


def _elements(runs: list[dict]) -> list[Element]:
    return [Element(r["tensor"], r["first"] + n, r["lsb"] + n * r["width"], r["k"], r["i"], r["f"])
            for r in runs for n in range(r["count"])]


def verify_rtl(model, project_dir, batches: Iterable, log=print, check: bool = True,
               allow_large: bool = False) -> RTLVerifyReport:
    """Compile the RTL project's Verilator model (cached) and compare it with ``model`` on ``batches``.

    ``batches``: lists of arrays, one per model input (``check``: checked like ``verify``'s data).
    Raises ProjectError (another model's project or other weights, before compiling),
    ToolMissingError, SimulationTooLargeError (unless ``allow_large``), CompileError,
    SimulationCrashError; OutputLockedError if another command holds the folder.
    """
    model = as_functional(model)
    with project_in_use(project_dir):
        manifest = check_project_matches_model(model, project_dir, "model")
        rtl = manifest["rtl"]
        ports = rtl["ports"]
        ins, outs = _elements(ports["inputs"]), _elements(ports["outputs"])
        sim = RTLSimulation(project_dir, rtl["top"], ports["input_bits"], ports["output_bits"])
        log("[hgq_chip] compiling the RTL with Verilator" if sim.needs_build()
            else "[hgq_chip] reusing the compiled Verilator model")
        sim.build(allow_large)
        formats = list(all_input_formats(model, graph_nodes(model)).values())
        latency = int(rtl["latency_cycles"])
        report = RTLVerifyReport(0, 0, 0, None, latency_cycles=latency, latency_found=latency)
        last_log = None
        for number, batch in enumerate(batches):
            inputs = check_inputs(model, batch) if check else list(batch)
            if last_log is None or time.monotonic() - last_log >= PROGRESS_SECONDS:
                last_log = time.monotonic()
                log(f"[hgq_chip] clocking {len(inputs[0])} samples through the RTL (batch {number + 1}, "
                    f"{report.n_samples} done)")
            keras_out = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0, batch_size=1024)
            keras_out = [np.asarray(o) for o in (keras_out if isinstance(keras_out, (list, tuple)) else [keras_out])]
            rows = _simulate(sim, inputs, formats, ins, outs, latency)
            n = len(inputs[0])
            expected = np.concatenate([o.reshape(n, -1).astype(np.float64) for o in keras_out], axis=1)
            got = rows[latency:latency + n]
            if not np.array_equal(got, expected) and report.latency_found == latency:
                report.latency_found = next((d for d in range(len(rows) - n + 1)
                                             if np.array_equal(rows[d:d + n], expected)), None)
            sizes = np.cumsum([int(np.prod(o.shape[1:])) for o in keras_out])[:-1]
            _add(report, keras_out, np.split(got, sizes, axis=1))
        return report


def _simulate(sim: RTLSimulation, inputs, formats, ins, outs, latency: int) -> np.ndarray:
    """The output values after every edge, ``(n + latency + EXTRA_CYCLES, n_output_elements)``."""
    n = len(inputs[0])
    # The firmware's input type casts the float input (truncation; saturation for SAT types): done
    # here, because the port takes the fixed-point code itself.
    cast = [quantize_to(np.asarray(x, np.float64), fmt).reshape(n, -1) for x, fmt in zip(inputs, formats)]
    port = pack(np.concatenate(cast, axis=1), ins, sim.in_words * 32)
    return unpack(sim.run(port, n + latency + EXTRA_CYCLES), outs)
