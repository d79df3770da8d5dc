"""Reading what ``hgq_chip convert`` wrote (summary.json, weight_types.csv, hls_config.yml)
and what training wrote (pareto.json, AdaQAT bit-width logs), as plain Python data."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ..conversion.reports import CONFIG_FILE, SUMMARY_FILE, WEIGHTS_FILE
from ..errors import HGQChipError


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


def read_weight_bits(path: Path) -> list[WeightBits]:
    """weight_types.csv as arrays: each row's ``index`` ('i/j/...') places it in its tensor."""
    rows: dict[tuple[str, str], list[tuple[tuple[int, ...], int, int]]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            index = tuple(int(part) for part in row["index"].split("/")) if row["index"] else ()
            rows.setdefault((row["layer"], row["weight"]), []).append((index, int(row["bits"]), int(row["pruned"])))
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


def load_conversion(directory) -> Conversion:
    """The files a conversion wrote into ``directory``; raises HGQChipError if they are missing."""
    directory = Path(directory)
    missing = [name for name in (SUMMARY_FILE, WEIGHTS_FILE, CONFIG_FILE) if not (directory / name).is_file()]
    if missing:
        raise HGQChipError(
            f"{directory} lacks {', '.join(missing)}; pass a directory written by `hgq_chip convert`"
        )
    summary = json.loads((directory / SUMMARY_FILE).read_text())
    hls_config = yaml.safe_load((directory / CONFIG_FILE).read_text())
    return Conversion(directory, summary, hls_config, read_weight_bits(directory / WEIGHTS_FILE))


def load_pareto(source) -> list[dict]:
    """The Pareto front index (a pareto.json file or the directory holding it), sorted by EBOPs."""
    # Imported here: training.pareto imports Keras, which `hgq_chip report` does not need otherwise.
    from ..training.pareto import INDEX_NAME

    path = Path(source)
    if path.is_dir():
        path = path / INDEX_NAME
    if not path.is_file():
        raise HGQChipError(f"no Pareto index at {path}; pass the directory given to ParetoCheckpoint")
    entries = json.loads(path.read_text())
    if not isinstance(entries, list) or not all({"metric", "ebops"} <= set(e) for e in entries):
        raise HGQChipError(f"{path} is not a Pareto index (a list of {{path, epoch, metric, ebops}})")
    return sorted(entries, key=lambda e: e["ebops"])


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
        path = Path(source)
        if not path.is_file():
            raise HGQChipError(f"no bit-width log at {path}; pass a CSV with one column per layer bit-width")
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            rows = list(reader)
        trajectories = _long_rows(rows) if LONG_COLUMNS <= set(columns) else _wide_rows(rows, columns)
    if not trajectories or not any(values for _, values in trajectories.values()):
        raise HGQChipError("the bit-width trajectories are empty; log at least one step per layer")
    return trajectories
