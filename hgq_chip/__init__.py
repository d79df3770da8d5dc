"""hgq_chip: Keras models to FPGA firmware with exactly as many bits as the task needs.

The names below mirror the CLI. ``convert`` and ``calibrate`` here are functions; their
modules stay importable as ``hgq_chip.convert.<module>`` and ``hgq_chip.calibrate``.
"""

from ._version import __version__
from . import training
from .api import convert, input_ranges, load_model, random_inputs, verify
from .calibrate import calibrate
from .cost import ebops
from .estimate import estimate
from .estimate.synth import synth
from .qkeras_import import from_qkeras
from .report import write_report

__all__ = [
    "__version__",
    "calibrate",
    "convert",
    "ebops",
    "estimate",
    "from_qkeras",
    "input_ranges",
    "load_model",
    "random_inputs",
    "synth",
    "training",
    "verify",
    "write_report",
]
