"""Checking user input arrays against a model's inputs, shared by ``calibrate`` and ``verify --data``.

Every check runs before anything is computed or reset, and every failure is a
:class:`~hgq_chip.errors.DataError` naming the input and the shape it expects
(``(samples, 4)`` means: a samples axis first, then the model's per-sample shape).
No Keras is imported here; ``model`` is only asked for ``model.inputs``.
"""

from __future__ import annotations

import numpy as np

from .errors import DataError


def input_specs(model) -> list[tuple[str, tuple]] | None:
    """``[(name, per-sample shape)]`` of a built model's inputs (None for an unknown dimension).

    None when the model does not expose symbolic inputs (an unbuilt subclassed model);
    then only dtype, emptiness and finiteness are checked.
    """
    try:
        tensors = model.inputs
    except (AttributeError, ValueError):
        return None
    if not tensors:
        return None
    return [(str(t.name), tuple(None if d is None else int(d) for d in t.shape[1:])) for t in tensors]


def expected_shape(shape: tuple) -> str:
    """``(samples, 8, 8, 1)``: how the messages spell the array shape a model input expects."""
    dims = ", ".join("any" if d is None else str(d) for d in shape)
    return f"(samples{', ' + dims if dims else ''})"


def _names(specs) -> str:
    return ", ".join(repr(name) for name, _ in specs)


def as_input_list(x, specs, what: str) -> list:
    """The arrays of ``x`` in model-input order: one array, a list/tuple (one per input) or a dict by name.

    Raises DataError when the number of arrays or the dict's keys do not match ``specs``.
    """
    n = len(specs) if specs is not None else None
    if isinstance(x, dict):
        if specs is None:
            raise DataError(f"{what}: a dict of inputs needs a model with named inputs; pass a list of arrays")
        names = [name for name, _ in specs]
        missing = [k for k in names if k not in x]
        extra = [k for k in x if k not in names]
        if missing or extra:
            raise DataError(f"{what}: the model's inputs are {_names(specs)}; got keys {sorted(map(str, x))} "
                            f"(missing {missing}, unexpected {extra})")
        return [x[name] for name in names]
    several = n is not None and n > 1
    wrapped_one = len(x) == 1 and _is_array_like(x[0]) if isinstance(x, (list, tuple)) else False
    unknown = n is None and isinstance(x, (list, tuple)) and all(_is_array_like(v) for v in x)
    if isinstance(x, (list, tuple)) and (several or wrapped_one or unknown):
        if n is not None and len(x) != n:
            raise DataError(f"{what}: the model has {n} inputs ({_names(specs)}) but {len(x)} arrays were given; "
                            "pass one array per input, in that order, or a dict keyed by input name")
        return list(x)
    if n is not None and n > 1:
        raise DataError(f"{what}: the model has {n} inputs ({_names(specs)}); pass a list of {n} arrays "
                        "or a dict keyed by input name")
    return [x]


def _is_array_like(value) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")


def check_array(value, name: str, shape: tuple | None, what: str) -> np.ndarray:
    """``value`` as a NumPy array after checking dtype, rank, per-sample shape, emptiness and finiteness.

    ``shape`` is the per-sample shape the input expects (None: not checked). DataError otherwise.
    """
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:  # ragged nested lists
        raise DataError(f"{what}: input {name!r} is not a rectangular array ({error})") from error
    kind = array.dtype.kind
    want = expected_shape(shape) if shape is not None else "(samples, ...)"
    if kind not in "biuf":
        raise DataError(f"{what}: input {name!r} has dtype {array.dtype} (not real numbers); "
                        f"pass a numeric array of shape {want}")
    if shape is not None:
        sample_shape = array.shape[1:]
        fits = len(sample_shape) == len(shape) and all(e is None or e == g for e, g in zip(shape, sample_shape))
        if not fits:
            hint = " (one sample without the samples axis? use x[None])" if array.shape == tuple(shape) else ""
            raise DataError(f"{what}: input {name!r} expects an array of shape {want}, got {array.shape}{hint}")
    if array.ndim == 0 or array.shape[0] == 0 or array.size == 0:
        raise DataError(f"{what}: input {name!r} is empty (shape {array.shape}); pass at least one sample "
                        f"of shape {want}")
    if kind == "f" and not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise DataError(f"{what}: input {name!r} holds {bad} NaN or infinite values; remove or replace them")
    return array


def check_inputs(x, specs, what: str) -> list[np.ndarray]:
    """All arrays of ``x`` (see :func:`as_input_list`) checked with :func:`check_array`, same sample count."""
    values = as_input_list(x, specs, what)
    names_shapes = specs if specs is not None else [(f"input {i}", None) for i in range(len(values))]
    arrays = [check_array(v, name, shape, what) for v, (name, shape) in zip(values, names_shapes)]
    counts = {len(a) for a in arrays}
    if len(counts) > 1:
        raise DataError(f"{what}: the inputs have different numbers of samples "
                        f"({', '.join(f'{n}: {len(a)}' for (n, _), a in zip(names_shapes, arrays))})")
    return arrays


def read_array_file(path, what: str):
    """The array of a ``.npy`` file, or ``{key: array}`` of an ``.npz``; DataError if missing or unreadable."""
    import os

    if not os.path.isfile(path):
        raise DataError(f"{what}: file {str(path)!r} not found; pass a .npy array (samples first) "
                        "or an .npz with one array per model input")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                return {key: loaded[key] for key in loaded.files}
        return loaded
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"{what}: cannot read {str(path)!r} as a .npy/.npz array file ({error}); save numeric "
                        "inputs with np.save(path, x) or np.savez(path, input_name=x, ...)") from error
    except Exception as error:  # zipfile.BadZipFile and other corruptions of an .npz
        raise DataError(f"{what}: {str(path)!r} is corrupt ({type(error).__name__}: {error}); "
                        "save it again with np.save or np.savez") from error


def inputs_from_file(path, specs, what: str, loaded=None) -> list[np.ndarray]:
    """Checked model inputs from a ``.npy`` (one-input models) or ``.npz`` (arrays keyed by input name).

    An ``.npz`` holding a single array works for a one-input model whatever its key.
    ``loaded``: what :func:`read_array_file` already returned for ``path``. Raises
    DataError naming the expected input names and shapes.
    """
    loaded = read_array_file(path, what) if loaded is None else loaded
    expected = ", ".join(f"{name!r} {expected_shape(shape)}" for name, shape in specs or [])
    if isinstance(loaded, dict):
        if not loaded:
            raise DataError(f"{what}: {str(path)!r} holds no arrays; the model expects {expected}")
        if specs is not None and len(specs) == 1 and len(loaded) == 1:
            loaded = next(iter(loaded.values()))
        elif specs is not None and set(loaded) != {name for name, _ in specs}:
            raise DataError(f"{what}: {str(path)!r} holds arrays {sorted(loaded)} but the model's inputs are "
                            f"{expected}; save them with np.savez(path, **{{input_name: array}})")
    elif specs is not None and len(specs) > 1:
        raise DataError(f"{what}: the model has {len(specs)} inputs ({expected}); pass an .npz holding one array "
                        "per input, keyed by input name")
    return check_inputs(loaded, specs, what)
