"""Register hgq_chip's layers with Keras as soon as both are imported, without importing Keras early.

``keras.saving.load_model("m.keras")`` finds custom classes only once they are registered
(``@keras.saving.register_keras_serializable``, which runs when ``hgq_chip.layers`` is
imported). ``import hgq_chip`` must stay light (no Keras: ``hgq_chip estimate DIR``), so:

- if Keras is already imported, ``hgq_chip.layers`` is imported now (about 0.1 s);
- otherwise a one-shot import hook waits for the top-level ``keras`` module to finish
  importing and then imports ``hgq_chip.layers``.

Either way, after ``import hgq_chip`` plain ``keras.saving.load_model`` loads our models,
whichever of the two was imported first. A failure to register is silent here (Keras then
reports the unknown class; ``hgq_chip.load_model(path)`` imports the layers itself).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

LAYERS = "hgq_chip.layers"


def _register() -> None:
    try:
        importlib.import_module(LAYERS)
    except Exception:  # a broken Keras install: hgq_chip.load_model raises the typed error later
        pass


class _AfterKerasImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the real loader of ``keras`` so that registration follows its import."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)  # one shot, and no recursion through find_spec below
        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register()

        spec.loader.exec_module = exec_then_register
        return spec


def install() -> None:
    """Make sure our layers get registered with Keras (now, or right after Keras is imported)."""
    if "keras" in sys.modules:
        _register()
    elif not any(isinstance(finder, _AfterKerasImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterKerasImport())
