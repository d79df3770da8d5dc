"""The hardware side of a sweep: the fan-out's RTL/synthesis/place-and-route keys and the ``lut`` /
``latency_ns`` objectives.

Spec keys (``fanout`` section; checked by :func:`check_hardware` before Ray starts)::

    fanout:
      rtl: {stages: 3}         # per member: `hgq_chip rtl` (a pipelined Verilog project) + Verilator verify;
                               # {clock_period: NS} picks the stages, {} or true: fanout.clock_period; null: no RTL
      synth: true              # per member: yosys synth_xilinx of the pipelined netlist (Xilinx cell counts)
      family: xc7              # synth_xilinx family: xc7 | xcup
      pnr: ecp5                # per member: synth_ecp5 + nextpnr-ecp5 on a Lattice ECP5 (Fmax, latency in ns)
      time_limit: 3600         # seconds per yosys/nextpnr run
    objective_source: estimate # (top level) where lut / latency_ns objectives come from: estimate | synth

Objective values (:func:`objective_values`), computed by each trial after training and again
per fanned-out member (recorded in its front.json row as ``objective_values`` with a ``sources``
text per value):

- ``estimate`` (default, cheap): ``lut`` is ``hgq_chip.estimate``'s LUTs; ``latency_ns`` the
  pipelined-RTL estimate (``estimation.timing.pipeline_estimate``: stages x the ECP5 period its
  timing model predicts) when ``fanout.rtl`` is set, else the HLS firmware's latency cycles x
  ``fanout.clock_period``.
- ``synth``: the pipelined netlist synthesized by yosys (``hgq_chip.synth``) at the RTL's stages /
  clock: ``lut`` = synth_xilinx LUTs (Xilinx; Vivado's will differ); ``latency_ns`` = stages x
  the period nextpnr achieved on a Lattice ECP5 (needs ``fanout.pnr: ecp5``). Minutes per trial.
"""

from __future__ import annotations

import math

from ..errors import SweepSpecError, UnsupportedConfigurationError

HARDWARE_DEFAULTS = {"rtl": None, "synth": False, "family": "xc7", "pnr": None, "time_limit": 3600.0}
HARDWARE_OBJECTIVES = ("lut", "latency_ns")
SOURCES = ("estimate", "synth")


def rtl_options(fanout: dict) -> dict | None:
    """``{"stages": N | None, "clock_period": ns}`` of the fan-out's RTL, or None without ``rtl``."""
    rtl = fanout.get("rtl")
    if rtl is None or rtl is False:
        return None
    rtl = {} if rtl is True else rtl
    return {"stages": rtl.get("stages"), "clock_period": float(rtl.get("clock_period", fanout["clock_period"]))}


def _check_rtl(rtl) -> None:
    if rtl is None or isinstance(rtl, bool):
        return
    if not isinstance(rtl, dict) or set(rtl) - {"stages", "clock_period"} or len(rtl) > 1:
        raise SweepSpecError(f"fanout.rtl takes null, true, {{stages: N}} or {{clock_period: NS}} (one of them), "
                             f"got {rtl!r}")
    stages = rtl.get("stages")
    if "stages" in rtl and (isinstance(stages, bool) or not isinstance(stages, int) or stages < 1):
        raise SweepSpecError(f"fanout.rtl.stages must be a whole number >= 1, got {stages!r}")
    period = rtl.get("clock_period")
    if "clock_period" in rtl and (isinstance(period, bool) or not isinstance(period, (int, float))
                                  or not math.isfinite(period) or period <= 0):
        raise SweepSpecError(f"fanout.rtl.clock_period must be a positive number of ns, got {period!r}")


def check_hardware(fanout: dict, objectives: dict, source) -> None:
    """SweepSpecError for a bad ``rtl``/``synth``/``family``/``pnr``/``time_limit`` or ``objective_source``,
    or a ``latency_ns`` objective from synthesis without ``pnr: ecp5`` (Xilinx synthesis gives no timing)."""
    from ..estimation.pnr import check_target
    from ..estimation.synth import check_family
    from ..estimation.tool_run import check_time_limit

    _check_rtl(fanout["rtl"])
    if not isinstance(fanout["synth"], bool):
        raise SweepSpecError(f"fanout.synth must be true or false, got {fanout['synth']!r}")
    try:
        check_family(fanout["family"])
        check_target(fanout["pnr"])
        check_time_limit(fanout["time_limit"])
    except UnsupportedConfigurationError as error:
        raise SweepSpecError(f"fanout: {error}".replace("--", "fanout.")) from error
    if source not in SOURCES:
        raise SweepSpecError(f"objective_source must be one of {list(SOURCES)}, got {source!r}")
    if source == "synth" and "latency_ns" in objectives and fanout["pnr"] != "ecp5":
        raise SweepSpecError("objective_source synth with a latency_ns objective needs fanout.pnr: ecp5 (yosys' "
                             "Xilinx synthesis gives cell counts, not timing); or use objective_source estimate")


def check_tools(fanout: dict, objectives: dict, source: str) -> None:
    """ToolMissingError (naming the extra to install) when a tool the spec asks for is missing, before Ray starts."""
    wants_synth = fanout["synth"] or fanout["pnr"] or (source == "synth" and set(objectives) & set(HARDWARE_OBJECTIVES))
    if fanout["rtl"] not in (None, False) or wants_synth:
        from ..estimation.synth import require_da4ml

        require_da4ml()
    if wants_synth:
        from ..estimation.yosys_tool import find_yosys

        find_yosys("auto")
    if fanout["pnr"] or (source == "synth" and "latency_ns" in objectives):
        from ..estimation.pnr import require_nextpnr

        require_nextpnr()


def run_synth(model, fanout: dict, stages: int | None = None) -> dict:
    """``hgq_chip.synth`` of ``model`` with the fan-out's options (``stages``: the RTL project's), as a dict."""
    from ..estimation.synth import synth

    rtl = rtl_options(fanout) or {"stages": None, "clock_period": fanout["clock_period"]}
    return synth(model, strategy=fanout["strategy"], stages=stages or rtl["stages"], clock_period=rtl["clock_period"],
                 family=fanout["family"], pnr=fanout["pnr"], time_limit=fanout["time_limit"],
                 progress=lambda message: None).to_dict()


def objective_values(model, objectives: dict, source: str, fanout: dict, synth_report: dict | None = None) -> dict:
    """``{"lut": ..., "latency_ns": ..., "sources": {name: text}}`` for the hardware objectives in ``objectives``
    (none: ``{}``) of a calibrated ``model``; see the module doc. ``synth_report``: a synthesis already run
    (``run_synth``) to reuse. Raises what ``hgq_chip.estimate`` / ``hgq_chip.synth`` raise."""
    wanted = [name for name in HARDWARE_OBJECTIVES if name in objectives]
    if not wanted:
        return {}
    values: dict = {"sources": {}}
    if source == "synth":
        report = synth_report or run_synth(model, fanout)
        xilinx = report["xilinx"]
        values["lut"] = int(xilinx["lut"])
        values["sources"]["lut"] = (f"synth: yosys synth_xilinx -family {xilinx['family']} of the {report['stages']}-"
                                    "stage pipelined netlist (Xilinx cells; Vivado's will differ)")
        if "latency_ns" in wanted:
            pnr = report["ecp5"]["pnr"]
            values["latency_ns"] = float(report["ecp5"]["latency_ns"])
            values["sources"]["latency_ns"] = (f"pnr: {report['stages']} stages x {pnr['period_ns']} ns achieved by "
                                               f"nextpnr-ecp5 on a Lattice ECP5 (not a Xilinx timing)")
        return {k: v for k, v in values.items() if k in wanted or k == "sources"}
    from ..estimation.estimate import estimate

    hls = estimate(model, strategy=fanout["strategy"], clock_period=fanout["clock_period"])
    values["lut"] = int(hls.lut)
    values["sources"]["lut"] = "estimate: hgq_chip.estimate (LUTs, no synthesis)"
    rtl = rtl_options(fanout)
    if "latency_ns" in wanted and rtl is not None:
        from ..estimation.timing import pipeline_estimate

        pipe = pipeline_estimate(model, stages=rtl["stages"], clock_period=rtl["clock_period"],
                                 strategy=fanout["strategy"])
        values["latency_ns"] = round(float(pipe.latency_ns), 3)
        values["sources"]["latency_ns"] = (f"estimate: pipelined RTL, {pipe.stages} stages x {pipe.ecp5_period_ns:.2f} "
                                           "ns (estimation.timing's ECP5 period model)")
    elif "latency_ns" in wanted:
        values["latency_ns"] = float(hls.latency_ns)
        values["sources"]["latency_ns"] = (f"estimate: HLS firmware, {hls.cycles} cycles x {fanout['clock_period']:g} "
                                           "ns (hgq_chip.estimate)")
    values["sources"] = {k: v for k, v in values["sources"].items() if k in wanted}
    return {k: v for k, v in values.items() if k in wanted or k == "sources"}
