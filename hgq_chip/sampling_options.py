"""Value checks of verify's sampling options (``random``, ``seed``, ``scale``, ``batch_size``).

One function serves the Python API (``hgq_chip.verify``, ``random_inputs``, ``random_batches``)
and the CLI (``hgq_chip verify --random/--seed/--scale/--batch-size``), so both refuse the same
values with the same error class: :class:`~hgq_chip.errors.UnsupportedConfigurationError`
(CLI exit code 5), naming the option as the caller spells it. No Keras is imported here, so the
CLI checks its options before it loads a model.
"""

from __future__ import annotations

import math
import numbers

from .errors import UnsupportedConfigurationError

# Samples per batch of verify: Keras and the C simulation run one batch at a time, so memory
# holds one batch of inputs and outputs (a few MB for MNIST-sized inputs), whatever the sample count.
VERIFY_BATCH = 8192

# The spellings of each option in the Python API and on the command line.
API_NAMES = {"random": "random", "seed": "seed", "scale": "scale", "batch_size": "batch_size"}
CLI_NAMES = {"random": "--random", "seed": "--seed", "scale": "--scale", "batch_size": "--batch-size"}


def _integer(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UnsupportedConfigurationError(f"{name} must be a whole number (at least {minimum}), got "
                                            f"{value!r} of type {type(value).__name__}")
    if value < minimum:
        raise UnsupportedConfigurationError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def check_sampling_options(random=None, seed=0, scale=4.0, batch_size=VERIFY_BATCH, names=API_NAMES) -> None:
    """UnsupportedConfigurationError unless ``random`` (samples; None = not used) and ``batch_size``
    (samples per batch) are integers >= 1, ``seed`` an integer >= 0 (NumPy's generators take no
    negative seed) and ``scale`` (range widening factor, dimensionless) a finite real number > 0.
    ``names`` maps each option to the name the message uses (``API_NAMES`` or ``CLI_NAMES``).
    Whether ``scale`` keeps the drawn values inside the input dtype depends on the model's
    ranges: :func:`check_sample_bounds`.
    """
    if random is not None:
        _integer(random, names["random"], 1)
    _integer(seed, names["seed"], 0)
    _integer(batch_size, names["batch_size"], 1)
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not (math.isfinite(scale) and scale > 0):
        raise UnsupportedConfigurationError(f"{names['scale']} must be a positive finite number, got {scale!r}")


def check_sample_bounds(index: int, centre, unit, dtype, scale: float, names=API_NAMES) -> None:
    """UnsupportedConfigurationError when the interval ``centre +- unit * scale`` (float64 arrays:
    input ``index``'s calibrated range, ``unit`` its half-width, widened ``scale`` times) reaches
    beyond the largest finite value of ``dtype`` (float32: 3.4e38): the drawn samples would round
    to infinity, which neither Keras nor the firmware computes with. The message names the
    largest scale that fits, ``min((limit - |centre|) / unit)`` over the elements, rounded down.
    """
    import numpy as np  # here, not at the top: the CLI imports this module before anything heavy

    limit = float(np.finfo(np.dtype(dtype)).max)
    centre, unit = np.abs(np.asarray(centre, np.float64)), np.asarray(unit, np.float64)
    if not centre.size:
        return
    with np.errstate(over="ignore", invalid="ignore"):
        reach = float(np.max(centre + unit * scale))
    if math.isfinite(reach) and reach <= limit:
        return
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        room = np.where(unit > 0, (limit - centre) / unit, np.inf)
    fits = float(np.min(room))
    advice = (f"use a scale of at most {float(f'{fits * 0.999:.3g}'):g}" if math.isfinite(fits) and fits > 0 else
              "the calibrated range itself is beyond it: calibrate the model on finite, smaller inputs")
    raise UnsupportedConfigurationError(
        f"{names['scale']} {scale:g} draws values of input {index} beyond {np.dtype(dtype).name}'s largest "
        f"number ({limit:.3g}), which would round to infinity; {advice} "
        "(the default 4 exercises saturation and wrap-around already)"
    )
