"""The global Pareto front of a sweep: every finished trial's ParetoCheckpoint members merged.

A member is kept when no other member is at least as good in validation accuracy (higher)
and exact EBOPs (lower) and better in one; exact ties keep the first trial's. The front is
written to ``OUT/front.json`` atomically (``atomic_write``), so a killed sweep leaves the
previous complete file. Fan-out results (``fanout.py``) are stored in the members' rows and
kept across merges, keyed by the checkpoint's path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..atomic_write import write_atomically
from ..report.sweep import FRONT_NAME, read_front
from .trial import PARETO_DIR, trial_dir

PENDING = "pending"


def trial_members(out, trial_id: str, params: dict) -> list[dict]:
    """The ParetoCheckpoint members of one finished trial (none if its index is missing)."""
    index = trial_dir(out, trial_id) / PARETO_DIR / "pareto.json"
    if not index.is_file():
        return []
    rows = json.loads(index.read_text())
    return [{"trial": trial_id, "params": params, "epoch": r["epoch"], "val_accuracy": r["metric"],
             "ebops": r["ebops"], "path": r["path"]} for r in rows if os.path.isfile(r["path"])]


def non_dominated(rows: list[dict]) -> list[dict]:
    """Rows no other row matches or beats in (val_accuracy up, ebops down), sorted by EBOPs."""
    front: list[dict] = []
    for row in sorted(rows, key=lambda r: (r["ebops"], -r["val_accuracy"], r["trial"], r["epoch"])):
        if not any(f["val_accuracy"] >= row["val_accuracy"] for f in front):
            front.append(row)  # cheaper rows came first: it is kept only if more accurate than all of them
    return front


def merge_front(out, trials: dict[str, dict], previous: list[dict] | None = None) -> list[dict]:
    """The front over ``trials`` (``{trial_id: params}`` of finished trials), with the fan-out
    results of ``previous`` rows that stay on it."""
    done = {row["path"]: row for row in previous or []}
    rows = [m for trial_id, params in sorted(trials.items()) for m in trial_members(out, trial_id, params)]
    front = non_dominated(rows)
    return [{**row, **{k: v for k, v in done.get(row["path"], {}).items() if k not in row}} for row in front]


def write_front(out, members: list[dict], header: dict) -> Path:
    """Write ``OUT/front.json`` (``{**header, "members": [...]}``) atomically; returns its path."""
    path = Path(out) / FRONT_NAME
    text = json.dumps({**header, "members": members}, indent=1, default=str)
    return write_atomically(path, lambda partial: Path(partial).write_text(text))


def previous_members(out) -> list[dict]:
    """The members of an earlier run's front.json (empty if there is none)."""
    path = Path(out) / FRONT_NAME
    return read_front(path)["members"] if path.is_file() else []
