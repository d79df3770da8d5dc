"""The RTL part of a report: an ``hgq_chip rtl`` project (manifest kind ``"rtl"``) and what was measured
on it (``results/verify.json``, ``results/synth.json``: ``hgq_chip.hdl.results``), and the RTL
columns of a sweep's fanned-out members.

Every number says where it comes from: the pipeline (stages, latency in cycles, register bits)
is da4ml's as written; the verify counts are Verilator's against Keras; LUT/CARRY4/FF/DSP/BRAM are
yosys ``synth_xilinx`` cell counts (Xilinx); Fmax, critical path and latency in ns are nextpnr's
on a Lattice ECP5, out of context. Vivado's numbers on a Xilinx part will differ.
"""

from __future__ import annotations

from pathlib import Path

from ..conversion.manifest import MANIFEST_FILE, read_manifest
from ..errors import ProjectError
from ..hdl.results import RESULTS_DIR, SYNTH_FILE, VERIFY_FILE, read_result
from .section import Section

XILINX_NOTE = ("Xilinx: yosys synth_xilinx cell counts of the pipelined netlist (CARRY4 also for xcup), open tools: "
               "Vivado's counts will differ.")
ECP5_NOTE = ("Lattice ECP5: yosys synth_ecp5 + nextpnr-ecp5 place and route, out of context on an LFE5U-85F; "
             "Fmax and latency in ns are ECP5 numbers, not a Xilinx timing (Vivado's will differ).")


def is_rtl_dir(directory) -> bool:
    """True for a folder written by ``hgq_chip rtl`` (its manifest's kind is ``"rtl"``)."""
    try:
        return (Path(directory) / MANIFEST_FILE).is_file() and read_manifest(directory).get("kind") == "rtl"
    except ProjectError:
        return False


def load_rtl(directory) -> dict:
    """``{"directory", "manifest", "verify", "synth"}`` of an RTL project (results None when not measured).

    Raises ProjectError when ``directory`` is not an ``hgq_chip rtl`` project."""
    manifest = read_manifest(directory)
    if manifest.get("kind") != "rtl" or not isinstance(manifest.get("rtl"), dict):
        raise ProjectError(f"{directory} is not an RTL project (its {MANIFEST_FILE} has no kind 'rtl'); pass a "
                           "folder written by `hgq_chip rtl`")
    return {"directory": Path(directory), "manifest": manifest, "verify": read_result(directory, VERIFY_FILE),
            "synth": read_result(directory, SYNTH_FILE)}


def _get(mapping, *keys):
    for key in keys:
        mapping = mapping.get(key) if isinstance(mapping, dict) else None
    return mapping


def pipeline_section(rtl: dict) -> Section:
    manifest, p = rtl["manifest"], rtl["manifest"]["rtl"]
    ports = p.get("ports", {})
    section = Section("RTL: pipelined Verilog (hgq_chip rtl)")
    text = (f"Top {p.get('top', '?')} ({p.get('library', 'da4ml')}), {manifest.get('strategy')} strategy. Ports "
            f"{ports.get('input_bits', '?')} -> {ports.get('output_bits', '?')} bits (layout and ap_fixed format of "
            "each element: PORTS.md).")
    section.blocks.append(("text", text))
    section.blocks.append(("table", ["stages", "latency (cycles)", "clock constraint (ns)", "register bits",
                                     "logic depth (adder levels)", "max stages"],
                           [[p.get("stages"), p.get("latency_cycles"), p.get("clock_period_ns"),
                             p.get("register_bits"), p.get("depth"), p.get("max_stages")]]))
    return section


def verify_section(rtl: dict) -> Section:
    section = Section("RTL verify (Verilator vs Keras, bit for bit)")
    checks = _get(rtl["verify"], "checks")
    if not checks:
        section.blocks.append(("text", (f"Not verified yet: run `hgq_chip verify MODEL.keras {rtl['directory']} "
                                        f"--random 1000 --scale 4` (results go to {RESULTS_DIR}/{VERIFY_FILE}).")))
        return section
    rows = [[label, c.get("samples"), c.get("values"), c.get("mismatches"), c.get("latency_cycles"),
             "yes" if c.get("ok") else "NO", c.get("when", "")] for label, c in checks.items()]
    section.blocks.append(("table", ["inputs", "samples", "values", "mismatching values", "latency (cycles)",
                                     "bit-exact at that latency", "when (UTC)"], rows))
    return section


def _utilisation(pnr: dict) -> str:
    return ", ".join(f"{k} {v['used']}/{v['available']}" for k, v in sorted((pnr.get("utilization") or {}).items()))


def synth_tables(synth: dict, project_stages=None) -> list:
    """The blocks of one synthesis result (``SynthReport.to_dict()``): Xilinx counts, then ECP5 place and route."""
    x = synth.get("xilinx") or {}
    stages = synth.get("stages")
    note = ("" if project_stages in (None, stages) else
            f" Synthesized at {stages} stages, not the project's {project_stages}.")
    blocks = [("text", XILINX_NOTE + note),
              ("table", ["family", "stages", "LUT", "CARRY4", "FF", "DSP", "BRAM", "logic depth (cells, ltp)"],
               [[x.get("family"), stages, x.get("lut"), x.get("carry4"), x.get("ff"), x.get("dsp"), x.get("bram"),
                 x.get("logic_depth_cells")]])]
    pnr = _get(synth, "ecp5", "pnr")
    if pnr:
        blocks += [("text", ECP5_NOTE),
                   ("table", ["device", "target (MHz)", "Fmax (MHz)", "critical path (ns)", "latency (cycles)",
                              "latency (ns)", "utilisation"],
                    [[pnr.get("device"), pnr.get("target_mhz"), pnr.get("fmax_mhz"), pnr.get("critical_path_ns"),
                      stages, _get(synth, "ecp5", "latency_ns"), _utilisation(pnr)]])]
    return blocks


def synth_section(rtl: dict) -> Section:
    section = Section("RTL synthesis and place and route (open tools)")
    if not rtl["synth"]:
        section.blocks.append(("text", (f"Not synthesized yet: run `hgq_chip synth {rtl['directory']} [--pnr ecp5]` "
                                        f"(results go to {RESULTS_DIR}/{SYNTH_FILE}).")))
        return section
    section.blocks += synth_tables(rtl["synth"], rtl["manifest"]["rtl"].get("stages"))
    return section


def rtl_sections(directory) -> list[Section]:
    """The report sections of the RTL project in ``directory`` (ProjectError if it is not one)."""
    rtl = load_rtl(directory)
    return [pipeline_section(rtl), verify_section(rtl), synth_section(rtl)]


def input_files(directory) -> list[Path]:
    """The files the RTL sections read (never a page's path)."""
    directory = Path(directory)
    return [directory / MANIFEST_FILE, directory / RESULTS_DIR / VERIFY_FILE, directory / RESULTS_DIR / SYNTH_FILE]


def _checks(checks: dict | None) -> str:
    return "; ".join(f"{name}: {c['mismatches']}/{c['values']}" for name, c in (checks or {}).items()) or "-"


def members_section(members: list[dict]) -> Section | None:
    """A sweep's fanned-out members with RTL or synthesis results (None when no member has any)."""
    rows = []
    for m in members:
        rtl, synth = m.get("rtl") or {}, m.get("synth") or {}
        if not (rtl or synth):
            continue
        pnr = _get(synth, "ecp5", "pnr") or {}
        rows.append([m["trial"], m.get("epoch"), rtl.get("stages", synth.get("stages", "-")),
                     rtl.get("latency_cycles", "-"), _checks(rtl.get("verify")), _get(synth, "xilinx", "lut") or "-",
                     _get(synth, "xilinx", "ff") or "-", pnr.get("fmax_mhz", "-"),
                     _get(synth, "ecp5", "latency_ns") or "-"])
    if not rows:
        return None
    section = Section("RTL of the fanned-out members")
    section.blocks.append(("text", "RTL verify: mismatching values / values compared, Verilator vs Keras. "
                                   + XILINX_NOTE + " " + ECP5_NOTE))
    section.blocks.append(("table", ["trial", "epoch", "stages", "latency (cycles)", "RTL verify",
                                     "LUT (yosys, Xilinx)", "FF (yosys, Xilinx)", "Fmax (MHz, ECP5)",
                                     "latency (ns, ECP5)"], rows))
    return section


def objectives_section(members: list[dict]) -> Section | None:
    """The lut / latency_ns objective values of each fanned-out member and where they came from."""
    rows = [[m["trial"], m.get("epoch"), name, value, m["objective_values"]["sources"].get(name, "-")]
            for m in members if m.get("objective_values")
            for name, value in m["objective_values"].items() if name != "sources"]
    if not rows:
        return None
    section = Section("Hardware objectives of the members")
    section.blocks.append(("table", ["trial", "epoch", "objective", "value", "source"], rows))
    return section
