"""Callbacks that keep exact EBOPs honest: fresh activation ranges and an ``ebops`` log entry.

Exact EBOPs depend on the activation ranges (they fix integer bits). Ranges recorded in
training only grow, so ``ResetRanges`` clears them at every epoch start (as HGQ does);
they then follow the current weights, and the EBOPs read at epoch end describe them.
"""

from __future__ import annotations

import keras

from ..calibration import activation_quantizers
from ..cost import ebops

LOG_KEY = "ebops"


def exact_ebops_in_logs(model, logs) -> int:
    """The epoch's exact EBOPs: taken from ``logs`` if a metric callback wrote it, else computed and written.

    Every callback reads the same number, so Pareto points and the PID error agree with the printed metric.
    """
    if logs is not None and LOG_KEY in logs:
        return int(logs[LOG_KEY])
    value = ebops(model)
    if logs is not None:
        logs[LOG_KEY] = value
    return value


class EBOPsMetric(keras.callbacks.Callback):
    """Writes the exact integer EBOPs into the epoch logs as ``"ebops"`` (shown by fit's progress bar)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs[LOG_KEY] = ebops(self.model)


class ResetRanges(keras.callbacks.Callback):
    """Clears every activation quantizer's recorded range at the start of each epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        for quantizer in activation_quantizers(self.model):
            quantizer.reset_range()
