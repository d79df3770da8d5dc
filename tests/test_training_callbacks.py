"""Beta schedules, the PID controller, EBOPs logging, range resets and Pareto checkpoints."""

import json
import time
import math
import os

import keras
import numpy as np
import pytest

from hgq_chip import cost
from hgq_chip.calibration import activation_quantizers
from hgq_chip.errors import OutputExistsError
from hgq_chip.layers import HDense, HQuantize
from hgq_chip.training import (
    ConstantBeta,
    EBOPsMetric,
    LinearBeta,
    LogRampBeta,
    ParetoCheckpoint,
    PIDBeta,
    PiecewiseBeta,
    ResetRanges,
)

pytestmark = pytest.mark.keras_level  # also run under JAX in CI (docs/backends.md, "Backends in CI")


def _tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    x = HQuantize()(inputs)
    x = HDense(5, activation="relu")(x)
    outputs = HDense(3)(x)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def _data(n=48):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1).astype(np.int64)


def _layer_betas(model):
    return [float(layer.beta.numpy()) for layer in model.layers if hasattr(layer, "beta")]


def test_schedule_values():
    assert LinearBeta(0.0, 1.0, stop=4).beta_at(1) == 0.25
    assert LinearBeta(0.0, 1.0, stop=4, start=2).beta_at(0) == 0.0
    assert LinearBeta(0.0, 1.0, stop=4).beta_at(9) == 1.0
    assert math.isclose(LogRampBeta(1e-6, 1e-4, stop=2).beta_at(1), 1e-5, rel_tol=1e-12)
    assert math.isclose(LogRampBeta(1e-6, 1e-4, stop=4).beta_at(3) / LogRampBeta(1e-6, 1e-4, stop=4).beta_at(2), 10**0.5)
    steps = PiecewiseBeta([(0, 1e-6), (3, 1e-5), (5, 0.0)], interpolation="step")
    assert [steps.beta_at(e) for e in (0, 2.9, 3, 4, 6)] == [1e-6, 1e-6, 1e-5, 1e-5, 0.0]
    assert ConstantBeta(3e-5).beta_at(100) == 3e-5


@pytest.mark.parametrize(
    "knots, interpolation",
    [([], "log"), ([(0, 1.0), (0, 2.0)], "log"), ([(0, 0.0), (1, 1.0)], "log"), ([(0, 1.0)], "cubic"), ([(0, -1.0)], "step")],
)
def test_schedule_rejects_bad_knots(knots, interpolation):
    with pytest.raises(ValueError):
        PiecewiseBeta(knots, interpolation=interpolation)


def test_schedule_sets_layer_beta_and_logs_it():
    model = _tiny_model()
    x, y = _data()
    schedule = LogRampBeta(1e-6, 1e-4, stop=2)
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[schedule])
    expected = [schedule.beta_at(e) for e in range(3)]
    assert history.history["beta"] == expected
    assert _layer_betas(model) == pytest.approx([1e-4, 1e-4], rel=1e-6)  # float32 variables


@pytest.mark.parametrize("epochs, expected", [(5, [1e-6, 10**-5.5, 1e-5, 10**-4.5, 1e-4]), (1, [1e-6])])
def test_ramp_without_stop_spans_the_whole_fit(epochs, expected):
    """LogRampBeta(beta0, beta1) with no stop ramps from the first to the last epoch of the fit."""
    model = _tiny_model()
    x, y = _data()
    schedule = LogRampBeta(1e-6, 1e-4)
    for _ in range(2):  # the same callback in a second fit ramps again
        history = model.fit(x, y, epochs=epochs, batch_size=16, verbose=0, callbacks=[schedule])
        assert history.history["beta"] == pytest.approx(expected, rel=1e-12)
    linear = LinearBeta(0.0, 1.0)
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[linear])
    assert [linear.beta_at(e) for e in range(3)] == [0.0, 0.5, 1.0]


def test_per_batch_schedule_moves_within_an_epoch():
    model = _tiny_model()
    x, y = _data()
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(_layer_betas(self.model)[0])

    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[LinearBeta(0.0, 1.0, stop=1, per_batch=True), Spy()])
    assert seen == pytest.approx([0.0, 1 / 3, 2 / 3])


def test_ebops_metric_is_exact_and_printed(capsys):
    model = _tiny_model()
    x, y = _data()
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=2, callbacks=[ResetRanges(), ConstantBeta(1e-3), EBOPsMetric()])
    values = history.history["ebops"]
    assert all(isinstance(v, int) and v > 0 for v in values)
    assert values[-1] == cost.ebops(model)
    printed = capsys.readouterr().out
    assert f"ebops: {values[-1]}" in printed and "beta: " in printed


def test_reset_ranges_clears_every_activation_quantizer():
    model = _tiny_model()
    x, _ = _data()
    model(x, training=True)
    quantizers = activation_quantizers(model)
    assert len(quantizers) == 3 and all(q.calibrated for q in quantizers)
    callback = ResetRanges()
    callback.set_model(model)
    callback.on_epoch_begin(0)
    assert not any(q.calibrated for q in quantizers)
    assert all(not np.any(q.range_hi.numpy()) and not np.any(q.range_lo.numpy()) for q in quantizers)


def test_pid_moves_beta_toward_target_and_clamps():
    pid = PIDBeta(target_ebops=1000, beta0=1e-5, kp=1.0, ki=0.5, beta_min=1e-7, beta_max=1e-3)
    up = pid.update(2000)  # 2x too many EBOPs: raise beta
    assert up > 1e-5
    assert math.isclose(up, 1e-5 * math.exp(1.0 * 1.0 + 0.5 * 1.0))
    down = pid.update(500)  # now too few: lower beta again
    assert down < up
    assert pid.update(10**9) == 1e-3  # clamped at beta_max
    integral = pid.integral
    assert pid.update(10**9) == 1e-3
    assert pid.integral == integral  # no wind-up while pushing into the clamp
    assert pid.update(0) < 1e-3  # recovers as soon as the error turns


def test_pid_in_fit_logs_beta_and_uses_logged_ebops():
    model = _tiny_model()
    x, y = _data()
    pid = PIDBeta(target_ebops=10, beta0=1e-6, kp=0.5, ki=0.0, beta_max=1.0)
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[ResetRanges(), EBOPsMetric(), pid])
    first_error = (history.history["ebops"][0] - 10) / 10
    assert history.history["beta"][0] == 1e-6
    assert history.history["beta"][1] == pytest.approx(min(1e-6 * math.exp(0.5 * first_error), 1.0))


def _drive_pareto(callback, points):
    for epoch, (metric, ebops) in enumerate(points):
        callback.on_epoch_end(epoch, {"val_accuracy": metric, "ebops": ebops})


def test_pareto_keeps_only_non_dominated_members(tmp_path):
    model = _tiny_model()
    model(np.zeros((1, 6), np.float32))
    callback = ParetoCheckpoint(str(tmp_path))
    callback.set_model(model)
    callback.on_train_begin()
    # (metric, ebops): 1 dominates 0, 2 and 3 trade off with 1, 4 dominates 2, 5 is dominated by 1 (tie).
    _drive_pareto(callback, [(0.5, 900), (0.6, 800), (0.4, 300), (0.9, 2000), (0.45, 300), (0.6, 800)])
    callback.on_train_end()  # files are written in the background; fit returns after the last one
    front = [(m["epoch"], m["metric"], m["ebops"]) for m in callback.front]
    assert front == [(4, 0.45, 300), (1, 0.6, 800), (3, 0.9, 2000)]
    files = sorted(f for f in os.listdir(tmp_path) if f.endswith(".keras"))
    assert files == sorted(os.path.basename(m["path"]) for m in callback.front)
    assert all("ebops=" in f and "val_accuracy=" in f for f in files)
    with open(tmp_path / "pareto.json") as handle:
        index = json.load(handle)
    assert [(m["epoch"], m["metric"], m["ebops"]) for m in index] == front

    again = ParetoCheckpoint(str(tmp_path))
    again.set_model(model)
    with pytest.raises(OutputExistsError):
        again.on_train_begin()
    resumed = ParetoCheckpoint(str(tmp_path), resume=True)
    resumed.set_model(model)
    resumed.on_train_begin()
    assert resumed.front == callback.front


def test_pareto_in_fit_saves_models_with_their_exact_ebops(tmp_path):
    model = _tiny_model()
    x, y = _data()
    weights_at_epoch = {}
    snapshot = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: weights_at_epoch.update({e: model.get_weights()}))
    callbacks = [ResetRanges(), LogRampBeta(1e-4, 1e-2, stop=3), EBOPsMetric(), ParetoCheckpoint(str(tmp_path)), snapshot]
    model.fit(x, y, validation_data=(x, y), epochs=4, batch_size=16, verbose=0, callbacks=callbacks)
    with open(tmp_path / "pareto.json") as handle:
        index = json.load(handle)
    assert index
    for member in index:
        loaded = keras.models.load_model(member["path"])
        assert cost.ebops(loaded) == member["ebops"]
        assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
        # Written in the background from a copy taken at that epoch's end, not from later weights.
        saved = loaded.get_weights()
        assert all(np.array_equal(a, b) for a, b in zip(saved, weights_at_epoch[member["epoch"]], strict=True))


def test_pareto_members_reach_the_disk_during_training(tmp_path):
    model = _tiny_model()
    x, y = _data()
    seen_during_fit = []

    def look(epoch, logs):
        if epoch == 2:  # after the flush of epoch 1 (in the background), before that of epoch 3
            deadline = time.monotonic() + 30
            while not (tmp_path / "pareto.json").is_file() and time.monotonic() < deadline:
                time.sleep(0.05)
            seen_during_fit.extend(json.loads((tmp_path / "pareto.json").read_text()))

    callbacks = [EBOPsMetric(), ParetoCheckpoint(str(tmp_path), write_every=2), keras.callbacks.LambdaCallback(on_epoch_end=look)]
    model.fit(x, y, validation_data=(x, y), epochs=4, batch_size=16, verbose=0, callbacks=callbacks)
    assert seen_during_fit and all(m["epoch"] <= 1 for m in seen_during_fit)
    with pytest.raises(ValueError, match="write_every"):
        ParetoCheckpoint(str(tmp_path), write_every=0)


def test_pareto_write_failure_is_raised_at_train_end(tmp_path):
    model = _tiny_model()
    model(np.zeros((1, 6), np.float32))
    directory = tmp_path / "front"
    callback = ParetoCheckpoint(str(directory))
    callback.set_model(model)
    callback.on_train_begin()
    directory.rmdir()
    directory.write_text("")  # the checkpoint directory is now a file: the background save must fail
    _drive_pareto(callback, [(0.5, 900)])
    with pytest.raises(OSError):
        callback.on_train_end()


def test_pareto_needs_the_monitored_metric(tmp_path):
    model = _tiny_model()
    x, y = _data()
    with pytest.raises(KeyError, match="validation_data"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[ParetoCheckpoint(str(tmp_path))])
