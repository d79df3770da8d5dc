"""Child process of the fuzzer: ``hgq_chip``'s verify of a project against precomputed Keras outputs.

Usage: ``python -m hgq_chip.testing.fuzz_csim_child PROJECT_DIR PROJECT_NAME IO.npz RESULT.json``.
IO.npz holds ``in__SET`` inputs and ``out__SET__I`` Keras outputs per input set. RESULT.json
gets ``{SET: {"ok", "describe"}}`` or ``{"error": [type, message]}``. The firmware is loaded
only here, so a crash inside it ends this process, not the fuzzer (which reads the exit code).
"""

from __future__ import annotations

import json
import sys

import numpy as np


def main(argv) -> int:
    from ..conversion.verification import compare_with_csim
    from ..errors import HGQChipError

    project_dir, project_name, io_file, result_file = argv
    data = np.load(io_file)
    sets = sorted(k.split("__", 1)[1] for k in data.files if k.startswith("in__"))
    result = {}
    try:
        for name in sets:
            outputs = [data[f"out__{name}__{i}"] for i in range(sum(k.startswith(f"out__{name}__") for k in data.files))]
            inputs = [np.asarray(data[f"in__{name}"], dtype=np.float32)]
            report = compare_with_csim(outputs, project_dir, inputs, project_name=project_name, log=lambda *_: None)
            result[name] = {"ok": report.ok, "describe": report.describe()}
    except HGQChipError as error:
        result = {"error": [type(error).__name__, str(error)]}
    with open(result_file, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
