"""Every table-using layer gives the same bits under TensorFlow, JAX (with and without x64) and
PyTorch (issue 33): HActivation with each supported table function on every input code of its
input format, HSoftmax (stable, not stable, scaled), HMultiHeadAttention and HLayerNormalization
(its rsqrt table) on a large grid of input codes, ASQ/POST layers (a POST α and an LSQ step set on
the float32 rounding threshold of log2) on a grid of inputs; inference, and the training forward
value of HActivation, HSoftmax and HLayerNormalization.

The models are built and calibrated here, saved once; one child process per backend (Keras
fixes its backend at import) loads the same ``.keras`` files and writes its outputs to an
``.npz``; every child's outputs must equal the others' and, for HActivation, the firmware
table's entries (``HActivation.table_outputs``) with ``np.array_equal``. A backend whose
package is not installed is skipped with the reason.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from hgq_chip.calibration import calibrate
from hgq_chip.layers import ASQDense, HActivation, HLayerNormalization, HMultiHeadAttention, HQuantize, HSoftmax
from hgq_chip.layers.tables import ACTIVATION_FUNCTIONS
from hgq_chip.quantizers.lsq import SQRT_HALF_CEILING

pytestmark = pytest.mark.keras_level  # also run under JAX in CI (docs/backends.md, "Backends in CI")

ROOT = Path(__file__).resolve().parents[1]
# (name, KERAS_BACKEND, JAX_ENABLE_X64, module that must be installed)
RUNS = [("tensorflow", "tensorflow", "0", "tensorflow"), ("jax", "jax", "0", "jax"), ("jax_x64", "jax", "1", "jax"),
        ("torch", "torch", "0", "torch")]
ACTIVATIONS = sorted(ACTIVATION_FUNCTIONS)
SOFTMAX_ROWS = 8000

CHILD = """
    import sys, numpy as np, keras, hgq_chip
    from hgq_chip.errors import UnsupportedConfigurationError
    from hgq_chip.quantizers.dtype_policy import float64_available
    data = np.load("in.npz")
    out = {}
    def run(model, prefix, x, train=True):
        for mode, training in (("infer", False), ("train", True))[: 2 if train else 1]:
            ys = model(x, training=training)
            ys = ys if isinstance(ys, (list, tuple)) else [ys]
            for i, y in enumerate(ys):
                out[f"{prefix}_{mode}_{i}"] = keras.ops.convert_to_numpy(y)
    run(keras.saving.load_model("act.keras"), "act", data["act"])
    run(keras.saving.load_model("softmax.keras"), "softmax", data["softmax"])
    run(keras.saving.load_model("attention.keras"), "attention", data["attention"], train=False)
    run(keras.saving.load_model("layernorm.keras"), "layernorm", data["layernorm"])
    if float64_available():
        run(keras.saving.load_model("asq.keras"), "asq", data["asq"], train=False)
    else:
        try:
            keras.saving.load_model("asq.keras")
        except Exception as error:  # Keras may wrap the layer's typed error
            assert "JAX_ENABLE_X64=1" in str(error), str(error)
            out["asq_refused"] = np.array(1)
        else:
            raise SystemExit("ASQ loaded without float64")
    np.savez("out.npz", **out)
"""


def activation_model():
    """One input element, one HActivation per table function (input k=1 i=2 f=11: 16384 codes)."""
    inp = keras.Input((1,), name="x")
    outputs = [HActivation(name, input_quantizer={"init_f": 11.0}, output_quantizer={"init_f": 16.0}, name=name)(inp)
               for name in ACTIVATIONS]
    return keras.Model(inp, outputs)


def softmax_model():
    inp = keras.Input((4,), name="x")
    quantizers = {"input_quantizer": {"init_f": 4.0}, "exp_quantizer": {"init_f": 12.0},
                  "inverse_quantizer": {"init_f": 12.0}, "output_quantizer": {"init_f": 12.0}}
    outputs = [HSoftmax(stable=True, name="stable", **quantizers)(inp),
               HSoftmax(stable=False, name="unstable", **quantizers)(inp),
               HSoftmax(stable=True, scale=0.35, name="scaled", **quantizers)(inp)]
    return keras.Model(inp, outputs)


def attention_model():
    keras.utils.set_random_seed(3)
    inp = keras.Input((5, 6), name="x")
    x = HQuantize({"granularity": "per-layer", "init_f": 4.0}, name="q")(inp)
    return keras.Model(inp, HMultiHeadAttention(2, 4, name="mha")(x, x))


def layernorm_model():
    """HLayerNormalization over 6 elements: its rsqrt table (var_q with 6 fractional bits) and the
    per-element gamma/beta."""
    keras.utils.set_random_seed(5)
    inp = keras.Input((6,), name="x")
    fine = {"init_f": 8.0}
    return keras.Model(inp, HLayerNormalization(gamma_initializer="random_normal", beta_initializer="random_normal",
                                                variance_quantizer={"init_f": 6.0}, rsqrt_quantizer=fine,
                                                normalized_quantizer=fine, output_quantizer=fine, name="ln")(inp))


def asq_model():
    """ASQ + POST and LSQ + POT branches; α and the LSQ step exactly on float32's threshold
    2**(k - 1/2) of round(log2 ·), where a backend's log2 one ulp off would move the exponent."""
    keras.utils.set_random_seed(4)
    inp = keras.Input((8,), name="x")
    x = HQuantize({"granularity": "per-layer", "init_f": 5.0}, name="q")(inp)
    a = ASQDense(6, input_quantizer={"kind": "asq", "bits": 4, "signed": True, "adapter_hidden": 2},
                 kernel_quantizer={"kind": "post", "bits": 4}, name="asq_post")(x)
    b = ASQDense(6, input_quantizer={"kind": "lsq", "bits": 4, "signed": True},
                 kernel_quantizer={"kind": "pot", "bits": 4}, name="lsq_pot")(x)
    model = keras.Model(inp, [a, b])
    threshold = SQRT_HALF_CEILING["float32"]
    model.get_layer("asq_post").kq.alpha.assign(threshold * 0.5)
    model.get_layer("lsq_pot").iq.step.assign(threshold * 0.25)
    rng = np.random.default_rng(4)
    for name in ("a1", "d1", "a2"):
        var = getattr(model.get_layer("asq_post").iq, name)
        var.assign(rng.normal(0.0, 0.3, var.shape))
    return model


def every_code(fmt) -> np.ndarray:
    scale = 2.0**fmt.f
    return (np.arange(round(fmt.min * scale), round(fmt.max * scale) + 1) / scale).astype(np.float32)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The four models, calibrated and saved, their inputs, and the expected HActivation outputs."""
    path = tmp_path_factory.mktemp("tables")
    rng = np.random.default_rng(0)
    act = activation_model()
    calibrate(act, np.array([[-4.0], [3.999]], np.float32))
    fmt = act.get_layer("tanh").iq.fixed_format().covering()
    act_x = np.concatenate([every_code(fmt), np.float32([-9.0, -4.5, 4.5, 9.0])])[:, None]
    expected = {name: act.get_layer(name).table_outputs(act.get_layer(name).iq.quantize_np(act_x).reshape(-1))
                for name in ACTIVATIONS}
    softmax = softmax_model()
    calibrate(softmax, np.float32([[-4.0, 3.9, 0.0, 1.0]]))
    codes = rng.integers(-64, 64, (SOFTMAX_ROWS, 4))
    codes[:200] = codes[:200, :1]  # equal entries: exp(0) everywhere
    softmax_x = (codes / 16.0).astype(np.float32)
    attention = attention_model()
    attention_x = (rng.integers(-48, 48, (64, 5, 6)) / 16.0).astype(np.float32)
    calibrate(attention, attention_x)
    layernorm = layernorm_model()
    layernorm_x = (rng.integers(-64, 64, (SOFTMAX_ROWS, 6)) / 16.0 * rng.uniform(0.05, 1.0, (SOFTMAX_ROWS, 1)))
    layernorm_x = layernorm_x.astype(np.float32)
    calibrate(layernorm, layernorm_x)
    asq = asq_model()
    asq_x = (rng.normal(0.0, 1.0, (512, 8)) * rng.uniform(0.3, 2.0, (512, 1))).astype(np.float32)
    calibrate(asq, asq_x)
    for name, model in (("act", act), ("softmax", softmax), ("attention", attention), ("asq", asq),
                        ("layernorm", layernorm)):
        model.save(path / f"{name}.keras")
    np.savez(path / "in.npz", act=act_x, softmax=softmax_x, attention=attention_x, asq=asq_x, layernorm=layernorm_x)
    return path, expected


def run_child(path: Path, backend: str, x64: str, module: str) -> dict:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"the {backend} backend is not installed (pip install {module}; torch: see docs/backends.md, 'PyTorch')")
    out = path / f"out_{backend}_{x64}"
    out.mkdir(exist_ok=True)
    for name in ("act", "softmax", "attention", "asq", "layernorm"):
        target = out / f"{name}.keras"
        if not target.exists():
            target.symlink_to(path / f"{name}.keras")
    if not (out / "in.npz").exists():
        (out / "in.npz").symlink_to(path / "in.npz")
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_ENABLE_X64=x64, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD)], cwd=out, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(out / "out.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def outputs(saved):
    """Each installed backend's outputs (a missing one is absent; its own test case skips)."""
    path, _ = saved
    results = {}
    for run, backend, x64, module in RUNS:
        if importlib.util.find_spec(module) is not None:
            results[run] = run_child(path, backend, x64, module)
    return results


@pytest.mark.parametrize("run,backend,x64,module", RUNS, ids=[r[0] for r in RUNS])
def test_every_table_layer_gives_the_same_bits_on_this_backend(run, backend, x64, module, saved, outputs):
    if run not in outputs:
        pytest.skip(f"the {backend} backend is not installed (pip install {module}; torch: see docs/backends.md, 'PyTorch')")
    _, expected = saved
    mine = outputs[run]
    reference = outputs.get("tensorflow") or next(iter(outputs.values()))
    for i, name in enumerate(ACTIVATIONS):
        got = mine[f"act_infer_{i}"].reshape(-1)
        assert np.array_equal(got, expected[name].astype(got.dtype)), (
            name, int(np.sum(got != expected[name])), "codes differ from the firmware table")
    for key, value in reference.items():
        if key.startswith("asq") and "asq_refused" in mine:
            continue  # JAX without x64 refuses ASQ/POST (float64 inference), checked below
        assert key in mine, key
        assert np.array_equal(mine[key], value), (key, int(np.sum(mine[key] != value)), value.size)
    if backend == "jax" and x64 == "0":
        assert "asq_refused" in mine
    else:
        assert "asq_infer_0" in mine
    assert len([k for k in mine if k.startswith("act_infer_")]) == len(ACTIVATIONS)


def test_the_numpy_table_functions_are_the_keras_activations():
    """Formula check (not a bit-exactness test): each NumPy function matches its keras.activations
    function in this backend's float64 to 1e-7 relative over [-12, 12] (backends' float64 kernels
    differ in the last bits; TensorFlow's leaky_relu uses a float32 slope, 1.5e-8 off; 1e-6 where
    Keras returns float32)."""
    from hgq_chip.quantizers.dtype_policy import float64_available

    if not float64_available():
        pytest.skip("this backend computes float64 as float32 (JAX without JAX_ENABLE_X64)")
    x = np.linspace(-12.0, 12.0, 4801)
    for name, fn in ACTIVATION_FUNCTIONS.items():
        got = keras.ops.convert_to_numpy(keras.activations.get(name)(keras.ops.convert_to_tensor(x, "float64")))
        want = fn(x)
        # JAX's Keras tanh returns float32 for a float64 input: a few float32 ulps there.
        tolerance = 1e-7 if got.dtype == np.float64 else 1e-6
        assert np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want))) < tolerance, name


def test_an_activation_without_a_numpy_table_is_refused_naming_the_supported_ones():
    from hgq_chip.errors import UnsupportedLayerError

    def cube(x):
        return x * x * x

    with pytest.raises(UnsupportedLayerError, match="no backend-independent table.*tanh"):
        HActivation(cube, name="cube")
