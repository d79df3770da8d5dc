"""Module-level lazy exports (PEP 562).

``import hgq_chip`` must not import Keras: `hgq_chip estimate DIR` reads JSON only and has
to start in well under two seconds, while importing Keras/TensorFlow alone takes three or
more. Packages therefore name their public objects here and import a submodule only when
one of its names is first used.
"""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str], submodules: tuple[str, ...] = ()):
    """``(__getattr__, __dir__)`` for ``package`` exporting ``name -> relative module``.

    The object is looked up in its module under the same name and cached in the package
    namespace, so later lookups are plain attribute reads. Names in ``submodules`` are
    exported as the modules themselves.
    """
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str):
        if name in submodules:
            value = importlib.import_module(f".{name}", package)
        elif name in exports:
            value = getattr(importlib.import_module(exports[name], package), name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(exports) | set(submodules))

    return __getattr__, __dir__
