"""The QKeras twin of a fuzzer spec, for the QKeras importer (``hgq_chip.from_qkeras``).

Where a spec's model is expressible in QKeras -- an input quantizer, then dense and convolution
layers (``h``/``hbn`` families, no dilation), relu/linear activations, Flatten and Dropout --
:func:`qkeras_twin_script` writes the QKeras model of the same structure (QKeras formats drawn
from the spec's seed: ``quantized_bits(bits, integer, alpha=1)`` weights and activations,
``quantized_relu`` for relu). :func:`check_twin` builds it in the Keras 2 child process, runs
QKeras on inputs of its input quantizer's grid, imports the saved file and compares the imported
model's outputs with QKeras' by ``np.array_equal``. Any other spec has no twin (None).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .fuzz_check import Outcome

TWIN_OPS = ("quantize", "dense", "conv", "activation", "flatten", "dropout")
GRID_SAMPLES = 400


def _expressible(spec: dict) -> bool:
    layers = spec["layers"]
    if not layers or layers[0]["op"] != "quantize":
        return False
    for step in layers:
        if step["op"] not in TWIN_OPS:
            return False
        if step["op"] in ("dense", "conv") and step["family"] not in ("h", "hbn"):
            return False
        if step["op"] == "conv" and (step["dilation"] != 1 or len(step["kernel"]) not in (1, 2)):
            return False
        if step["op"] == "activation" and step["activation"] not in ("relu", "linear"):
            return False
    return True


def twin_formats(spec: dict) -> dict:
    """``{"input": (bits, integer), step name: (bits, integer), ...}`` drawn from the spec's seed."""
    rng = np.random.default_rng(spec["seed"])
    return {"input": (int(rng.integers(5, 9)), int(rng.integers(1, 3))),
            **{step["name"]: (int(rng.integers(4, 9)), int(rng.integers(0, 3))) for step in spec["layers"]}}


def qkeras_twin_script(spec: dict) -> str | None:
    """A Python script (Keras 2 child) saving the twin to ``argv[1]`` and QKeras' outputs on the
    inputs ``argv[2]`` (.npy) to ``argv[3]``; None when the spec has no QKeras twin."""
    if not _expressible(spec):
        return None
    formats = twin_formats(spec)
    lines = ["import sys", "import numpy as np", "import tensorflow as tf",
             "from qkeras import QActivation, QConv1D, QConv2D, QDense, quantized_bits, quantized_relu",
             f"tf.keras.utils.set_random_seed({spec['seed']})",
             f"inputs = tf.keras.Input({tuple(spec['input_shape'])!r})",
             "x = QActivation(quantized_bits({}, {}, alpha=1), name='input_q')(inputs)".format(*formats["input"])]
    for step in spec["layers"][1:]:
        name, (bits, integer) = step["name"].replace("-", "_").replace(".", "_"), formats[step["name"]]
        weights = (f"kernel_quantizer=quantized_bits({bits}, 0, alpha=1), bias_quantizer=quantized_bits({bits}, "
                   f"{integer}, alpha=1), bias_initializer=tf.keras.initializers.RandomUniform(-1, 1), "
                   f"use_bias={step['use_bias']!r}" if step["op"] in ("dense", "conv") else "")
        if step["op"] == "dense":
            lines.append(f"x = QDense({step['units']}, {weights}, name={name!r})(x)")
        elif step["op"] == "conv":
            cls = "QConv1D" if len(step["kernel"]) == 1 else "QConv2D"
            lines.append(f"x = {cls}({step['filters']}, {tuple(step['kernel'])!r}, strides={tuple(step['strides'])!r}, "
                         f"padding={step['padding']!r}, {weights}, name={name!r})(x)")
        elif step["op"] == "flatten":
            lines.append(f"x = tf.keras.layers.Flatten(name={name!r})(x)")
        elif step["op"] == "dropout":
            lines.append(f"x = tf.keras.layers.Dropout(0.5, name={name!r})(x)")
        if step["op"] in ("dense", "conv", "activation", "quantize"):
            relu = step.get("activation") == "relu"
            quantizer = f"quantized_relu({bits}, {integer})" if relu else f"quantized_bits({bits}, {integer}, alpha=1)"
            lines.append(f"x = QActivation({quantizer}, name={name + '_q'!r})(x)")
    lines += ["model = tf.keras.Model(inputs, x, name='twin')", "model.save(sys.argv[1])",
              "from qkeras.utils import load_qmodel",
              "np.save(sys.argv[3], np.asarray(load_qmodel(sys.argv[1], compile=False)(np.load(sys.argv[2]), "
              "training=False)))"]
    return "\n".join(lines) + "\n"


def grid_inputs(spec: dict) -> np.ndarray:
    """Inputs on the grid of the twin's input quantizer (codes of quantized_bits(bits, integer)),
    a tenth of them scaled 3x beyond its range (they saturate)."""
    bits, integer = twin_formats(spec)["input"]
    rng = np.random.default_rng(spec["seed"] + 1)
    codes = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), size=(GRID_SAMPLES, *spec["input_shape"]))
    x = (codes / 2.0 ** (bits - 1 - integer)).astype(np.float32)
    x[: GRID_SAMPLES // 10] *= 3.0
    return x


def check_twin(spec: dict, workdir) -> Outcome | None:
    """None without a twin; else ``exact`` (the import equals QKeras on the grid), ``refused``
    (a typed error of the importer) or a failure (``twin-build-failure``, ``import-crash``, ``mismatch``)."""
    import traceback

    from ..errors import HGQChipError
    from ..qkeras_import import from_qkeras, run_legacy_python

    script = qkeras_twin_script(spec)
    if script is None:
        return None
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    x = grid_inputs(spec)
    np.save(workdir / "x.npy", x)
    result = run_legacy_python(["-c", script, str(workdir / "twin.h5"), str(workdir / "x.npy"), str(workdir / "y.npy")])
    if result.returncode != 0:
        return Outcome("twin-build-failure", result.stderr[-3000:] + "\n" + script)
    try:
        model = from_qkeras(workdir / "twin.h5", log=lambda *_: None)
    except HGQChipError as error:
        return Outcome("refused", str(error)[:500], type(error).__name__)
    except Exception as error:  # noqa: BLE001  (any other type is the failure being looked for)
        return Outcome("import-crash", traceback.format_exc()[-3000:], type(error).__name__)
    y, expected = np.asarray(model(x, training=False)), np.load(workdir / "y.npy")
    if y.shape != expected.shape or not np.array_equal(y, expected):
        differ = int(np.sum(y != expected)) if y.shape == expected.shape else -1
        return Outcome("mismatch", f"{differ} of {expected.size} values differ from QKeras\n{json.dumps(spec)}")
    return Outcome("exact", f"the import equals QKeras on {len(x)} grid inputs ({expected.size} values)")
