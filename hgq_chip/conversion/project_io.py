"""What a written project's top function takes and returns, and whether a model matches it.

``verify`` runs this before compiling: a project converted from another model would
otherwise give a bogus mismatch, or let the firmware read or write past the caller's
arrays; one converted from the same architecture with other weights (retrained, not
converted again) a mismatch that blames the firmware, so the manifest's fingerprint of the
weights (``conversion.fingerprint``) must be the model's too. The sizes come from
``hgq_chip_project.json`` (names, shapes, sizes); for a project without it (older
hgq_chip, hand-made), from the hls4ml bridge
``<project>_bridge.cpp``, whose ``<project>_double`` converts each argument with
``nnet::convert_data<src, dst, SIZE>`` (SIZE a number or a product of ``defines.h`` constants).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ProjectError
from .fingerprint import FINGERPRINT_KEY, LAYER_FINGERPRINTS_KEY, layer_fingerprints, weights_fingerprint
from .manifest import MANIFEST_FILE, read_manifest, tensor_entries

_CONVERT = re.compile(r"nnet::convert_data<\s*([\w:]+)\s*,\s*([\w:]+)\s*,\s*([^>]+?)\s*>\s*\(\s*(\w+)\s*,\s*(\w+)\s*\)")
_DEFINE = re.compile(r"^\s*#define\s+(\w+)\s+\(?\s*(\d+)\s*\)?\s*$", re.M)


def model_interface(model) -> dict:
    """``{"inputs": [...], "outputs": [...]}`` of a functional Keras model, as the manifest writes them."""
    return {
        "inputs": tensor_entries(model.inputs, [t.name for t in model.inputs]),
        "outputs": tensor_entries(model.outputs, list(model.output_names)),
    }


def _size(expression: str, defines: dict[str, int], where: Path) -> int:
    size = 1
    for factor in expression.split("*"):
        factor = factor.strip().strip("()").strip()
        if factor.isdigit():
            size *= int(factor)
        elif factor in defines:
            size *= defines[factor]
        else:
            raise ProjectError(f"cannot read the array size {expression!r} in {where}; convert the model again")
    return size


def bridge_interface(project_dir, project_name: str) -> dict:
    """Input and output sizes of ``project_name``'s firmware read from its hls4ml bridge file."""
    project_dir = Path(project_dir)
    bridge = project_dir / f"{project_name}_bridge.cpp"
    if not bridge.is_file():
        raise ProjectError(f"{project_dir} has neither {MANIFEST_FILE} nor {bridge.name}; it is no hgq_chip/hls4ml "
                           "project (or not of this project name); convert the model again")
    text = bridge.read_text(errors="replace")
    body = re.search(rf"void\s+{re.escape(project_name)}_double\s*\((.*?)\n\}}", text, re.S)
    defines_file = project_dir / "firmware" / "defines.h"
    defines = {k: int(v) for k, v in _DEFINE.findall(defines_file.read_text(errors="replace"))} \
        if defines_file.is_file() else {}
    inputs, outputs = [], []
    for source, target, size, first, second in _CONVERT.findall(body.group(1) if body else ""):
        if source == "double":
            inputs.append({"name": first, "size": _size(size, defines, bridge)})
        elif target == "double":
            outputs.append({"name": second, "size": _size(size, defines, bridge)})
    if not inputs or not outputs:
        raise ProjectError(f"cannot find the inputs and outputs of {project_name}_double in {bridge}; "
                           "convert the model again")
    return {"inputs": inputs, "outputs": outputs}


def project_interface(project_dir, project_name: str) -> dict:
    """The project's inputs and outputs: the manifest's entries, else the bridge file's sizes."""
    if (Path(project_dir) / MANIFEST_FILE).is_file():
        return read_manifest(project_dir)
    return bridge_interface(project_dir, project_name)


def _describe(entries: list[dict]) -> str:
    return ", ".join(f"{e.get('name', '?')} {tuple(e['shape']) if 'shape' in e else ''} size {e['size']}".replace(
        "  ", " ") for e in entries)


def check_project_matches_model(model, project_dir, project_name: str) -> dict:
    """ProjectError unless the project's inputs/outputs have the model's count and sizes (and
    shapes, where the manifest records them). Returns the project's interface."""
    project = project_interface(project_dir, project_name)
    ours = model_interface(model)
    problems = []
    for kind in ("inputs", "outputs"):
        theirs, mine = project[kind], ours[kind]
        if len(theirs) != len(mine):
            problems.append(f"the project has {len(theirs)} {kind}, the model {len(mine)}")
            continue
        for index, (t, m) in enumerate(zip(theirs, mine)):
            same_shape = "shape" not in t or [int(d) for d in t["shape"]] == m["shape"]
            if int(t["size"]) != m["size"] or not same_shape:
                problems.append(f"{kind[:-1]} {index}: project {_describe([t])}, model {_describe([m])}")
    if problems:
        raise ProjectError(
            f"{project_dir} was not converted from this model ({model.name!r}): " + "; ".join(problems)
            + ". Verify it with the model it was converted from, or convert this model into a new folder"
        )
    check_project_weights(model, project_dir, project)
    return project


def check_project_weights(model, project_dir, project: dict) -> None:
    """ProjectError if the manifest's fingerprint of the weights and quantizer state the firmware
    was built from differs from ``model``'s (same architecture, other weights: retrained or
    recalibrated since the conversion). A project without the fingerprint (older hgq_chip,
    bridge-only) is not checked."""
    recorded = project.get(FINGERPRINT_KEY)
    if not isinstance(recorded, str) or recorded == weights_fingerprint(model):
        return
    theirs = project.get(LAYER_FINGERPRINTS_KEY)
    changed = []
    if isinstance(theirs, dict):
        ours = layer_fingerprints(model)
        changed = [name for name in ours if name in theirs and theirs[name] != ours[name]]
    which = f" (in layer{'s' if len(changed) > 1 else ''} {', '.join(map(repr, changed))})" if changed else ""
    raise ProjectError(
        f"{project_dir} was converted from other weights or quantizer ranges: model {model.name!r} has the same "
        f"inputs and outputs, but its kernels, biases, bit-widths or recorded ranges differ from those the firmware "
        f"was built from{which}, e.g. it was retrained or recalibrated after the conversion. Convert this model "
        "again (hgq_chip convert ... --force) and verify the new project"
    )
