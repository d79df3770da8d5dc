"""``run_quantized_layer_test``: every check a quantized layer class must pass, in one call.

Modelled on Keras' ``run_layer_test`` (keras-team/keras, ``testing/test_case.py``), with the
checks hgq_chip's promise needs. Given a factory ``layer_factory(**kwargs) -> layer`` (the
kwargs are Keras layer arguments such as ``dtype``) and the per-sample input shape, it checks:

1. mixed precision is refused: ``dtype="mixed_float16"`` / ``"mixed_bfloat16"``, and a global
   mixed policy, raise :class:`~hgq_chip.errors.UnsupportedConfigurationError` naming the layer
   at construction; with the global policy mixed, ``dtype="float32"`` gives float32 sublayers
   (quantizers) and a float32 output;
2. the symbolic output shape equals ``compute_output_shape``;
3. the numbers of trainable and non-trainable variables (``f``, kernel, bias; ranges, ``beta``);
4. ``expected_losses`` losses (the EBOPs term: one per quantized layer with multiplications)
   after a training call and none after an inference call;
5. after calibration, the inference output equals ``reference(layer, x)`` (NumPy) exactly;
6. a config round trip through JSON (``from_config``, weights copied) and a ``.keras`` save and
   load give the same config, the same weights and the same outputs (``np.array_equal``);
7. one ``fit`` step of the model compiled with ``jit_compile="auto"`` runs, its loss is finite
   and it changes a trainable variable (skipped for a layer without trainable variables).

Failures raise AssertionError with what differs (no pytest needed). Inputs are float32, shape
``(batch, *input_shape)``; a list of shapes means a layer with several inputs.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from ..calibration import activation_quantizers, calibrate
from ..errors import UnsupportedConfigurationError

MIXED_POLICIES = ("mixed_float16", "mixed_bfloat16")


@dataclass
class LayerTestReport:
    """What :func:`run_quantized_layer_test` saw: shapes, variable counts, seconds per step."""

    layer_class: str
    output_shape: tuple
    trainable: int
    non_trainable: int
    seconds: dict[str, float] = field(default_factory=dict)


def _shapes(input_shape) -> list[tuple]:
    return [tuple(s) for s in input_shape] if isinstance(input_shape, list) else [tuple(input_shape)]


def _one_or_list(items: list):
    return items if len(items) > 1 else items[0]


def _numpy(value) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(value))


def _sublayers(layer) -> list:
    return [value for value in vars(layer).values() if isinstance(value, keras.layers.Layer)]


def check_mixed_precision_refused(layer_factory, x) -> None:
    """Step 1 of the module docstring (restores the global dtype policy)."""
    for policy in MIXED_POLICIES:
        try:
            layer = layer_factory(dtype=policy)
        except UnsupportedConfigurationError as error:
            assert "layer '" in str(error) and policy in str(error), f"the refusal names no layer/policy: {error}"
        else:
            raise AssertionError(f"{type(layer).__name__}(dtype={policy!r}) was accepted")
    previous = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy(MIXED_POLICIES[0])
        try:
            layer = layer_factory()
        except UnsupportedConfigurationError:
            pass
        else:
            raise AssertionError(f"{type(layer).__name__} was accepted under the global policy {MIXED_POLICIES[0]!r}")
        layer = layer_factory(dtype="float32")
        out = layer(x, training=False)
        policies = {sub.name: sub.dtype_policy.name for sub in _sublayers(layer)}
        assert all(name == "float32" for name in policies.values()), f"sublayer policies under a global mix: {policies}"
        assert _numpy(out).dtype == np.float32, f"output dtype {_numpy(out).dtype} under a global mixed policy"
    finally:
        keras.config.set_dtype_policy(previous)


def _check_round_trips(model, layer, x, directory: Path) -> None:
    y = _numpy(model(x, training=False))
    config = layer.get_config()
    revived = type(layer).from_config(json.loads(json.dumps(config)))
    revived_out = revived(x, training=False)  # builds it
    revived.set_weights(layer.get_weights())
    assert revived.get_config() == config, "get_config differs after a JSON from_config round trip"
    assert np.array_equal(_numpy(revived(x, training=False)), y), "from_config + set_weights changed the output"
    assert _numpy(revived_out).shape == y.shape

    path = directory / "layer.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    twin = loaded.get_layer(layer.name)
    assert type(twin) is type(layer) and twin.get_config() == config, "the .keras round trip changed the layer"
    assert [w.path for w in twin.weights] == [w.path for w in layer.weights], "variable paths differ after loading"
    for a, b in zip(layer.weights, twin.weights):
        assert np.array_equal(_numpy(a), _numpy(b)), f"{a.path} changed in the .keras round trip"
    assert np.array_equal(_numpy(loaded(x, training=False)), y), "the loaded model computes something else"
    if hasattr(layer, "ebops_exact"):
        assert twin.ebops_exact() == layer.ebops_exact()


def _check_fit_step(model, layer, x) -> None:
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", jit_compile="auto")
    target = np.zeros_like(_numpy(model(x, training=False)))
    before = [_numpy(w).copy() for w in layer.trainable_weights]
    history = model.fit(x, target, batch_size=len(target), epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][-1]), f"fit loss {history.history['loss']}"
    if before:
        after = [_numpy(w) for w in layer.trainable_weights]
        assert any(not np.array_equal(a, b) for a, b in zip(before, after)), "one fit step changed no trainable weight"


def run_quantized_layer_test(layer_factory, input_shape, *, expected_trainable: int, expected_non_trainable: int,
                             expected_losses: int = 1, reference=None, seed: int = 0, batch: int = 16,
                             scale: float = 1.5, check_mixed_precision: bool = True, fit: bool = True,
                             directory=None) -> LayerTestReport:
    """Run the checks of the module docstring on ``layer_factory()``; AssertionError on a failure.

    ``input_shape``: per-sample shape (no batch axis), or a list of them. ``reference(layer, x)``
    returns the expected float32 inference output (x: float32, batch first) from NumPy alone.
    Inputs are uniform in [-scale, scale]. ``directory`` holds the ``.keras`` file (a temporary
    one by default).
    """
    seconds = {}
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    shapes = _shapes(input_shape)
    x = _one_or_list([rng.uniform(-scale, scale, (batch, *s)).astype(np.float32) for s in shapes])
    if check_mixed_precision:
        check_mixed_precision_refused(layer_factory, x)
    seconds["mixed_precision"] = time.perf_counter() - start

    layer = layer_factory()
    inputs = [keras.Input(s) for s in shapes]
    out = layer(_one_or_list(inputs))
    model = keras.Model(_one_or_list(inputs), out)
    expected_shape = layer.compute_output_shape(_one_or_list([(None, *s) for s in shapes]))
    assert tuple(out.shape) == tuple(expected_shape), f"output {tuple(out.shape)} vs compute_output_shape {expected_shape}"
    counts = (len(layer.trainable_weights), len(layer.non_trainable_weights))
    assert counts == (expected_trainable, expected_non_trainable), (
        f"(trainable, non-trainable) = {counts}, expected {(expected_trainable, expected_non_trainable)}: "
        f"{[w.path for w in layer.trainable_weights]} / {[w.path for w in layer.non_trainable_weights]}")

    if activation_quantizers(model):
        calibrate(model, x)
    model(x, training=True)
    assert len(model.losses) == expected_losses, f"{len(model.losses)} losses in training, expected {expected_losses}"
    assert all(np.isfinite(_numpy(loss)).all() and np.ndim(_numpy(loss)) == 0 for loss in model.losses)
    model(x, training=False)
    assert len(model.losses) == 0, f"{len(model.losses)} losses at inference"
    seconds["build_and_losses"] = time.perf_counter() - start - sum(seconds.values())

    if reference is not None:
        got = _numpy(model(x, training=False))
        expected = np.asarray(reference(layer, x))
        bad = got != expected
        assert got.shape == expected.shape and not bad.any(), (
            f"{int(bad.sum())} of {bad.size} outputs differ from the NumPy reference; first at "
            f"{np.argwhere(bad)[0].tolist() if bad.any() else '?'}")

    with tempfile.TemporaryDirectory() as temporary:
        _check_round_trips(model, layer, x, Path(directory or temporary))
    seconds["round_trips"] = time.perf_counter() - start - sum(seconds.values())
    if fit and layer.trainable_weights:  # a layer without variables (HAdd) has nothing to train
        _check_fit_step(model, layer, x)
    seconds["fit"] = time.perf_counter() - start - sum(seconds.values())
    return LayerTestReport(type(layer).__name__, tuple(out.shape), *counts, seconds)
