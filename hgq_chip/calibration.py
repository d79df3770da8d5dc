"""Range tracing: the integer bits of every activation come from the ranges recorded here."""

from __future__ import annotations

import numpy as np

from .errors import CalibrationError, NumericError
from .model_walk import iter_quantizers


def activation_quantizers(model):
    return [q for q in iter_quantizers(model) if hasattr(q, "record_range")]


def calibrate(model, x, batch_size: int = 1024):
    """Reset every activation range and trace new ones from ``x`` (inference mode).

    Returns the model, whose activation quantizers then hold the min/max seen on ``x``.
    """
    inputs = x if isinstance(x, (list, tuple)) else [x]
    inputs = [np.asarray(a) for a in inputs]
    for a in inputs:
        if a.size == 0:
            raise CalibrationError("calibration data is empty; pass the training (or a representative) set")
        if not np.all(np.isfinite(a)):
            raise NumericError("calibration data contains NaN or infinite values; clean it before calibrating")
    quantizers = activation_quantizers(model)
    if not quantizers:
        raise CalibrationError("the model has no hgq_chip activation quantizers to calibrate")
    for q in quantizers:
        q.reset_range()
        q.calibrating = True
    try:
        n = len(inputs[0])
        for start in range(0, n, batch_size):
            batch = [a[start : start + batch_size] for a in inputs]
            model(batch if len(batch) > 1 else batch[0], training=False)
    finally:
        for q in quantizers:
            q.calibrating = False
    return model


def uncalibrated_quantizers(model) -> list[str]:
    """Paths of activation quantizers that never recorded a range."""
    return [q.path for q in activation_quantizers(model) if not q.calibrated]
