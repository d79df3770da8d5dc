"""Conversion to hls4ml firmware: precision derivation, handlers, project writing, verification.

Exports are lazy (see ``hgq_chip._lazy``): ``reports`` and the JSON readers are used by
Keras-free commands.
"""

from .._lazy import lazy_exports

_EXPORTS = {"Conversion": ".project", "VerifyReport": ".verification", "convert": ".project", "verify": ".verification"}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
