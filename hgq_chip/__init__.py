"""hgq_chip: Keras models to FPGA firmware with exactly as many bits as the task needs.

The names below mirror the CLI. ``convert`` and ``calibrate`` here are functions; their
modules stay importable as ``hgq_chip.convert.<module>`` and ``hgq_chip.calibrate``.
"""

import os

# TensorFlow prints start-up chatter to stderr unless told otherwise; a user's own
# setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ._version import __version__  # noqa: E402
from . import training  # noqa: E402
from .api import convert, input_ranges, load_model, random_inputs, verify  # noqa: E402
from .calibrate import calibrate  # noqa: E402
from .cost import ebops  # noqa: E402

__all__ = [
    "__version__",
    "calibrate",
    "convert",
    "ebops",
    "input_ranges",
    "load_model",
    "random_inputs",
    "training",
    "verify",
]
