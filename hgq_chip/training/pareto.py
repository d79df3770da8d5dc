"""Pareto-front checkpoints over (validation metric, exact EBOPs).

An epoch joins the front when no kept epoch is at least as good in both numbers; kept
epochs it dominates leave the front and their files are deleted. Each member is saved
as ``epoch=<e>-<metric>=<value>-ebops=<n>.keras`` and listed in ``pareto.json``
(``[{path, epoch, metric, ebops}]``, sorted by EBOPs) so the front can be read back
without loading models.

Saving a ``.keras`` file takes tens of milliseconds of Python, as long as a whole epoch of
a small model, and in a falling-EBOPs run nearly every epoch joins the front, most of them
only until a later epoch beats them. So the epoch end only copies the weights of a new
member; every ``write_every`` epochs (and when ``fit`` ends) one background thread writes
the members still on the front through a clone of the model and deletes the files of
those that left it. ``fit`` returns after the last file is written. Files hold the model
(architecture, weights, ranges, f), not the optimizer state. The clone is rebuilt from the
model's config, so custom layers must be registered (as loading the files needs anyway).
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import Future, ThreadPoolExecutor

import keras

from ..errors import OutputExistsError, UnsafeOutputError
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

    def __init__(self, directory: str, monitor: str = "val_accuracy", mode: str = "max", resume: bool = False,
                 write_every: int = 10):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if int(write_every) < 1:
            raise ValueError(f"write_every must be >= 1 epoch, got {write_every}")
        self.directory = str(directory)
        self.monitor = monitor
        self.mode = mode
        self.resume = bool(resume)
        self.write_every = int(write_every)
        self.front: list[dict] = []
        self._writer: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []
        self._unwritten: dict[str, list] = {}  # path -> weights of members not yet on disk
        self._stale: list[str] = []  # files of members that left the front
        self._clone = None

    @property
    def index_path(self) -> str:
        return os.path.join(self.directory, INDEX_NAME)

    def on_train_begin(self, logs=None):
        if os.path.lexists(self.directory) and not os.path.isdir(self.directory):
            raise UnsafeOutputError(f"ParetoCheckpoint directory {self.directory} is a file; name a folder")
        os.makedirs(self.directory, exist_ok=True)
        # Rebuilt from its serialized form, as loading a saved file would: same layer names.
        self._clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(self.model))
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pareto-checkpoint")
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
        self._raise_write_errors()
        if math.isfinite(metric):
            self._consider({"epoch": int(epoch), "metric": metric, "ebops": exact_ebops_in_logs(self.model, logs)})
        if (epoch + 1) % self.write_every == 0:
            self._flush()

    def _consider(self, candidate: dict) -> None:
        """Add the epoch to the front (weights copied, written later) unless a member dominates it."""
        if any(dominates(member, candidate, self.mode) for member in self.front):
            return
        candidate["path"] = os.path.join(self.directory, self._file_name(candidate))
        for member in [m for m in self.front if dominates(candidate, m, self.mode)]:
            self.front.remove(member)
            if self._unwritten.pop(member["path"], None) is None:
                self._stale.append(member["path"])
        self.front.append(candidate)
        self.front.sort(key=lambda m: m["ebops"])
        self._unwritten[candidate["path"]] = self.model.get_weights()

    def on_train_end(self, logs=None):
        self._flush()
        self.wait()

    def _flush(self) -> None:
        """Queue the writes of the unwritten members, the deletion of stale files and the index."""
        if self._writer is None or not (self._unwritten or self._stale):
            return
        job = (dict(self._unwritten), list(self._stale), self._records())
        self._unwritten.clear()
        self._stale.clear()
        self._pending.append(self._writer.submit(self._write, *job))

    def wait(self) -> None:
        """Block until every file and the index are written; re-raise a failed write."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        self._raise_write_errors()

    def _raise_write_errors(self) -> None:
        done = [future for future in self._pending if future.done()]
        self._pending = [future for future in self._pending if not future.done()]
        for future in done:
            future.result()

    def _write(self, members: dict[str, list], stale: list[str], records: list[dict]) -> None:
        from ..atomic_write import write_atomically

        for path, weights in members.items():
            self._clone.set_weights(weights)
            write_atomically(path, self._clone.save, suffix=".keras")  # a killed fit leaves no half file
        for old in stale:
            if self._is_own_checkpoint(old) and os.path.isfile(old):
                os.remove(old)
        self._write_index(records)

    def _is_own_checkpoint(self, path: str) -> bool:
        """Only ``epoch=...-ebops=N.keras`` files directly in ``directory`` are ever deleted (a
        ``pareto.json`` edited by hand, or from elsewhere, cannot make it delete other files)."""
        name = os.path.basename(path)
        return (os.path.realpath(os.path.dirname(path)) == os.path.realpath(self.directory)
                and name.startswith("epoch=") and "-ebops=" in name and name.endswith(".keras"))

    def _file_name(self, member: dict) -> str:
        name = self.monitor.replace("/", "_")
        return f"epoch={member['epoch']:04d}-{name}={member['metric']:.6f}-ebops={member['ebops']}.keras"

    def _records(self) -> list[dict]:
        return [{"path": m["path"], "epoch": m["epoch"], "metric": m["metric"], "ebops": m["ebops"]} for m in self.front]

    def _write_index(self, records: list[dict]) -> None:
        temporary = self.index_path + ".tmp"
        with open(temporary, "w") as handle:
            json.dump(records, handle, indent=1)
        os.replace(temporary, self.index_path)
