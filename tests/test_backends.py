"""Every Keras backend computes the same bits: cross-backend predictions, float64 on JAX, a
model trained and calibrated under JAX converted and verified, a model with tables saved under
each backend converted and verified under the others (tables per input code:
``test_backend_tables.py``).

Other backends run in child processes (Keras fixes its backend at import), each given the
same saved model and inputs; their outputs must equal this process's with ``np.array_equal``.
A backend that is not installed is reported as a skip with the reason.
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
from hgq_chip.errors import UnsupportedConfigurationError
from hgq_chip.layers import ASQDense, HActivation, HAdd, HConv1D, HDense, HQuantize
from hgq_chip.quantizers.dtype_policy import float64_available

pytestmark = pytest.mark.keras_level  # also run under JAX in CI (docs/backends.md, "Backends in CI")

BACKEND_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
ROOT = Path(__file__).resolve().parents[1]


def run_under(backend: str, script: str, tmp_path: Path, *, x64: bool = True) -> subprocess.CompletedProcess:
    """Run ``script`` in a child Python with ``KERAS_BACKEND=backend`` (JAX with x64 unless told)."""
    if importlib.util.find_spec(BACKEND_MODULES[backend]) is None:
        pytest.skip(f"the {backend} backend is not installed (pip install {BACKEND_MODULES[backend]})")
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", JAX_ENABLE_X64="1" if x64 else "0",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def mixed_model(seed: int = 0) -> keras.Model:
    """Per-element bits, a conv, a table activation, an add: every quantizer kind HGQ has."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((12, 3), name="x")
    x = HQuantize({"init_f": 3.0}, name="q")(inp)
    a = HConv1D(4, 3, activation="relu", name="conv")(x)
    a = keras.layers.Flatten(name="flat")(a)
    b = HDense(40, name="dense_a")(a)
    c = HActivation("tanh", name="act")(b)
    out = HAdd(name="add")([HDense(40, name="dense_b")(a), c])
    model = keras.Model(inp, HDense(5, name="head")(out))
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for q in (getattr(layer, name, None) for name in ("iq", "kq", "bq", "oq")):
            if q is not None and hasattr(q, "f"):
                q.f.assign(rng.uniform(1.0, 6.0, q.f.shape).astype("float32"))
    return model


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_other_backends_give_identical_quantized_outputs(backend, tmp_path):
    if backend == keras.backend.backend():
        pytest.skip(f"{backend} is this process's backend: compared with the others in their cases")
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1.5, (256, 12, 3)).astype("float32")
    model = mixed_model()
    calibrate(model, x[:128])
    model.save(tmp_path / "m.keras")
    wide = (x * 4.0).astype("float32")  # outside the calibrated ranges: wraps and saturations
    np.savez(tmp_path / "in.npz", x=x, wide=wide)
    here = {name: keras.ops.convert_to_numpy(model(v, training=False)) for name, v in (("x", x), ("wide", wide))}
    run_under(backend, """
        import numpy as np, keras, hgq_chip
        model = keras.saving.load_model("m.keras")
        data = np.load("in.npz")
        np.savez("out.npz", **{k: keras.ops.convert_to_numpy(model(data[k], training=False)) for k in ("x", "wide")})
    """, tmp_path)
    there = np.load(tmp_path / "out.npz")
    for name in here:
        assert np.array_equal(here[name], there[name]), name


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the reference run is TensorFlow's")
def test_jax_without_x64_refuses_float64_layers_and_asq(tmp_path):
    """JAX silently computes float64 as float32 without x64: float64 policies, ASQ/POST
    layers (exact inference in float64) and BatchNorm-fused layers (fold in float64) are
    refused when built, naming the fix."""
    assert float64_available()  # TensorFlow always has float64
    result = run_under("jax", """
        import keras
        from hgq_chip.errors import UnsupportedConfigurationError
        from hgq_chip.layers import ASQDense, HDenseBatchNorm, HQuantize
        from hgq_chip.quantizers.dtype_policy import float64_available
        assert not float64_available()
        HQuantize(name="q32")  # float32 is exact everywhere
        for build in (lambda: HQuantize(dtype="float64", name="q64"), lambda: ASQDense(3, name="asq"),
                      lambda: HDenseBatchNorm(3, name="bn")):
            try:
                build()
            except UnsupportedConfigurationError as error:
                print(error)
            else:
                raise SystemExit("not refused")
    """, tmp_path, x64=False)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and all("JAX_ENABLE_X64=1" in line for line in lines)
    assert "'q64'" in lines[0] and "'asq'" in lines[1] and "'bn'" in lines[2]
    ASQDense(3)
    HQuantize(dtype="float64")


def test_float64_is_available_on_this_backend_and_checked_by_layers():
    """In the test run's own backend (TensorFlow, or JAX with JAX_ENABLE_X64=1 as CI runs it)."""
    if keras.backend.backend() == "jax" and not float64_available():
        with pytest.raises(UnsupportedConfigurationError, match="JAX_ENABLE_X64"):
            HQuantize(dtype="float64")
    else:
        assert float64_available()
        assert HQuantize(dtype="float64").compute_dtype == "float64"


@pytest.mark.slow
def test_a_model_trained_and_calibrated_under_jax_converts_and_verifies(tmp_path):
    """The user's flow under plain JAX (no x64): train with ResetRanges, LogRampBeta (whole fit),
    EBOPsMetric and ParetoCheckpoint, calibrate, save; then the CLI converts and verifies (test data
    and 4x outside the calibrated range) bit-exact, with nothing on stderr under --quiet."""
    run_under("jax", """
        import numpy as np, keras, hgq_chip
        from sklearn.datasets import load_digits
        from hgq_chip.layers import HDense, HQuantize
        from hgq_chip.training import EBOPsMetric, LogRampBeta, ParetoCheckpoint, ResetRanges
        keras.utils.set_random_seed(0)
        x, y = load_digits(return_X_y=True)
        x = (x / 16.0).astype("float32")
        inp = keras.Input((64,))
        h = HDense(16, activation="relu")(HQuantize()(inp))
        model = keras.Model(inp, HDense(10)(h))
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        model.fit(x[:1200], y[:1200], validation_data=(x[1200:], y[1200:]), epochs=3, batch_size=64, verbose=0,
                  callbacks=[ResetRanges(), LogRampBeta(1e-6, 1e-4), EBOPsMetric(),
                             ParetoCheckpoint("ckpt", monitor="val_accuracy")])
        assert len(list(__import__("pathlib").Path("ckpt").glob("*.keras"))) >= 1
        hgq_chip.calibrate(model, x[:1200])
        model.save("jax.keras")
        np.save("test.npy", x[1200:])
    """, tmp_path, x64=False)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_ENABLE_X64="0",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user has it: the CLI itself keeps TensorFlow quiet
    cli = [sys.executable, "-m", "hgq_chip.cli"]
    runs = [cli + ["convert", "jax.keras", "--backend", "Vitis", "--output-dir", "prj", "--quiet"],
            cli + ["verify", "jax.keras", "prj", "--data", "test.npy", "--quiet"],
            cli + ["verify", "jax.keras", "prj", "--random", "500", "--scale", "4", "--quiet"]]
    outputs = []
    for command in runs:
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert (done.returncode, done.stderr) == (0, ""), done.stderr[-3000:]
        outputs.append(done.stdout)
    assert all("bit-exact" in out for out in outputs[1:]), outputs


@pytest.mark.slow
def test_a_model_with_tables_saved_under_each_backend_converts_and_verifies_under_the_others(tmp_path):
    """Tables present (HActivation tanh and sigmoid at 16 output bits, HSoftmax): a model built,
    calibrated and saved under TensorFlow, JAX (no x64) and PyTorch is converted by the CLI under
    the next backend and verified bit-exact under both other backends (4x outside the calibrated
    range under the converting backend, the test data under the third): the firmware's tables equal every backend's Keras tables."""
    order = ["tensorflow", "jax", "torch"]
    for backend in order:
        if importlib.util.find_spec(BACKEND_MODULES[backend]) is None:
            pytest.skip(f"the {backend} backend is not installed (pip install {BACKEND_MODULES[backend]})")
    for source in order:
        run_under(source, f"""
            import numpy as np, keras, hgq_chip
            from hgq_chip.layers import HActivation, HDense, HQuantize, HSoftmax
            keras.utils.set_random_seed(5)
            inp = keras.Input((6,))
            h = HDense(8)(HQuantize({{"init_f": 5.0}})(inp))
            a = HActivation("tanh", input_quantizer={{"init_f": 9.0}}, output_quantizer={{"init_f": 16.0}})(h)
            b = HActivation("sigmoid", input_quantizer={{"init_f": 9.0}}, output_quantizer={{"init_f": 16.0}})(h)
            logits = HDense(4)(keras.layers.Concatenate()([a, b]))
            model = keras.Model(inp, HSoftmax(output_quantizer={{"init_f": 12.0}})(logits))
            x = np.random.default_rng(5).normal(0, 1.0, (400, 6)).astype("float32")
            hgq_chip.calibrate(model, x)
            model.save("{source}.keras")
            np.save("test_{source}.npy", x[:200])
        """, tmp_path, x64=False)
    cli = [sys.executable, "-m", "hgq_chip.cli"]
    for position, source in enumerate(order):
        converter = order[(position + 1) % 3]
        project = f"prj_{source}"
        steps = [(converter, ["convert", f"{source}.keras", "--backend", "Vitis", "--output-dir", project, "--quiet"])]
        # The converter's backend checks 4x out-of-range inputs, the third backend the test data (each
        # backend thus verifies two of the three projects; one CLI start costs 10-20 s of imports).
        steps.append((converter, ["verify", f"{source}.keras", project, "--random", "300", "--scale", "4", "--quiet"]))
        steps.append((order[(position + 2) % 3], ["verify", f"{source}.keras", project, "--data", f"test_{source}.npy",
                                                  "--quiet"]))
        for backend, arguments in steps:
            env = dict(os.environ, KERAS_BACKEND=backend, JAX_ENABLE_X64="0", TF_CPP_MIN_LOG_LEVEL="3",
                       PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
            done = subprocess.run(cli + arguments, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
            assert (done.returncode, done.stderr) == (0, ""), (source, backend, arguments, done.stderr[-3000:])
            if arguments[0] == "verify":
                assert "bit-exact" in done.stdout, (source, backend, arguments, done.stdout)
