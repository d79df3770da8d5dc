"""Function tables computed once in NumPy and gathered by the Keras forward pass.

A value the firmware holds in a table (HActivation's tanh/sigmoid/..., HSoftmax's exp and 1/x)
must not depend on the Keras backend: TensorFlow, JAX (with or without x64) and PyTorch
evaluate transcendental functions with different kernels, and their float32 results differ in
the last bit for some inputs, which can flip the output quantizer's rounding (issue 33). So:

- every entry is ``fl32(fn(x))``: ``fn`` evaluated in NumPy float64 at the exact input value x
  (a fixed-point value, exact in float64), then rounded to float32 (round to nearest even);
  a float64 model holds the same float32 values in float64;
- the Keras forward pass (inference, training and calibration) gathers that entry with
  ``keras.ops.take`` at an integer index computed exactly from x, and the converter fills the
  firmware's table from the same NumPy function, so Keras and firmware agree on every
  backend by construction.

The table of a layer lives in two non-trainable variables (so compiled ``predict``/``fit``
functions read the current table): ``values`` (``TABLE_CAPACITY`` entries, the layer's
variable dtype) and ``grid`` = (F, lo): entry j holds ``fn((lo + j) * 2**-F)``. A lookup rounds
``x * 2**F`` to the nearest code (exact when x is on the grid) and saturates at the table's
ends. The grid is chosen by :func:`choose_grid` from the layer's current input format: at
least as fine as that format and covering twice its range, so every input value of the format
is on the grid and inside it (exact), with room for the formats to move during training.
:meth:`CodeTable.refresh` recomputes it (``refresh_tables(model)``; also at build, after
loading, after ``calibrate`` and in ``convert``; during ``fit`` with the ``RefreshTables``
callback); it costs one NumPy evaluation of 65536 points (measured 0.1-40 ms per table, gelu
about 150 ms) and is skipped when the grid did not change. Between refreshes a training input
off the grid (its f grew) reads the nearest entry, and one beyond the table the end entry.
The table variables are derived state: they are not written to ``.keras`` files.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from ..errors import UnsupportedLayerError

# Entries per table variable: 2**16 codes (the firmware's tables are at most 16 bits wide).
TABLE_CAPACITY_BITS = 16
TABLE_CAPACITY = 2**TABLE_CAPACITY_BITS
# Without a recorded range the table covers [-2**DEFAULT_INTEGER_BITS, 2**DEFAULT_INTEGER_BITS).
DEFAULT_INTEGER_BITS = 4
# Codes stay below 2**23 in magnitude: the lookup's x * 2**F + 1/2 and its index are then exact
# in float32 (the table variables of a float32 model hold the grid in float32 too).
MAX_TABLE_CODE = 2**23


def _sigmoid(x):
    # 1 / (1 + exp(-x)) without overflow for large negative x.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softplus(x):
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _hard_sigmoid(x):
    return np.clip(x + 3.0, 0.0, 6.0) / 6.0


def _erf(x):
    return np.frompyfunc(math.erf, 1, 1)(x).astype(np.float64)


def _gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

# keras.activations names -> float64 NumPy function with Keras' default arguments (keras 3 docs).
ACTIVATION_FUNCTIONS = {
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "softplus": _softplus,
    "softsign": lambda x: x / (1.0 + np.abs(x)),
    "elu": _elu,
    "selu": lambda x: SELU_SCALE * _elu(x, SELU_ALPHA),
    "celu": lambda x: _elu(x, 1.0),
    "gelu": _gelu,
    "silu": lambda x: x * _sigmoid(x),
    "swish": lambda x: x * _sigmoid(x),
    "exponential": np.exp,
    "mish": lambda x: x * np.tanh(_softplus(x)),
    "log_sigmoid": lambda x: -_softplus(-x),
    "hard_sigmoid": _hard_sigmoid,
    "hard_silu": lambda x: x * _hard_sigmoid(x),
    "hard_swish": lambda x: x * _hard_sigmoid(x),
    "hard_tanh": lambda x: np.clip(x, -1.0, 1.0),
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.2 * x),
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "tanh_shrink": lambda x: x - np.tanh(x),
    "soft_shrink": lambda x: np.where(x > 0.5, x - 0.5, np.where(x < -0.5, x + 0.5, 0.0)),
    "hard_shrink": lambda x: np.where(np.abs(x) > 0.5, x, 0.0),
    "sparse_plus": lambda x: np.where(x <= -1.0, 0.0, np.where(x >= 1.0, x, 0.25 * (x + 1.0) ** 2)),
    "sparse_sigmoid": lambda x: np.where(x <= -1.0, 0.0, np.where(x >= 1.0, 1.0, 0.5 * (x + 1.0))),
    "squareplus": lambda x: 0.5 * (x + np.sqrt(x * x + 4.0)),
}


def numpy_activation(name: str, layer_name: str):
    """The float64 NumPy function of keras.activations ``name``; UnsupportedLayerError (naming the
    supported ones) for an activation without one (a custom function: its table could differ
    between backends)."""
    try:
        return ACTIVATION_FUNCTIONS[name]
    except KeyError:
        raise UnsupportedLayerError(
            f"{layer_name}: activation {name!r} has no backend-independent table; HActivation tables "
            f"support {', '.join(sorted(ACTIVATION_FUNCTIONS))} (and relu/linear without a table). "
            "Use one of them, or compute the function outside the firmware"
        ) from None


def float32_values(fn, values: np.ndarray) -> np.ndarray:
    """``fl32(fn(values))`` as float64: fn in NumPy float64, rounded once to float32."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        out = fn(np.asarray(values, np.float64))
    return np.asarray(out, np.float64).astype(np.float32).astype(np.float64)


def choose_grid(f: int, lo: float, hi: float, capacity: int = TABLE_CAPACITY) -> tuple[int, int]:
    """(F, lo_code) of a table of ``capacity`` entries: F >= f as large as possible such that the
    codes cover [lo - (hi - lo) / 2, hi + (hi - lo) / 2] (twice the range, for formats that move
    in training), with codes below MAX_TABLE_CODE in magnitude; if even F = f cannot, F = f and the codes are centred
    on [lo, hi] (inputs beyond saturate: ``convert`` refuses such wide formats anyway)."""
    f = int(f)
    margin = (hi - lo) / 2.0
    a, b = lo - margin, hi + margin
    best = None
    for candidate in range(f, f + 64):
        scale = 2.0**candidate
        lo_code, hi_code = math.floor(a * scale), math.ceil(b * scale)
        if hi_code - lo_code + 1 > capacity or max(-lo_code, hi_code) >= MAX_TABLE_CODE:
            break
        best = (candidate, lo_code)
    if best is not None:
        return best
    scale = 2.0**f
    centre = (math.floor(lo * scale) + math.ceil(hi * scale)) // 2
    return f, centre - capacity // 2


def grid_values(f: int, lo_code: int, capacity: int = TABLE_CAPACITY) -> np.ndarray:
    """The table's input values (lo_code + j) * 2**-F, j = 0 .. capacity - 1 (float64, exact)."""
    return (lo_code + np.arange(capacity, dtype=np.float64)) * 2.0**-f


class CodeTable:
    """One NumPy-filled table of a layer, in two non-trainable variables, and its lookup.

    ``fn``: float64 NumPy function of the (exact) input value; entries are ``fl32(fn(x))``.
    """

    def __init__(self, layer, name: str, fn, capacity: int = TABLE_CAPACITY):
        self.fn = fn
        self.capacity = int(capacity)
        self.values = layer.add_weight(name=f"{name}_table", shape=(self.capacity,), initializer="zeros",
                                       trainable=False)
        self.grid = layer.add_weight(name=f"{name}_grid", shape=(2,), initializer="zeros", trainable=False)
        for variable in (self.values, self.grid):
            variable.derived_table = True  # recomputed from the quantizers: not saved, not fingerprinted
        self.key = None

    def variables(self):
        return [self.values, self.grid]

    def refresh(self, f: int, lo_code: int) -> bool:
        """Fill the table for grid (F, lo_code); returns whether anything changed."""
        key = (int(f), int(lo_code))
        # The grid variable too: set_weights or an assign may have replaced the table.
        if key == self.key and tuple(int(v) for v in np.asarray(self.grid.numpy())) == key:
            return False
        self.values.assign(float32_values(self.fn, grid_values(key[0], key[1], self.capacity)))
        self.grid.assign(np.array(key, np.float64))
        self.key = key
        return True

    def entries(self, inputs) -> np.ndarray:
        """The same entries at arbitrary exact input values (float64 in, float64 out): what the
        converter writes into the firmware's table."""
        return float32_values(self.fn, inputs)

    def lookup(self, x):
        """Entries at x (any shape, float): the nearest grid code (exact on the grid), clipped
        to the table. No gradient (callers add a surrogate)."""
        x = ops.stop_gradient(x)
        grid = ops.cast(self.grid, x.dtype)
        scale = ops.ldexp(ops.ones_like(grid[0]), ops.cast(grid[0], "int32"))
        index = ops.floor(x * scale + 0.5) - grid[1]
        index = ops.clip(index, 0.0, float(self.capacity - 1))
        return ops.cast(ops.take(self.values, ops.cast(index, "int32")), x.dtype)


def with_surrogate_gradient(table_value, surrogate):
    """``table_value`` in the forward pass (exactly: it adds s - s = 0), the gradient of
    ``surrogate`` (the backend's float function of the same input). Non-finite surrogates
    contribute neither value nor gradient."""
    finite = ops.isfinite(surrogate)
    safe = ops.where(finite, surrogate, ops.zeros_like(surrogate))
    return table_value + (safe - ops.stop_gradient(safe))


def refresh_tables(model) -> int:
    """Refresh the function tables of every layer of ``model`` (also nested) that has them, from
    its current quantizer formats. Call after changing quantizer variables by hand or after
    ``fit`` before ``predict`` (``calibrate``, loading and ``convert`` do it). Returns how many
    tables were recomputed."""
    layers = list(_nested_layers(model)) if hasattr(model, "layers") else [model]
    return sum(layer.refresh_tables() for layer in layers if callable(getattr(layer, "refresh_tables", None)))


def _nested_layers(model):
    """Every layer of ``model``, descending into nested models (as ``model_walk.iter_layers``,
    which sits above this module in the import order)."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _nested_layers(layer)


class RefreshTables(keras.callbacks.Callback):
    """Keras callback refreshing the model's function tables every ``every`` training batches and
    at the end of each epoch, so training's forward values follow input formats that HGQ moves."""

    def __init__(self, every: int = 50):
        super().__init__()
        self.every = max(int(every), 1)

    def on_train_batch_end(self, batch, logs=None):
        if (batch + 1) % self.every == 0:
            refresh_tables(self.model)

    def on_epoch_end(self, epoch, logs=None):
        refresh_tables(self.model)

    def on_train_end(self, logs=None):
        refresh_tables(self.model)
