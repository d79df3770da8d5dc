"""Importing QKeras models: same weights, initial bit-widths equal to the QKeras quantizers.

QKeras needs Keras 2, so the saved model is read in a child process (``legacy_reader``);
this process only builds the Keras 3 model from the plain description it returns.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "describe_qkeras": ".legacy_process",
    "from_qkeras": ".loading",
    "model_from_description": ".loading",
    "qkeras_predict": ".legacy_process",
    "qkeras_problem": ".legacy_process",
    "run_legacy_python": ".legacy_process",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
