"""Small offline data sets for examples, tests and benchmarks.

By default sklearn's 8x8 digits (bundled with scikit-learn, no download). Optionally an
MNIST-style ``.npz`` with arrays ``x`` (samples first, any image shape) and ``y``
(integer labels). Images are flattened to one feature vector per sample; uint8 pixels
are scaled to [0, 1]. Nothing is downloaded and no data file belongs in the repository.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .errors import DataError  # noqa: F401  (re-exported: hgq_chip.data.DataError)


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max()) + 1)


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's digits: 1797 samples of 64 pixels in 0..16, scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.data.astype(np.float32) / 16.0, digits.target.astype(np.int64)


def load_npz_arrays(path: str) -> tuple[np.ndarray, np.ndarray]:
    """``x``/``y`` arrays from an ``.npz``; images flattened, integer pixels scaled by their dtype's max."""
    if not os.path.isfile(path):
        raise DataError(f"data file {path!r} not found; pass an .npz holding 'x' and 'y' arrays")
    with np.load(path) as archive:
        missing = [key for key in ("x", "y") if key not in archive.files]
        if missing:
            raise DataError(f"{path!r} has arrays {archive.files}, lacks {missing}; save it with np.savez(path, x=..., y=...)")
        x, y = archive["x"], archive["y"]
    if len(x) != len(y):
        raise DataError(f"{path!r}: x has {len(x)} samples but y has {len(y)}")
    x = x.reshape(len(x), -1)
    scale = float(np.iinfo(x.dtype).max) if np.issubdtype(x.dtype, np.integer) else 1.0
    return x.astype(np.float32) / scale, y.astype(np.int64).ravel()


def load_split(path: str | None = None, val_fraction: float = 0.25, seed: int = 0, max_samples: int | None = None) -> Split:
    """Shuffle (fixed seed), keep at most ``max_samples``, split into train and validation parts.

    ``path=None`` uses sklearn digits; otherwise an ``.npz`` as described in the module doc.
    Subsampling happens after the shuffle because files such as MNIST may be sorted by label.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    x, y = load_digits_arrays() if path is None else load_npz_arrays(path)
    order = np.random.default_rng(seed).permutation(len(x))[:max_samples]
    x, y = x[order], y[order]
    n_val = max(1, int(round(len(x) * val_fraction)))
    return Split(x[n_val:], y[n_val:], x[:n_val], y[:n_val])
