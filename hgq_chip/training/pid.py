"""A PID controller on beta that steers the model's exact EBOPs toward a target.

Beta acts multiplicatively on the cost, so the controller works in log space:
``log(beta) = log(beta0) + kp*e + ki*sum(e) + kd*(e - e_prev)`` with the relative error
``e = (ebops - target) / target`` measured at each epoch end. Beta is clamped to
[beta_min, beta_max]; while clamped, the integral does not move further into the
clamp (conditional integration, against wind-up).
"""

from __future__ import annotations

import math

import keras

from ..cost import set_beta
from .ebops import exact_ebops_in_logs


class PIDBeta(keras.callbacks.Callback):
    """Adjust beta once per epoch so exact EBOPs approach ``target_ebops``.

    Place it after :class:`~hgq_chip.training.EBOPsMetric` (or alone: it then computes
    EBOPs itself and writes them to the logs). Logs ``"beta"`` (the beta used during the
    epoch that just ended) and sets the beta for the next epoch.
    """

    def __init__(self, target_ebops: float, beta0: float = 1e-6, kp: float = 1.0, ki: float = 0.1, kd: float = 0.0,
                 beta_min: float = 1e-9, beta_max: float = 1e-2):
        super().__init__()
        if target_ebops <= 0:
            raise ValueError(f"target_ebops must be > 0, got {target_ebops}")
        if not 0 < beta_min <= beta_max:
            raise ValueError(f"need 0 < beta_min <= beta_max, got {beta_min}, {beta_max}")
        self.target_ebops = float(target_ebops)
        self.kp, self.ki, self.kd = float(kp), float(ki), float(kd)
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)
        self.beta0 = self._clamp(float(beta0))
        self.beta = self.beta0
        self.integral = 0.0
        self.previous_error = None

    def _clamp(self, beta: float) -> float:
        return min(max(beta, self.beta_min), self.beta_max)

    def on_train_begin(self, logs=None):
        set_beta(self.model, self.beta)

    def update(self, ebops: float) -> float:
        """One controller step from the measured EBOPs; returns the new beta."""
        error = (ebops - self.target_ebops) / self.target_ebops
        derivative = 0.0 if self.previous_error is None else error - self.previous_error
        self.previous_error = error
        integral = self.integral + error
        log_beta = math.log(self.beta0) + self.kp * error + self.ki * integral + self.kd * derivative
        unclamped = math.exp(min(log_beta, 700.0))
        self.beta = self._clamp(unclamped)
        pushing_into_clamp = (unclamped > self.beta_max and error > 0) or (unclamped < self.beta_min and error < 0)
        if not pushing_into_clamp:
            self.integral = integral
        return self.beta

    def on_epoch_end(self, epoch, logs=None):
        used = self.beta
        self.update(exact_ebops_in_logs(self.model, logs))
        set_beta(self.model, self.beta)
        if logs is not None:
            logs["beta"] = used
