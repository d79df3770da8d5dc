"""Child process of the fuzzer: ``hgq_chip``'s verify of a project against precomputed Keras outputs.

Usage: ``python -m hgq_chip.testing.fuzz_csim_child PROJECT_DIR PROJECT_NAME IO.npz RESULT.json``.
IO.npz holds ``in__SET`` inputs and ``out__SET__I`` Keras outputs per input set; beside it,
``csim_interface.json`` the model's name, input/output names and shapes and input dtypes
(what ``verify`` checks the project against). RESULT.json
gets ``{SET: {"ok", "describe"}}`` or ``{"error": [type, message]}``. The firmware is loaded
only here, so a crash inside it ends this process, not the fuzzer (which reads the exit code).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


class _Tensor:
    """A model input or output as ``verify`` reads it: name, shape (batch axis first), dtype."""

    def __init__(self, entry: dict, dtype: str = "float32"):
        self.name = entry["name"]
        self.shape = (None, *entry["shape"])
        self.dtype = dtype


class _PrecomputedModel:
    """Stands in for the Keras model: its interface as the parent described it; ``predict``
    returns the outputs the parent computed."""

    def __init__(self, results, interface: dict):
        self.results = results
        self.name = interface["name"]
        dtypes = interface.get("input_dtypes", ["float32"]) * len(interface["inputs"])
        self.inputs = [_Tensor(e, d) for e, d in zip(interface["inputs"], dtypes)]
        self.outputs = [_Tensor(e) for e in interface["outputs"]]
        self.output_names = [e["name"] for e in interface["outputs"]]

    def predict(self, x, **_):
        return self.results if len(self.results) > 1 else self.results[0]


def main(argv) -> int:
    from ..conversion.verification import verify
    from ..errors import HGQChipError

    project_dir, project_name, io_file, result_file = argv
    data = np.load(io_file)
    interface = json.loads((Path(io_file).parent / "csim_interface.json").read_text())
    sets = sorted(k.split("__", 1)[1] for k in data.files if k.startswith("in__"))
    result = {}
    try:
        for name in sets:
            outputs = [data[f"out__{name}__{i}"] for i in range(sum(k.startswith(f"out__{name}__") for k in data.files))]
            report = verify(_PrecomputedModel(outputs, interface), project_dir, data[f"in__{name}"], project_name=project_name,
                            log=lambda *_: None)
            result[name] = {"ok": report.ok, "describe": report.describe()}
    except HGQChipError as error:
        result = {"error": [type(error).__name__, str(error)]}
    with open(result_file, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
