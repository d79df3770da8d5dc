"""Reading a saved ``.keras`` model with hgq_chip's layers registered.

It sits with ``model_walk`` and ``calibration`` (below ``conversion``, ``estimation`` and the
API), so every command that takes a model path loads it the same way and raises the same
error. Keras is imported inside :func:`load_model` only: importing this module stays light.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ModelFileError


def load_model(path):
    """The ``keras.Model`` saved at ``path`` (compiled state not restored: ``compile=False``).

    ``path``: a ``.keras`` file written by ``model.save``. hgq_chip's layers are imported (and
    so registered with Keras) first. Raises :class:`~hgq_chip.errors.ModelFileError` (exit 3)
    when the file is missing, unreadable or not a Keras model.
    """
    import keras

    from . import layers as _register_layers  # noqa: F401  (registers our classes for deserialization)

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {str(path)!r} not found; pass the path of a model saved with model.save('x.keras')")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # keras raises ValueError, OSError, zipfile errors, ... for bad files
        raise ModelFileError(
            f"cannot load {str(path)!r} as a Keras model ({type(error).__name__}: {str(error)[:300]}); "
            "save it with model.save('name.keras') after importing hgq_chip.layers"
        ) from error
