"""Pareto-front checkpoints over (validation metric, exact EBOPs).

An epoch joins the front when no kept epoch is at least as good in both numbers; kept
epochs it dominates leave the front and their files are deleted. Each member is saved
as ``epoch=<e>-<metric>=<value>-ebops=<n>.keras`` and listed in ``pareto.json``
(``[{path, epoch, metric, ebops}]``, sorted by EBOPs) so the front can be read back
without loading models.
"""

from __future__ import annotations

import json
import math
import os

import keras

from ..errors import OutputExistsError
from .ebops import exact_ebops_in_logs

INDEX_NAME = "pareto.json"


def dominates(a: dict, b: dict, mode: str) -> bool:
    """a is at least as good as b in both metric and EBOPs (ties count as dominating)."""
    better_metric = a["metric"] >= b["metric"] if mode == "max" else a["metric"] <= b["metric"]
    return better_metric and a["ebops"] <= b["ebops"]


class ParetoCheckpoint(keras.callbacks.Callback):
    """Keep the non-dominated (``monitor``, EBOPs) epochs as ``.keras`` files in ``directory``.

    EBOPs come from the logs (written by :class:`~hgq_chip.training.EBOPsMetric` placed
    before this callback) or are computed here, so every number is the exact integer.
    """

    def __init__(self, directory: str, monitor: str = "val_accuracy", mode: str = "max", resume: bool = False):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.directory = str(directory)
        self.monitor = monitor
        self.mode = mode
        self.resume = bool(resume)
        self.front: list[dict] = []

    @property
    def index_path(self) -> str:
        return os.path.join(self.directory, INDEX_NAME)

    def on_train_begin(self, logs=None):
        os.makedirs(self.directory, exist_ok=True)
        if self.front or not os.path.isfile(self.index_path):
            return  # fresh directory, or a later fit with this same callback: keep its front
        if not self.resume:
            raise OutputExistsError(
                f"{self.index_path} exists from an earlier run; pass resume=True to extend that front "
                "or choose an empty directory"
            )
        with open(self.index_path) as handle:
            self.front = [m for m in json.load(handle) if os.path.isfile(m["path"])]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if self.monitor not in logs:
            raise KeyError(
                f"ParetoCheckpoint monitors {self.monitor!r} but the logs hold {sorted(logs)}; "
                "pass validation_data to fit or choose another monitor"
            )
        metric = float(logs[self.monitor])
        if not math.isfinite(metric):
            return
        candidate = {"epoch": int(epoch), "metric": metric, "ebops": exact_ebops_in_logs(self.model, logs)}
        if any(dominates(member, candidate, self.mode) for member in self.front):
            return
        candidate["path"] = os.path.join(self.directory, self._file_name(candidate))
        self.model.save(candidate["path"])
        for member in [m for m in self.front if dominates(candidate, m, self.mode)]:
            self.front.remove(member)
            if os.path.isfile(member["path"]):
                os.remove(member["path"])
        self.front.append(candidate)
        self.front.sort(key=lambda m: m["ebops"])
        self._write_index()

    def _file_name(self, member: dict) -> str:
        name = self.monitor.replace("/", "_")
        return f"epoch={member['epoch']:04d}-{name}={member['metric']:.6f}-ebops={member['ebops']}.keras"

    def _write_index(self) -> None:
        records = [{"path": m["path"], "epoch": m["epoch"], "metric": m["metric"], "ebops": m["ebops"]} for m in self.front]
        temporary = self.index_path + ".tmp"
        with open(temporary, "w") as handle:
            json.dump(records, handle, indent=1)
        os.replace(temporary, self.index_path)
