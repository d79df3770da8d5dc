"""AdaQATController: learns every AdaQAT layer's bit-widths N_w, N_a by finite differences (seed 000).

Every ``every`` training steps, on one batch:

    g_N = L(⌈N⌉) − L(⌈N⌉ − 1)  +  λ · ∂BitOPs/∂N,        N ← clip(N − lr · g_N)

L is the task loss in inference mode (no dropout or range recording, so the difference
measures only the bit); the lowered forward sets that one N to ⌈N⌉ − 1 and restores it.
All gradients come from the same unchanged model, then all N move together. BitOPs =
Σ MACs·⌈N_w⌉·⌈N_a⌉ and its derivative uses the real N (the paper's choice).

Oscillation (the paper's Figure 1): when, within the last ``window`` updates, ⌈N⌉ took
exactly two neighbouring values and changed at least ``min_flips`` times, N is frozen
at the larger value for the rest of training.

The batch: as a Keras callback the controller cannot see fit's batch, so it draws one of
``batch_size`` samples from ``data``; in a custom loop call ``update(x, y)`` with the
batch just trained on. ``x`` and ``y`` may be lists or dicts of arrays (models with
several inputs or outputs), as ``fit`` takes them. Every update is logged in ``trajectory`` (and ``csv_path``); the
epoch logs (hence History) get ``adaqat/<layer>/w``, ``adaqat/<layer>/a`` (⌈N⌉) and
``bitops``.
"""

from __future__ import annotations

import csv
import os

import keras
import numpy as np

from ..errors import DataError
from ..model_walk import adaqat_layers

CSV_FIELDS = ("step", "layer", "kind", "bits", "ceil", "frozen", "task_gradient", "cost_gradient")


def history_key(layer_name: str, kind: str) -> str:
    return f"adaqat/{layer_name}/{kind}"


def total_bitops(model) -> int:
    """Σ MACs·⌈N_w⌉·⌈N_a⌉ over the model's AdaQAT layers."""
    return int(sum(layer.bitops() for layer in adaqat_layers(model)))


def _as_arrays(data, what: str):
    """``data`` (an array, or a list/dict of arrays) as NumPy arrays of one common length."""
    arrays = keras.tree.map_structure(np.asarray, data)
    lengths = {len(a) if a.ndim else None for a in keras.tree.flatten(arrays)}
    if len(lengths) != 1 or None in lengths:
        raise DataError(f"AdaQATController data: the arrays of {what} need one common number of samples, got {lengths}")
    return arrays, lengths.pop()


def per_output_losses(loss, n_outputs: int, output_names) -> list:
    """One loss function per model output from a compile-style ``loss`` (one, a list, or a dict by output name)."""
    if isinstance(loss, dict):
        missing = [name for name in output_names if name not in loss]
        if missing:
            raise ValueError(f"AdaQATController: the loss dict has no entry for output(s) {missing}")
        loss = [loss[name] for name in output_names]
    losses = list(loss) if isinstance(loss, (list, tuple)) else [loss] * n_outputs
    if len(losses) != n_outputs:
        raise ValueError(f"AdaQATController: {len(losses)} losses for a model with {n_outputs} outputs")
    return [keras.losses.get(l) if isinstance(l, (str, dict)) else l for l in losses]


def oscillating(ceils, window: int, min_flips: int) -> bool:
    """Whether the last ``window`` values alternate between two neighbours, flipping >= min_flips times."""
    recent = list(ceils)[-window:]
    if len(set(recent)) != 2 or max(recent) - min(recent) != 1:
        return False
    flips = sum(1 for a, b in zip(recent, recent[1:]) if a != b)
    return flips >= min_flips


class AdaQATController(keras.callbacks.Callback):
    """Finite-difference bit-width training for AdaQAT layers (use as a ``fit`` callback).

    Args:
        data: ``(x, y)`` to draw the update batches from (usually the training set); may
            be None when ``update`` is called from a custom loop.
        lam: weight λ of BitOPs in the bit-width gradient, or ``"beta"`` to use each
            layer's ``beta`` (then HGQ beta schedules drive AdaQAT too: one EBOPs cost).
        lr: learning rate of N.
        every: update every this many training steps (K).
        batch_size: size of the drawn batch.
        window, min_flips: oscillation detection (see module docstring).
        start_step: no update before this many steps (let weights settle first).
        loss: task loss ``loss(y_true, y_pred)``; default: the compiled model's loss.
        csv_path: append one row per bit-width per update.
    """

    def __init__(self, data=None, lam=0.0, lr=1.0, every=10, batch_size=256, window=12, min_flips=3,
                 start_step=0, loss=None, csv_path=None, seed=0):
        super().__init__()
        if not (lam == "beta" or (isinstance(lam, (int, float)) and lam >= 0)):
            raise ValueError(f"lam must be a number >= 0 or 'beta', got {lam!r}")
        if every < 1 or batch_size < 1 or window < 2 or min_flips < 1:
            raise ValueError("every and batch_size must be >= 1, window >= 2, min_flips >= 1")
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        self.data = None
        self.n_samples = 0
        if data is not None:
            (x, n_x), (y, n_y) = _as_arrays(data[0], "x"), _as_arrays(data[1], "y")
            if n_x != n_y:
                raise DataError(f"AdaQATController data: x has {n_x} samples but y has {n_y}")
            self.data, self.n_samples = (x, y), n_x
        self.lam = lam
        self.lr = float(lr)
        self.every = int(every)
        self.batch_size = int(batch_size)
        self.window = int(window)
        self.min_flips = int(min_flips)
        self.start_step = int(start_step)
        self.loss = loss
        self.csv_path = csv_path
        self.rng = np.random.default_rng(seed)
        self.step = 0
        self.updates = 0
        self.trajectory: list[dict] = []
        self._ceils: dict[tuple, list[int]] = {}
        if csv_path and os.path.exists(csv_path):
            os.remove(csv_path)  # one run per file: trajectories of two runs must not interleave

    # -- the algorithm ---------------------------------------------------------------
    def task_loss(self, x, y) -> float:
        """The task loss of the model's current prediction on (x, y), summed over outputs (no cost term).

        Uses ``loss`` or else the compiled one (one loss, a list, or a dict by output
        name); compile's ``loss_weights`` are not seen, so pass a weighting ``loss=`` if
        the outputs must count differently.
        """
        loss = self.loss or self.model.loss
        if loss is None:
            raise ValueError("AdaQATController needs a task loss: compile the model with one or pass loss=")
        prediction = self.model.predict_on_batch(x)
        if self.loss is not None and callable(self.loss):
            return float(np.asarray(keras.ops.convert_to_numpy(self.loss(y, prediction))).mean())
        if isinstance(prediction, dict):
            names = sorted(prediction)
            predictions = [prediction[name] for name in names]
        else:
            predictions = keras.tree.flatten(prediction)
            names = list(getattr(self.model, "output_names", None) or range(len(predictions)))
        targets = [y[name] for name in names] if isinstance(y, dict) else keras.tree.flatten(y)
        if len(targets) != len(predictions):
            raise DataError(f"AdaQATController: y holds {len(targets)} arrays for a model with {len(predictions)} outputs")
        total = 0.0
        for fn, target, output in zip(per_output_losses(loss, len(predictions), names), targets, predictions):
            if fn is not None:  # compile allows None for an output without a loss
                total += float(np.asarray(keras.ops.convert_to_numpy(fn(target, output))).mean())
        return total

    def finite_difference(self, quantizer, x, y, base_loss: float) -> float:
        """L(⌈N⌉) − L(⌈N⌉ − 1) with only this quantizer lowered; 0 at its minimum width."""
        ceil = quantizer.ceil_bits()
        if ceil <= quantizer.min_bits:
            return 0.0
        saved = quantizer.bits.numpy()
        quantizer.bits.assign(float(ceil - 1))
        try:
            lowered = self.task_loss(x, y)
        finally:
            quantizer.bits.assign(saved)
        return base_loss - lowered

    def _lam(self, layer) -> float:
        return float(layer.beta.numpy()) if self.lam == "beta" else float(self.lam)

    def update(self, x, y) -> None:
        """One bit-width step for every unfrozen AdaQAT bit-width, measured on (x, y)."""
        layers = adaqat_layers(self.model)
        if not layers:
            raise ValueError("the model has no AdaQAT layers (ADense, AConv1D, AConv2D) for AdaQATController")
        base = self.task_loss(x, y)
        steps = []
        for layer in layers:
            cost = layer.bitops_gradient()
            for kind, quantizer in (("w", layer.kq), ("a", layer.iq)):
                if quantizer.is_frozen:
                    steps.append((layer, kind, quantizer, 0.0, 0.0))
                    continue
                task = self.finite_difference(quantizer, x, y, base)
                steps.append((layer, kind, quantizer, task, self._lam(layer) * cost[kind]))
        self.updates += 1
        for layer, kind, quantizer, task, cost in steps:
            if not quantizer.is_frozen:
                quantizer.set_bits(float(quantizer.bits.numpy()) - self.lr * (task + cost))
                self._check_oscillation(layer, kind, quantizer)
            self._log(layer, kind, quantizer, task, cost)

    def _check_oscillation(self, layer, kind, quantizer) -> None:
        ceils = self._ceils.setdefault((layer.name, kind), [])
        ceils.append(quantizer.ceil_bits())
        if oscillating(ceils, self.window, self.min_flips):
            quantizer.set_bits(float(max(ceils[-self.window:])))
            quantizer.frozen.assign(1.0)

    def _log(self, layer, kind, quantizer, task, cost) -> None:
        row = {"step": self.step, "layer": layer.name, "kind": kind, "bits": float(quantizer.bits.numpy()),
               "ceil": quantizer.ceil_bits(), "frozen": int(quantizer.is_frozen), "task_gradient": task,
               "cost_gradient": cost}
        self.trajectory.append(row)
        if self.csv_path:
            new = not os.path.exists(self.csv_path)
            with open(self.csv_path, "a", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
                if new:
                    writer.writeheader()
                writer.writerow(row)

    def frozen(self) -> dict[str, dict[str, bool]]:
        return {l.name: {"w": l.kq.is_frozen, "a": l.iq.is_frozen} for l in adaqat_layers(self.model)}

    # -- Keras callback hooks ----------------------------------------------------------
    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.data is None or self.step < self.start_step or self.step % self.every:
            return
        pick = self.rng.choice(self.n_samples, size=min(self.batch_size, self.n_samples), replace=False)
        x, y = keras.tree.map_structure(lambda a: a[pick], self.data)
        self.update(x, y)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for layer in adaqat_layers(self.model):
            logs[history_key(layer.name, "w")] = layer.kq.ceil_bits()
            logs[history_key(layer.name, "a")] = layer.iq.ceil_bits()
        logs["bitops"] = total_bitops(self.model)
