"""The MNIST-4x4 task: data loader and MLP builder, for sweeps, benchmarks and tests.

MNIST's 28x28 images averaged over 7x7 blocks give 4x4 = 16 features, the input size of the
jet-tagging MLPs (issue 9). Without the MNIST files the loader falls back to sklearn's 8x8
digits averaged over 2x2 blocks (also 16 features, bundled with scikit-learn, no download).

Both functions follow the sweep spec's conventions (``hgq_chip.sweeps.spec``):
``load(**args) -> {"train": (x, y), "val": (x, y), "test": (x, y)}`` and
``build(params, n_features, n_classes) -> compiled keras.Model``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..data import load_digits_arrays
from ..errors import DataError

MNIST_POOL = 7  # 28x28 -> 4x4
DIGITS_POOL = 2  # 8x8 -> 4x4


def pooled(x: np.ndarray, pool: int) -> np.ndarray:
    """``[n, s, s]`` images averaged over ``pool x pool`` blocks, flattened to ``[n, (s/pool)^2]`` float32."""
    side = x.shape[1] // pool
    x = x[:, : side * pool, : side * pool].reshape(len(x), side, pool, side, pool).mean(axis=(2, 4))
    return x.reshape(len(x), side * side).astype(np.float32)


def _mnist_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path} not found; pass the directory holding mnist_train.npz and mnist_test.npz "
                        "(x uint8 [n, 28, 28], y), or no path for sklearn digits")
    try:
        with np.load(path) as archive:
            x, y = archive["x"].astype(np.float32) / 255.0, archive["y"].astype(np.int64)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise DataError(f"{path} is not a readable .npz with arrays x (uint8 [n, 28, 28]) and y ({err}); "
                        "remake it with np.savez(path, x=x, y=y), or leave out path for sklearn digits") from None
    if x.ndim != 3 or len(x) != len(y):
        raise DataError(f"{path}: x has shape {list(x.shape)} and y {list(y.shape)}; need x [n, 28, 28] and y [n]")
    return pooled(x, MNIST_POOL), y


def load(path=None, seed: int = 0, max_train: int | None = None, n_val: int | None = None,
         max_test: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """MNIST-4x4 from ``path`` (a directory with ``mnist_train.npz``/``mnist_test.npz``), else digits-4x4.

    MNIST: the 60k training images shuffled with ``seed`` and split 50k train / 10k validation
    (``n_val``), the 10k test images as test. Digits (``path=None``): 1797 images shuffled and
    split 60/20/20. ``max_train``/``max_test`` keep the first that many samples (small runs).
    Raises DataError for a missing file.
    """
    rng = np.random.default_rng(seed)
    if path is not None:
        directory = Path(path)
        x, y = _mnist_file(directory / "mnist_train.npz")
        x_test, y_test = _mnist_file(directory / "mnist_test.npz")
        n_val = 10_000 if n_val is None else int(n_val)
    else:
        x, y = load_digits_arrays()
        x = pooled(x.reshape(len(x), 8, 8), DIGITS_POOL)
        order = rng.permutation(len(x))
        n_test = len(x) // 5
        x_test, y_test = x[order[:n_test]], y[order[:n_test]]
        x, y = x[order[n_test:]], y[order[n_test:]]
        n_val = len(x) // 4 if n_val is None else int(n_val)
    order = rng.permutation(len(x))
    train, val = order[: len(x) - n_val][:max_train], order[len(x) - n_val:]
    return {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x_test[:max_test], y_test[:max_test])}


def check_load_args(path=None, **_) -> None:
    """The checks of :func:`load` that need no data read, for the sweep spec to run before Ray
    starts (a missing folder failed every trial minutes later): DataError unless ``path`` is None
    or a directory holding ``mnist_train.npz`` and ``mnist_test.npz`` (relative paths count from
    the current directory)."""
    if path is None:
        return
    for name in ("mnist_train.npz", "mnist_test.npz"):
        if not (Path(path) / name).is_file():
            raise DataError(f"data.args.path {path}: {Path(path) / name} not found; pass the directory holding "
                            "mnist_train.npz and mnist_test.npz (x uint8 [n, 28, 28], y), e.g. made with "
                            "keras.datasets.mnist.load_data() and np.savez, or leave out path for sklearn digits")


load.check_args = check_load_args


def build(params: dict, n_features: int, n_classes: int):
    """An HDense MLP ``n_features - width x depth - n_classes`` (relu), compiled with Adam and
    sparse cross-entropy on logits, ``accuracy`` metric, XLA.

    ``params`` (all optional): ``width`` (64), ``depth`` (3), ``widths`` (a list, overrides
    both), ``init_bits`` (initial fractional bits of inputs and weights, 4), ``granularity``
    of the quantizers (``per-element``), ``learning_rate`` (3e-3), ``jit_compile`` (True: XLA;
    False saves the few seconds of compiling in very short runs).
    """
    import keras

    from ..layers import HDense

    widths = params.get("widths") or [int(params.get("width", 64))] * int(params.get("depth", 3))
    quantizer = {"init_f": float(params.get("init_bits", 4.0)), "granularity": params.get("granularity", "per-element")}
    bits = {"input_quantizer": quantizer, "kernel_quantizer": dict(quantizer)}
    inputs = keras.Input((n_features,))
    x = inputs
    for width in widths:
        x = HDense(int(width), activation="relu", **bits)(x)
    model = keras.Model(inputs, HDense(n_classes, **bits)(x))
    model.compile(keras.optimizers.Adam(float(params.get("learning_rate", 3e-3))),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
                  jit_compile=bool(params.get("jit_compile", True)))
    return model
