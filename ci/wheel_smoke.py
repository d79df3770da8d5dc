"""The installed-wheel check's Python half (run by ci/wheel_check.sh, never from the checkout).

``python wheel_smoke.py asq``: trains a small ASQDense model (two epochs on random data) and
saves it calibrated as ``asq.keras``; ``python wheel_smoke.py hdense``: saves a calibrated
HQuantize -> HDense -> HDense model as ``hdense.keras``; ``python wheel_smoke.py check-synth
FILE``: checks the JSON of ``hgq_chip synth --json`` says the pip yosys ran and the trace was
bit-exact. Each step first checks that hgq_chip and its HLS template come from the venv.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def check_installed() -> None:
    import hgq_chip
    from hgq_chip.conversion.templates import template_path

    package = os.path.realpath(hgq_chip.__file__)
    header = os.path.realpath(template_path("nnet_asq_post.h"))
    prefix = os.path.realpath(sys.prefix)
    for what, path in (("hgq_chip", package), ("its HLS template", header)):
        if not path.startswith(prefix + os.sep):
            sys.exit(f"wheel check: {what} is loaded from {path}, not from the venv {prefix}")
    print(f"[wheel check] hgq_chip from {package}; template {header}")


def asq_model() -> None:
    import keras
    import numpy as np

    import hgq_chip
    from hgq_chip.layers import ASQDense, HQuantize

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = (rng.normal(0.0, 1.0, (512, 8)) * rng.uniform(0.3, 2.0, (512, 1))).astype("float32")
    y = (x[:, :3].sum(axis=1) > 0).astype("int32")
    inputs = keras.Input((8,), name="x")
    h = HQuantize({"granularity": "per-layer", "init_f": 4}, name="q")(inputs)
    h = ASQDense(8, activation="relu", name="asq_d0",
                 input_quantizer={"kind": "asq", "bits": 4, "signed": True, "adapter_hidden": 3},
                 kernel_quantizer={"kind": "post", "bits": 4})(h)
    out = ASQDense(2, name="asq_d1", input_quantizer={"kind": "asq", "bits": 4, "signed": False},
                   kernel_quantizer={"kind": "post", "bits": 4})(h)
    model = keras.Model(inputs, out)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    hgq_chip.calibrate(model, x)
    model.save("asq.keras")


def hdense_model() -> None:
    import keras
    import numpy as np

    import hgq_chip
    from hgq_chip.layers import HDense, HQuantize

    # Few, narrow numbers: the pip yosys synthesizes this in seconds (the default 6 fractional
    # bits everywhere make ~1300 LUTs and minutes on a loaded machine).
    keras.utils.set_random_seed(0)
    narrow = {"init_f": 3.0}
    inputs = keras.Input((4,))
    h = HQuantize(narrow)(inputs)
    h = HDense(4, activation="relu", input_quantizer=narrow, kernel_quantizer=narrow, bias_quantizer=narrow)(h)
    out = HDense(2, input_quantizer=narrow, kernel_quantizer=narrow, bias_quantizer=narrow)(h)
    model = keras.Model(inputs, out)
    hgq_chip.calibrate(model, np.random.default_rng(0).normal(0.0, 1.0, (256, 4)).astype("float32"))
    model.save("hdense.keras")


def check_synth(path: str) -> None:
    with open(path) as handle:
        report = json.load(handle)
    used = report.get("yosys") or {}
    if used.get("source") != "pip" or report.get("trace_mismatches") != 0 or not report.get("lut"):
        sys.exit(f"wheel check: synth did not run the pip yosys bit-exact: {report}")
    print(f"[wheel check] synth: {report['lut']} LUTs with yosys {used['version']} ({used['executable']})")


if __name__ == "__main__":
    check_installed()
    step = sys.argv[1]
    if step == "asq":
        asq_model()
    elif step == "hdense":
        hdense_model()
    elif step == "check-synth":
        check_synth(sys.argv[2])
    else:
        sys.exit(f"unknown step {step!r}")
