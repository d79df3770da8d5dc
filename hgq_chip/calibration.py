"""Range tracing: the integer bits of every activation come from the ranges recorded here."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from .errors import CalibrationError, DataError
from .input_data import check_inputs, input_specs
from .model_walk import iter_quantizers

WHAT = "calibration data"


def activation_quantizers(model):
    return [q for q in iter_quantizers(model) if hasattr(q, "record_range")]


def _is_batch_source(x) -> bool:
    """True for tf.data.Dataset, generators and other iterables of batches (not arrays, lists, dicts)."""
    if isinstance(x, (np.ndarray, list, tuple, dict, str, bytes)) or hasattr(x, "shape"):
        return False
    return isinstance(x, (Iterable, Iterator))


def _batch_inputs(batch):
    """The ``x`` of one batch: Keras' convention, a tuple is ``(x, y)`` or ``(x, y, sample_weight)``."""
    if isinstance(batch, tuple) and len(batch) in (1, 2, 3):
        return batch[0]
    return batch


def _array_batches(arrays: list[np.ndarray], batch_size: int):
    n = len(arrays[0])
    for start in range(0, n, batch_size):
        yield [a[start : start + batch_size] for a in arrays]


def _checked_batches(source, specs):
    """Each batch of an iterable source, checked as it arrives; DataError for a bad or missing batch."""
    seen = 0
    for number, batch in enumerate(source):
        arrays = check_inputs(_batch_inputs(batch), specs, f"{WHAT} (batch {number})")
        seen += len(arrays[0])
        yield arrays
    if not seen:
        raise DataError(f"{WHAT}: the batch source yielded no batches; pass the training (or a representative) set")


def _call_structure(model, specs):
    """How the model was built to be called: "list", "dict" (name -> tensor) or "single" (Keras warns otherwise)."""
    try:
        structure = model.input
    except (AttributeError, ValueError):  # an unbuilt Sequential or subclassed model
        structure = None
    if isinstance(structure, dict) and specs is not None:
        names = [name for name, _ in specs]
        return {key: names.index(str(tensor.name)) for key, tensor in structure.items()}
    return "list" if isinstance(structure, (list, tuple)) else "single"


def _model_input(structure, batch: list):
    if isinstance(structure, dict):
        return {key: batch[index] for key, index in structure.items()}
    if structure == "list" or len(batch) > 1:
        return batch
    return batch[0]


def _range_variables(quantizers) -> list:
    return [v for q in quantizers for v in (q.range_lo, q.range_hi, q.range_seen)]


def calibrate(model, x, batch_size: int = 1024):
    """Reset every activation range and trace new ones from ``x`` (inference mode).

    ``x``: a NumPy array (samples first) for a one-input model; a list of arrays (one
    per input, in ``model.inputs`` order) or a dict keyed by input name for several;
    or a ``tf.data.Dataset``, generator or other iterable of batches, each ``x`` or an
    ``(x, y[, sample_weight])`` tuple as in ``model.fit``. Arrays are checked (number of
    inputs, per-sample shape against the model's, numeric dtype, not empty, finite)
    before any range is touched; batches from an iterable are checked as they arrive.

    Raises DataError for bad data and CalibrationError for a model without activation
    quantizers. On any failure (including an exception or Ctrl-C in the middle of the
    batch loop) every range is restored to its value before the call. Returns the model,
    whose activation quantizers then hold the min/max seen on ``x``, and whose function
    tables (``layers/tables.py``) are recomputed for the new formats.
    """
    if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
    quantizers = activation_quantizers(model)
    if not quantizers:
        raise CalibrationError("the model has no hgq_chip activation quantizers to calibrate")
    specs = input_specs(model)
    structure = _call_structure(model, specs)
    if _is_batch_source(x):
        batches = _checked_batches(x, specs)
    else:
        batches = _array_batches(check_inputs(x, specs, WHAT), batch_size)
    variables = _range_variables(quantizers)
    saved = [np.array(v.numpy()) for v in variables]
    for q in quantizers:
        q.reset_range()
        q.calibrating = True
    try:
        for batch in batches:
            model(_model_input(structure, batch), training=False)
    except BaseException:
        for variable, value in zip(variables, saved):
            variable.assign(value)
        raise
    finally:
        for q in quantizers:
            q.calibrating = False
    # The function tables follow the new formats.
    from .layers.tables import refresh_tables

    refresh_tables(model)
    return model


def uncalibrated_quantizers(model) -> list[str]:
    """Paths of activation quantizers that never recorded a range."""
    return [q.path for q in activation_quantizers(model) if not q.calibrated]
