"""Reading a saved ``.keras`` model with hgq_chip's layers registered.

It sits with ``model_walk`` and ``calibration`` (below ``conversion``, ``estimation`` and the
API), so every command that takes a model path loads it the same way and raises the same
error. Keras is imported inside :func:`load_model` only: importing this module stays light.
"""

from __future__ import annotations

from pathlib import Path

from .errors import HGQChipError, ModelFileError


def typed_cause(error: BaseException) -> HGQChipError | None:
    """The hgq_chip error ``error`` was raised from, if any: Keras wraps what a layer's
    ``from_config``/``build`` raises while it deserializes a model (``TypeError``/``ValueError``
    with the original as ``__cause__``/``__context__``), but an UnsupportedConfigurationError
    there is the real cause, with its own exit code and advice."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, HGQChipError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def check_model_path(path) -> Path:
    """``path`` as a Path if it names a readable model file; else ModelFileError (exit 3). Needs no
    Keras, so the CLI runs it before importing TensorFlow and a typo fails in well under a second.
    A ``.keras`` file must be a zip archive (what ``model.save`` writes)."""
    import os
    import zipfile

    path = Path(path)
    if not path.is_file():
        where = " (it is a folder)" if path.is_dir() else ""
        raise ModelFileError(f"model file {str(path)!r} not found{where}; pass the path of a model saved with "
                             "model.save('x.keras')")
    if not os.access(path, os.R_OK):
        raise ModelFileError(f"cannot load {str(path)!r}: no permission to read it")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ModelFileError(f"cannot load {str(path)!r} as a Keras model: it is not a .keras archive (a zip file); "
                             "save it with model.save('name.keras') after importing hgq_chip.layers")
    return path


def load_model(path):
    """The ``keras.Model`` saved at ``path`` (compiled state not restored: ``compile=False``).

    ``path``: a ``.keras`` file written by ``model.save``. hgq_chip's layers are imported (and
    so registered with Keras) first. Raises :class:`~hgq_chip.errors.ModelFileError` (exit 3)
    when the file is missing, unreadable or not a Keras model.
    """
    import keras

    from . import layers as _register_layers  # noqa: F401  (registers our classes for deserialization)

    path = check_model_path(path)
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # keras raises ValueError, OSError, zipfile errors, ... for bad files
        typed = typed_cause(error)
        if typed is not None:  # our own layer refused its configuration: that is the real cause
            raise typed from None
        raise ModelFileError(
            f"cannot load {str(path)!r} as a Keras model ({type(error).__name__}: {str(error)[:300]}); "
            "save it with model.save('name.keras') after importing hgq_chip.layers"
        ) from error
