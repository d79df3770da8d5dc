"""verify(): the written firmware's C simulation against the Keras model, bit for bit."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from ..errors import DataError, NumericError
from ..progress import to_stderr
from ..sampling_options import VERIFY_BATCH
from .csim import CSimulation
from .graph import as_functional, graph_nodes
from .inputs import keras_input_dtypes
from .output_dir import project_in_use
from .project_io import check_project_matches_model


@dataclass
class VerifyReport:
    n_samples: int
    n_values: int
    n_mismatches: int
    first_mismatch: tuple | None  # (output index, flat index, keras value, csim value)

    @property
    def ok(self) -> bool:
        return self.n_mismatches == 0

    def describe(self) -> str:
        if self.ok:
            return f"bit-exact: {self.n_values} values from {self.n_samples} samples match"
        out, index, keras_value, csim_value = self.first_mismatch
        return (
            f"MISMATCH: {self.n_mismatches} of {self.n_values} values differ; first at output {out}, "
            f"index {index}: keras {keras_value!r} vs csim {csim_value!r}"
        )


def _input_dtypes(model) -> list[str]:
    """The dtype Keras reads each input in; a stand-in for a model (the fuzzer's child, which
    has only the model's interface) gives its inputs' own dtypes."""
    if isinstance(model, keras.Model):
        return keras_input_dtypes(model, graph_nodes(model))
    return [str(getattr(t, "dtype", "float32")) for t in model.inputs]


def check_inputs(model, x) -> list[np.ndarray]:
    """``x`` (an array, or a list/tuple with one array per model input) as arrays of the dtype
    Keras reads each input in (``inputs.keras_input_dtypes``: float32, or float64 for a model
    computing in float64), so Keras and the firmware get the same values.

    DataError unless there is one numeric array per model input, each ``(n, *input shape)``
    with the same ``n >= 1``; NumericError for NaN or infinite values (firmware has none).
    """
    arrays = list(x) if isinstance(x, (list, tuple)) else [x]
    expected = [tuple(None if d is None else int(d) for d in t.shape[1:]) for t in model.inputs]
    described = ", ".join(f"(n, {', '.join(map(str, s))})".replace(", )", ")") for s in expected)
    if len(arrays) != len(expected):
        raise DataError(f"the model has {len(expected)} inputs, shaped {described}, but {len(arrays)} input arrays "
                        "were given; pass one array per model input")
    dtypes = _input_dtypes(model)
    inputs = []
    for index, (array, shape, dtype) in enumerate(zip(arrays, expected, dtypes)):
        try:
            array = np.asarray(array, dtype=dtype)
        except (TypeError, ValueError) as error:
            raise DataError(f"verification input {index} is not numeric ({error}); pass float arrays") from None
        if array.ndim != len(shape) + 1 or any(e is not None and e != a for e, a in zip(shape, array.shape[1:])):
            raise DataError(f"verification input {index} has shape {array.shape}; the model expects "
                            f"(n, {', '.join(map(str, shape))})".replace(", )", ")") + " (n samples first)")
        inputs.append(array)
    counts = {len(a) for a in inputs}
    if len(counts) != 1 or 0 in counts:
        raise DataError(f"verification inputs need the same number (at least 1) of samples each, got {sorted(counts)}")
    if any(not np.all(np.isfinite(a)) for a in inputs):
        raise NumericError("verification inputs contain NaN or infinite values; firmware has no such values")
    return inputs




def array_batches(inputs: list[np.ndarray], batch_size: int = VERIFY_BATCH) -> Iterator[list[np.ndarray]]:
    """``inputs`` (one array per model input, same length) in consecutive slices of ``batch_size`` samples
    (views, no copies)."""
    n = len(inputs[0])
    for start in range(0, n, batch_size):
        yield [a[start:start + batch_size] for a in inputs]


def verify(model, project_dir, x, project_name: str = "myproject", log=to_stderr,
           batch_size: int = VERIFY_BATCH, allow_large: bool = False) -> VerifyReport:
    """Compile the project's C simulation, run it and ``model`` on ``x``, compare exactly.

    Before anything runs, ``x`` is checked against the model's input shapes (DataError) and
    the project's inputs/outputs against the model's (ProjectError). The simulation runs in
    a child process; a crash of the firmware raises SimulationCrashError. Samples go through
    Keras and the firmware in batches of ``batch_size`` (see :func:`verify_batches`).
    SimulationTooLargeError (before g++ runs) for a project too large to compile here, unless
    ``allow_large``.
    """
    model = as_functional(model)
    inputs = check_inputs(model, x)
    return verify_batches(model, project_dir, array_batches(inputs, batch_size), project_name, log, check=False,
                          allow_large=allow_large)


# verify_batches reports progress for the first batch and then at most once per this many seconds.
PROGRESS_SECONDS = 10.0


def verify_batches(model, project_dir, batches: Iterable, project_name: str = "myproject", log=to_stderr,
                   check=True, allow_large: bool = False) -> VerifyReport:
    """Like :func:`verify`, for inputs that come in batches (each a list of arrays, one per model
    input, or one array), e.g. random samples drawn batch by batch: peak memory is that of one batch.

    ``check``: pass each batch through :func:`check_inputs` (False when the caller already did).
    ``log`` gets one progress line for the first batch, then at most one per PROGRESS_SECONDS.
    The project is checked against the model before the first batch is read or anything is compiled.
    The project folder's lock is held throughout (OutputLockedError, exit 15, if another hgq_chip
    command holds it: a ``convert`` writing it or another ``verify``).
    """
    model = as_functional(model)
    with project_in_use(project_dir):
        check_project_matches_model(model, project_dir, project_name)
        sim = _built(project_dir, project_name, log, allow_large)
        return _compare_batches(model, sim, batches, check, log)


def _compare_batches(model, sim: CSimulation, batches: Iterable, check: bool, log) -> VerifyReport:
    report = VerifyReport(0, 0, 0, None)
    last_log = None
    for number, batch in enumerate(batches):
        inputs = check_inputs(model, batch) if check else list(batch)
        keras_out = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0, batch_size=1024)
        keras_out = [np.asarray(o) for o in (keras_out if isinstance(keras_out, (list, tuple)) else [keras_out])]
        if last_log is None or time.monotonic() - last_log >= PROGRESS_SECONDS:
            last_log = time.monotonic()
            log(f"[hgq_chip] running C simulation on {len(inputs[0])} samples (batch {number + 1}, "
                f"{report.n_samples} done)")
        _add(report, keras_out, _run(sim, inputs, keras_out))
    return report


def _built(project_dir, project_name: str, log, allow_large: bool = False) -> CSimulation:
    sim = CSimulation(Path(project_dir), project_name)
    log("[hgq_chip] compiling C simulation (g++)" if sim.needs_build() else "[hgq_chip] reusing the compiled C simulation")
    sim.build(allow_large)
    return sim


def _run(sim: CSimulation, inputs: list[np.ndarray], keras_out: list[np.ndarray]) -> list[np.ndarray]:
    return sim.run(inputs, [int(np.prod(o.shape[1:])) for o in keras_out])


def _add(report: VerifyReport, keras_out: list[np.ndarray], csim_out: list[np.ndarray]) -> None:
    """Compare one batch exactly and add it to ``report`` (sample indices continue the earlier batches)."""
    offset = report.n_samples
    for out_index, (k_out, c_out) in enumerate(zip(keras_out, csim_out)):
        k_flat = k_out.reshape(len(k_out), -1).astype(np.float64)
        differ = k_flat != c_out
        report.n_values += k_flat.size
        report.n_mismatches += int(differ.sum())
        if report.first_mismatch is None and differ.any():
            index = tuple(int(i) for i in np.argwhere(differ)[0])
            report.first_mismatch = (out_index, (index[0] + offset, *index[1:]), float(k_flat[index]),
                                     float(c_out[index]))
    report.n_samples += len(keras_out[0])


def compare_with_csim(keras_out: list[np.ndarray], project_dir, inputs: list[np.ndarray],
                      project_name: str = "myproject", log=to_stderr) -> VerifyReport:
    """Build and run the project's C simulation on ``inputs`` (float32 arrays, one per model
    input) and compare it with ``keras_out`` (one array per output, ``(n, ...)``) exactly.

    No check of the project against a model: :func:`verify` does those first (the fuzzer's
    child process calls this with outputs computed by its parent)."""
    with project_in_use(project_dir):
        sim = _built(project_dir, project_name, log)
        log(f"[hgq_chip] running C simulation on {len(inputs[0])} samples")
        report = VerifyReport(0, 0, 0, None)
        _add(report, keras_out, _run(sim, inputs, keras_out))
    return report
