"""``hgq_chip_project.json``: the marker and description every converted project carries.

Written by ``convert`` into the project folder (in the staging folder, so it appears with
the complete project). Other commands read it instead of guessing:

- ``convert --force`` replaces only folders that hold it (an earlier hgq_chip project), and only
  while every file it lists still holds the bytes convert wrote (SHA-256 under "sha256");
- ``verify`` checks the model's input/output names and sizes, and the fingerprint of its
  weights and quantizer state (``weights_sha256``, absent in older projects), against it
  before compiling;
- ``estimate DIR`` takes the strategy, reuse factor and clock period the project was built with.

No Keras is imported here, so ``hgq_chip estimate`` stays fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from .._version import __version__
from ..errors import ProjectError

MANIFEST_FILE = "hgq_chip_project.json"
FORMAT_VERSION = 1
# Files other commands wrote into the project and registered (report's page and plots): {name: sha256}.
ADDED_KEY = "added_files"


def tensor_entries(tensors, names) -> list[dict]:
    """``[{"name": ..., "shape": [...], "size": n}]`` for Keras tensors (batch axis dropped)."""
    entries = []
    for tensor, name in zip(tensors, names):
        shape = [int(d) for d in tensor.shape[1:]]
        size = 1
        for d in shape:
            size *= d
        entries.append({"name": str(name), "shape": shape, "size": size})
    return entries


def model_manifest(model, *, project_name: str, backend: str, io_type: str, strategy: str, reuse_factor: int,
                   clock_period: float, part: str | None, fingerprints: dict | None = None) -> dict:
    """The manifest of ``model`` (a functional ``keras.Model``) converted with these options.

    Inputs are named by their input layers, outputs by the layers producing them
    (``model.output_names``), in the order of the firmware's arguments. ``fingerprints``:
    {"weights_sha256": ..., "layer_weights_sha256": {layer: ...}} of the weights the firmware
    was built from (``conversion.fingerprint``); ``verify`` compares them with its model's.
    """
    input_names = [t.name for t in model.inputs]  # a functional model's input tensors carry the Input layer's name
    output_names = list(model.output_names)
    return {
        "format": FORMAT_VERSION,
        "hgq_chip_version": __version__,
        "model_name": model.name,
        "project_name": project_name,
        "backend": backend,
        "io_type": io_type,
        "strategy": strategy,
        "reuse_factor": int(reuse_factor),
        "clock_period_ns": float(clock_period),
        "part": part,
        "inputs": tensor_entries(model.inputs, input_names),
        "outputs": tensor_entries(model.outputs, output_names),
        **(fingerprints or {}),
    }


def _files_below(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file() or p.is_symlink())


def file_digest(path) -> str:
    """The SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _regular(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def write_manifest(directory, manifest: dict) -> Path:
    """Write the manifest, listing every file already in ``directory`` (write it last) under "files"
    and the SHA-256 of each regular file under "sha256" (so ``convert --force`` can tell a file a
    user edited since from the one convert wrote)."""
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    files = [name for name in _files_below(directory) if name != MANIFEST_FILE]
    digests = {name: file_digest(directory / name) for name in files if _regular(directory / name)}
    path.write_text(json.dumps({**manifest, "files": files, "sha256": digests}, indent=2) + "\n")
    return path


def _manifest_or_none(directory: Path) -> dict | None:
    try:
        manifest = json.loads((directory / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def register_added_files(directory, paths) -> None:
    """Record files another command wrote into the project ``directory`` (``report``'s page and
    plots) in its manifest under "added_files", with their SHA-256: ``convert --force`` then
    replaces them with the project like its own files, unless they were edited since. Paths
    outside ``directory``, and projects without a readable manifest, are skipped. The manifest
    is replaced atomically; hold the folder's lock (``output_dir.FolderLock``) while calling."""
    from ..atomic_write import write_atomically

    directory = Path(os.path.realpath(directory))
    manifest = _manifest_or_none(directory)
    if manifest is None:
        return
    added = dict(manifest.get(ADDED_KEY) or {})
    for path in paths:
        real = Path(os.path.realpath(path))
        if real.is_relative_to(directory) and _regular(real):
            added[real.relative_to(directory).as_posix()] = file_digest(real)
    text = json.dumps({**manifest, ADDED_KEY: added}, indent=2) + "\n"
    write_atomically(directory / MANIFEST_FILE, lambda partial: Path(partial).write_text(text))


# Files tools write into a project after convert, which a replacement may delete: the C
# simulation's library and the object files of an interrupted build (hls4ml's build_lib.sh),
# and the mark of a finished build (conversion/csim.py); the Verilator build of an RTL project
# (hdl/verilator.py, under sim_build/) and what verify/synth measured on it (hdl/results.py, results/).
_BUILT = re.compile(r"firmware/\.?[^/]+\.so(\.built)?|[^/]+\.o|sim_build/.+|results/.+")


def foreign_files(directory) -> list[str]:
    """Files in a project folder that neither convert (its manifest's "files"), a C simulation build
    nor ``report`` (its "added_files") wrote: a user's notes, an HLS synthesis run. Empty for
    projects whose manifest has no list."""
    directory = Path(directory)
    manifest = _manifest_or_none(directory) or {}
    try:
        listed = set(manifest["files"]) | set(manifest.get(ADDED_KEY) or {}) | {MANIFEST_FILE}
    except (KeyError, TypeError):
        return []
    return [name for name in _files_below(directory) if name not in listed and not _BUILT.fullmatch(name)]


def changed_files(directory) -> list[str]:
    """Files convert (or ``report``) wrote into a project folder whose bytes differ from the SHA-256
    the manifest recorded: a user's hand edits, which a replacement would discard. Empty for
    projects converted before the manifest held digests."""
    directory = Path(directory)
    manifest = _manifest_or_none(directory) or {}
    recorded = {}
    for key in ("sha256", ADDED_KEY):
        if isinstance(manifest.get(key), dict):
            recorded.update(manifest[key])
    changed = []
    for name, digest in sorted(recorded.items()):
        path = directory / name
        try:
            if _regular(path) and file_digest(path) != digest:
                changed.append(name)
        except OSError:
            changed.append(name)  # unreadable now: not what convert wrote
    return changed


def is_project(directory) -> bool:
    """True when ``directory`` holds the marker of an hgq_chip conversion."""
    return (Path(directory) / MANIFEST_FILE).is_file()


def read_manifest(directory) -> dict:
    """The manifest of a project folder; ProjectError if it is missing or unreadable."""
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        raise ProjectError(
            f"{directory} has no {MANIFEST_FILE}, so it was not written by `hgq_chip convert` (or by an older "
            "version); convert the model again into a new folder"
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ProjectError(f"cannot read {path} ({error}); convert the model again") from error
    if not isinstance(manifest, dict) or "inputs" not in manifest or "outputs" not in manifest:
        raise ProjectError(f"{path} is not an hgq_chip project manifest; convert the model again")
    return manifest
