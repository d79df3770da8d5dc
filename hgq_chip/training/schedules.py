"""Beta schedules: how strongly EBOPs weigh in the loss as training goes on.

Every schedule is a piecewise function of the (fractional) epoch: between two knots
(epoch, beta) it interpolates linearly, geometrically ("log": linear in log beta) or
holds the left value ("step"); before the first knot and after the last it is constant.
The schedule sets beta on every quantized layer (``hgq_chip.cost.set_beta``) at the
start of each epoch, or of each batch with ``per_batch=True``, and writes the beta in
effect into the epoch logs as ``"beta"``.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from ..cost import set_beta

INTERPOLATIONS = ("linear", "log", "step")


class PiecewiseBeta(keras.callbacks.Callback):
    """Beta from knots ``[(epoch, beta), ...]`` (epochs counted from 0, increasing).

    ``interpolation="log"`` needs every beta > 0; ``"step"`` keeps each knot's beta
    until the next knot. With ``per_batch=True`` beta moves smoothly within an epoch
    (epoch + batch / steps_per_epoch).
    """

    def __init__(self, knots, interpolation: str = "log", per_batch: bool = False):
        super().__init__()
        knots = [(float(e), float(b)) for e, b in knots]
        if not knots:
            raise ValueError("PiecewiseBeta needs at least one (epoch, beta) knot")
        epochs = [e for e, _ in knots]
        if any(b2 <= b1 for b1, b2 in zip(epochs, epochs[1:])):
            raise ValueError(f"knot epochs must increase strictly, got {epochs}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
        betas = [b for _, b in knots]
        if any(b < 0 or not math.isfinite(b) for b in betas):
            raise ValueError(f"beta must be finite and >= 0, got {betas}")
        if interpolation == "log" and any(b <= 0 for b in betas):
            raise ValueError("log interpolation needs every beta > 0; use 'linear' or 'step' to reach 0")
        self.knots = knots
        self.interpolation = interpolation
        self.per_batch = bool(per_batch)
        self.current_beta = None
        self._epoch = 0

    def beta_at(self, epoch: float) -> float:
        epochs = np.array([e for e, _ in self.knots])
        betas = np.array([b for _, b in self.knots])
        if self.interpolation == "step":
            index = max(int(np.searchsorted(epochs, epoch, side="right")) - 1, 0)
            return float(betas[index])
        if self.interpolation == "log":
            return float(np.exp(np.interp(epoch, epochs, np.log(betas))))
        return float(np.interp(epoch, epochs, betas))

    def _apply(self, epoch: float) -> None:
        self.current_beta = self.beta_at(epoch)
        set_beta(self.model, self.current_beta)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._apply(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        if self.per_batch:
            steps = (self.params or {}).get("steps") or 1
            self._apply(self._epoch + batch / steps)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.current_beta is not None:
            logs["beta"] = self.current_beta


class ConstantBeta(PiecewiseBeta):
    """The same beta for the whole training."""

    def __init__(self, beta: float):
        super().__init__([(0, beta)], interpolation="step")


class _RampBeta(PiecewiseBeta):
    """beta0 at epoch ``start`` to beta1 at epoch ``stop``; ``stop=None``: the fit's last epoch
    (``params["epochs"] - 1``, read when training begins), so the ramp spans the whole ``fit``."""

    def __init__(self, beta0, beta1, stop, start, per_batch, interpolation):
        start = float(start)
        super().__init__([(start, beta0), (start + 1 if stop is None else stop, beta1)],
                         interpolation=interpolation, per_batch=per_batch)
        self.ramp_to_last_epoch = stop is None
        self._ends = self.knots  # (start, beta0), (stop or a placeholder, beta1), as checked above

    def on_train_begin(self, logs=None):
        if self.ramp_to_last_epoch:
            (start, beta0), (_, beta1) = self._ends
            last = float((self.params or {}).get("epochs") or 1) - 1
            self.knots = [(start, beta0), (last, beta1)] if last > start else [(start, beta0)]


class LinearBeta(_RampBeta):
    """beta0 at epoch ``start`` to beta1 at epoch ``stop`` (default: the fit's last epoch),
    linearly; constant outside."""

    def __init__(self, beta0: float, beta1: float, stop: float | None = None, start: float = 0,
                 per_batch: bool = False):
        super().__init__(beta0, beta1, stop, start, per_batch, "linear")


class LogRampBeta(_RampBeta):
    """beta0 at epoch ``start`` to beta1 at epoch ``stop``, geometrically; constant outside.

    E.g. ``LogRampBeta(1e-6, 1e-4)`` (``stop`` left out: the fit's last epoch, ``epochs - 1``)
    multiplies beta by the same factor each epoch of the whole ``fit``, HGQ2's schedule; with
    ``stop=0.8 * epochs`` beta holds at ``beta1`` for the last fifth.
    """

    def __init__(self, beta0: float, beta1: float, stop: float | None = None, start: float = 0,
                 per_batch: bool = False):
        super().__init__(beta0, beta1, stop, start, per_batch, "log")
