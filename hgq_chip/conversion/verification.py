"""verify(): the written firmware's C simulation against the Keras model, bit for bit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import NumericError
from .csim import CSimulation


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


def verify(model, project_dir, x, project_name: str = "myproject", log=print) -> VerifyReport:
    """Compile the project's C simulation, run it and ``model`` on ``x``, compare exactly."""
    inputs = [np.asarray(a, dtype=np.float32) for a in (x if isinstance(x, (list, tuple)) else [x])]
    if any(not np.all(np.isfinite(a)) for a in inputs):
        raise NumericError("verification inputs contain NaN or infinite values; firmware has no such values")
    keras_out = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0, batch_size=1024)
    keras_out = [np.asarray(o) for o in (keras_out if isinstance(keras_out, (list, tuple)) else [keras_out])]
    sim = CSimulation(Path(project_dir), project_name)
    log("[hgq_chip] compiling C simulation (g++)" if sim.needs_build() else "[hgq_chip] reusing the compiled C simulation")
    sim.build()
    log(f"[hgq_chip] running C simulation on {len(inputs[0])} samples")
    csim_out = sim.run(inputs, [int(np.prod(o.shape[1:])) for o in keras_out])
    mismatches, first, total = 0, None, 0
    for out_index, (k_out, c_out) in enumerate(zip(keras_out, csim_out)):
        k_flat = k_out.reshape(len(k_out), -1).astype(np.float64)
        differ = k_flat != c_out
        total += k_flat.size
        mismatches += int(differ.sum())
        if first is None and differ.any():
            index = tuple(int(i) for i in np.argwhere(differ)[0])
            first = (out_index, index, float(k_flat[index]), float(c_out[index]))
    return VerifyReport(len(inputs[0]), total, mismatches, first)
