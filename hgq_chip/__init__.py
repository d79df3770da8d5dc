"""hgq_chip: Keras models to FPGA firmware with exactly as many bits as the task needs.

The names below mirror the CLI and are imported on first use, so that commands which do
not need Keras (``hgq_chip estimate DIR``) start without loading it.
"""

from . import _keras_registration
from ._lazy import lazy_exports
from ._version import __version__

_EXPORTS = {
    "calibrate": ".calibration",
    "convert": ".api",
    "ebops": ".cost",
    "estimate": ".estimation",
    "from_qkeras": ".qkeras_import",
    "input_ranges": ".api",
    "load_model": ".api",
    "random_batches": ".api",
    "random_inputs": ".api",
    "rtl": ".api",
    "sweep": ".sweeps",
    "synth": ".estimation.synth",
    "verify": ".api",
    "write_report": ".report",
}

_SUBMODULES = ("training",)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _SUBMODULES)

# keras.saving.load_model("m.keras") works after `import hgq_chip` (see _keras_registration).
_keras_registration.install()

__all__ = ["__version__", *_SUBMODULES, *sorted(_EXPORTS)]
