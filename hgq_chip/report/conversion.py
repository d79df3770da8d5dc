"""Reading what ``hgq_chip convert`` wrote (summary.json, weight_types.csv, hls_config.yml)
and what training wrote (pareto.json, AdaQAT bit-width logs), as plain Python data."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ..conversion.manifest import MANIFEST_FILE
from ..conversion.reports import CONFIG_FILE, SUMMARY_FILE, WEIGHTS_FILE
from ..conversion.facts import FACTS_FILE
from ..errors import DataError, ProjectError


@dataclass
class WeightBits:
    """One weight tensor's per-weight bit-widths (0 where pruned), in the tensor's shape."""

    layer: str
    name: str
    bits: np.ndarray
    pruned: np.ndarray

    @property
    def kept(self) -> np.ndarray:
        return self.bits[~self.pruned]


@dataclass
class Conversion:
    directory: Path
    summary: dict
    hls_config: dict
    weights: list[WeightBits] = field(default_factory=list)

    def weights_of(self, name: str) -> list[WeightBits]:
        """The tensors called ``name`` ('kernel', 'bias', ...) in layer order."""
        return [w for w in self.weights if w.name == name]


WEIGHT_COLUMNS = ("layer", "weight", "index", "bits", "pruned")


def read_weight_bits(path: Path) -> list[WeightBits]:
    """weight_types.csv as arrays: each row's ``index`` ('i/j/...') places it in its tensor.

    Raises ProjectError when the file lacks a column or holds a malformed row.
    """
    rows: dict[tuple[str, str], list[tuple[tuple[int, ...], int, int]]] = {}
    with open(path, newline="", errors="replace") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in WEIGHT_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ProjectError(f"{path} lacks the columns {missing}; convert the model again")
        for number, row in enumerate(reader, start=2):
            try:
                index = tuple(int(part) for part in row["index"].split("/")) if row["index"] else ()
                entry = (index, int(row["bits"]), int(row["pruned"]))
            except (ValueError, TypeError, AttributeError) as error:
                raise ProjectError(f"{path} line {number} is malformed ({error}); convert the model again") from error
            rows.setdefault((row["layer"], row["weight"]), []).append(entry)
    tensors = []
    for (layer, name), entries in rows.items():
        shape = tuple(np.max([e[0] for e in entries], axis=0) + 1) if entries[0][0] else ()
        bits = np.zeros(shape, dtype=np.int64)
        pruned = np.zeros(shape, dtype=bool)
        for index, width, is_pruned in entries:
            bits[index] = width
            pruned[index] = bool(is_pruned)
        tensors.append(WeightBits(layer, name, bits, pruned))
    return tensors


# Files of a project the report reads (or that belong to the project): never a page's path.
INPUT_FILES = (SUMMARY_FILE, WEIGHTS_FILE, CONFIG_FILE, FACTS_FILE, MANIFEST_FILE)
SUMMARY_KEYS = ("layers", "total_ebops", "weights_kept", "weights_pruned", "widest_accumulator")
LAYER_KEYS = ("layer", "class", "weights_kept", "weights_pruned", "ebops", "accum", "hls_types")


def _check_summary(summary, path: Path) -> dict:
    if not isinstance(summary, dict) or any(key not in summary for key in SUMMARY_KEYS):
        raise ProjectError(f"{path} is not a conversion summary (needs {', '.join(SUMMARY_KEYS)}); "
                           "convert the model again")
    layers = summary["layers"]
    if not isinstance(layers, list) or not all(isinstance(l, dict) and set(LAYER_KEYS) <= set(l) for l in layers):
        raise ProjectError(f"{path}: 'layers' must list per-layer entries with {', '.join(LAYER_KEYS)}; "
                           "convert the model again")
    return summary


def load_conversion(directory) -> Conversion:
    """The files a conversion wrote into ``directory``.

    Raises ProjectError if the folder is missing, lacks a file, or a file is corrupt.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ProjectError(f"{directory} is not a directory; pass a directory written by `hgq_chip convert`")
    missing = [name for name in (SUMMARY_FILE, WEIGHTS_FILE, CONFIG_FILE) if not (directory / name).is_file()]
    if missing:
        raise ProjectError(
            f"{directory} lacks {', '.join(missing)}; pass a directory written by `hgq_chip convert`"
        )
    summary = _check_summary(_read(directory / SUMMARY_FILE, json.loads), directory / SUMMARY_FILE)
    hls_config = _read(directory / CONFIG_FILE, yaml.safe_load)
    weights = read_weight_bits(directory / WEIGHTS_FILE)
    return Conversion(directory, summary, hls_config, weights)


def _read(path: Path, parse):
    """``parse`` of the file's text; ProjectError naming the file if it cannot be read or parsed."""
    try:
        return parse(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as error:
        raise ProjectError(f"cannot read {path} ({type(error).__name__}: {error}); convert the model again") from error


def load_pareto(source) -> list[dict]:
    """The Pareto front index (a pareto.json file or the directory holding it), sorted by EBOPs."""
    # Imported here: training.pareto imports Keras, which `hgq_chip report` does not need otherwise.
    from ..training.pareto import INDEX_NAME

    path = Path(source)
    if path.is_dir():
        path = path / INDEX_NAME
    if not path.is_file():
        raise DataError(f"no Pareto index at {path}; pass the directory given to ParetoCheckpoint")
    try:
        entries = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise DataError(f"cannot read the Pareto index {path} ({type(error).__name__}: {error})") from error
    shape = "a non-empty list of {path, epoch, metric, ebops}"
    if not isinstance(entries, list) or not entries or not all(
        isinstance(e, dict) and {"metric", "ebops"} <= set(e) for e in entries
    ):
        raise DataError(f"{path} is not a Pareto index ({shape})")
    for entry in entries:
        if not all(_is_number(entry[key]) for key in ("metric", "ebops")):
            raise DataError(f"{path}: metric and ebops must be finite numbers, got {entry!r}")
    return sorted(entries, key=lambda e: e["ebops"])


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


STEP_COLUMNS = ("step", "epoch")
# The long format AdaQATController writes: one row per bit-width update.
LONG_COLUMNS = {"step", "layer", "kind", "bits"}

Trajectories = dict[str, tuple[list[float], list[float]]]


def _wide_rows(rows: list[dict], columns: list[str]) -> Trajectories:
    step_column = next((c for c in STEP_COLUMNS if c in columns), None)
    steps = [float(row[step_column]) for row in rows] if step_column else [float(s) for s in range(len(rows))]
    return {c: (steps, [float(row[c]) for row in rows]) for c in columns if c not in STEP_COLUMNS}


def _long_rows(rows: list[dict]) -> Trajectories:
    series: Trajectories = {}
    for row in rows:
        steps, values = series.setdefault(f"{row['layer']} N_{row['kind']}", ([], []))
        steps.append(float(row["step"]))
        values.append(float(row["bits"]))
    return series


def load_trajectories(source) -> Trajectories:
    """AdaQAT bit-width trajectories as ``{name: (steps, N values)}``.

    ``source`` is a dict ``{name: [N per step]}`` (or ``{name: (steps, values)}``), or a CSV:
    either wide (one column per bit-width, one row per logged step, optional ``step`` or
    ``epoch`` column) or the long format AdaQATController writes (step, layer, kind, bits).
    """
    if isinstance(source, dict):
        trajectories = {}
        for name, values in source.items():
            if isinstance(values, tuple) and len(values) == 2:
                steps, values = values
            else:
                steps = range(len(values))
            trajectories[str(name)] = ([float(s) for s in steps], [float(v) for v in values])
    else:
        trajectories = _read_trajectory_csv(Path(source))
    if not trajectories or not any(values for _, values in trajectories.values()):
        raise DataError("the bit-width trajectories are empty; log at least one step per layer")
    return trajectories


def _read_trajectory_csv(path: Path) -> Trajectories:
    """A wide or long AdaQAT CSV (see load_trajectories); DataError if missing, empty or not numeric."""
    if not path.is_file():
        raise DataError(f"no bit-width log at {path}; pass a CSV with one column per layer bit-width")
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"cannot read the bit-width log {path} ({type(error).__name__}: {error})") from error
    if not columns or not rows:
        raise DataError(f"the bit-width log {path} is empty; it needs a header and one row per logged step")
    try:
        return _long_rows(rows) if LONG_COLUMNS <= set(columns) else _wide_rows(rows, columns)
    except (ValueError, TypeError) as error:  # a non-numeric cell, or a short row (None)
        raise DataError(f"the bit-width log {path} holds a non-numeric or missing value ({error}); expected "
                        f"the long columns {sorted(LONG_COLUMNS)} or one numeric column per bit-width") from error
