"""One sweep trial, run by Ray Tune in a worker: train with our callbacks and a ParetoCheckpoint.

The trial's files go to ``OUT/trials/<trial id>/`` (``OUT`` must be on a filesystem every Ray
node sees): ``pareto/`` (the ParetoCheckpoint folder: ``.keras`` members and ``pareto.json``)
and ``params.json``. A trial restarted after a kill starts again from an empty folder. Each
epoch is reported to Tune (``val_accuracy``, ``ebops``, ``epoch``), so results stream back as they
arrive; with ``lut`` / ``latency_ns`` objectives (``objectives.objective_values``, computed after
training) only the last epoch is reported, with them: Tune's search algorithm refuses a result that
lacks one of its metrics.

Keras is imported inside the functions: the driver (``hgq_chip sweep``) never loads it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ..errors import DataError, SweepSpecError
from .objectives import HARDWARE_OBJECTIVES, objective_values
from .spec import import_object

TRIALS_DIR = "trials"
PARETO_DIR = "pareto"
_DATA_CACHE: dict[str, dict] = {}  # per worker process: the data set of a spec, loaded once


def load_data(data_spec: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train", "val", "test"}`` (x, y) arrays of a spec's ``data`` section, cached per process.

    Raises DataError for missing files or arrays the loader returned in another form.
    """
    key = json.dumps(data_spec, sort_keys=True)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = _load(data_spec)
    return _DATA_CACHE[key]


def _load(data_spec: dict) -> dict:
    if "loader" in data_spec:
        data = import_object(data_spec["loader"], "data.loader")(**data_spec.get("args", {}))
        if not isinstance(data, dict) or not {"train", "val"} <= set(data):
            raise DataError(f"data loader {data_spec['loader']} must return {{'train': (x, y), 'val': (x, y), "
                            "'test': (x, y)}}")
    else:
        from ..data import load_npz_arrays

        data = {key: load_npz_arrays(path) for key, path in data_spec.items()}
        if "val" not in data:
            x, y = data["train"]
            order = np.random.default_rng(0).permutation(len(x))
            n_val = max(1, len(x) // 4)
            data["val"], data["train"] = (x[order[:n_val]], y[order[:n_val]]), (x[order[n_val:]], y[order[n_val:]])
    data.setdefault("test", data["val"])
    arrays = {}
    for key, pair in data.items():
        try:
            x, y = (np.asarray(a) for a in pair)
        except (TypeError, ValueError):
            x = y = None
        if x is None or not x.ndim or not y.ndim or len(x) != len(y) or not len(x):
            raise DataError(f"data {key!r} must be a pair (x, y) of arrays with the same number of samples (> 0), "
                            f"got {type(pair).__name__}")
        arrays[key] = (x, y)
    return arrays


def beta_callback(params: dict, epochs: int):
    """The beta schedule of a trial: ``beta_schedule`` log/linear ramp from ``beta_start`` to ``beta_end``,
    ending at ``ramp_fraction`` of the epochs and then held; constant: ``beta_start`` throughout."""
    from ..training import ConstantBeta, LinearBeta, LogRampBeta

    kind = params.get("beta_schedule", "log")
    start, end = float(params["beta_start"]), float(params["beta_end"])
    if kind == "constant":
        return ConstantBeta(start)
    stop = max(min(round(float(params.get("ramp_fraction", 0.8)) * epochs), epochs - 1), 1)
    return (LogRampBeta if kind == "log" else LinearBeta)(start, end, stop=stop)


def trial_dir(out: str, trial_id: str) -> Path:
    return Path(out) / TRIALS_DIR / trial_id


def train_trial(params: dict, *, model_path: str, data_spec: dict, out: str, objectives: dict,
                trial_id: str, report, objective_source: str = "estimate", fanout: dict | None = None) -> dict:
    """Train one model; ``report(metrics)`` is called after every epoch. Returns the last metrics.

    ``params``: the trial's parameters (spec ``space``); the model comes from ``model_path``'s
    builder. The folder ``OUT/trials/<trial_id>`` is emptied first (a restarted trial).
    ``lut`` / ``latency_ns`` objectives are computed on the trained model, calibrated on the
    training set, from ``objective_source`` with the spec's ``fanout`` options (default: the
    spec defaults); see ``objectives.objective_values``.
    """
    import keras

    from ..training import EBOPsMetric, ParetoCheckpoint, ResetRanges

    folder = trial_dir(out, trial_id)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps(params, indent=1, default=str))
    data = load_data(data_spec)
    (x, y), (x_val, y_val) = data["train"], data["val"]
    keras.utils.set_random_seed(int(params.get("seed", 0)))
    n_classes = int(max(y.max(), y_val.max()) + 1)
    model = import_object(model_path, "model")(params, int(np.prod(x.shape[1:])), n_classes)
    if not isinstance(model, keras.Model) or not getattr(model, "compiled", False):
        what = "an uncompiled keras.Model" if isinstance(model, keras.Model) else repr(model)[:80]
        raise SweepSpecError(f"model builder {model_path} returned {what}; it must return a keras.Model compiled "
                             "with an optimizer, a loss and metrics=['accuracy']")
    epochs = int(params.get("epochs", 10))
    last: dict = {}
    hardware = set(objectives) & set(HARDWARE_OBJECTIVES)

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            last.clear()
            last.update({"epoch": epoch, "val_accuracy": float(logs["val_accuracy"]), "ebops": int(logs["ebops"])})
            if not hardware:  # else one report at the end: Tune refuses a result without every objective
                report(dict(last))

    pareto = ParetoCheckpoint(str(folder / PARETO_DIR), monitor="val_accuracy", write_every=max(epochs // 4, 1))
    callbacks = [ResetRanges(), beta_callback(params, epochs), EBOPsMetric(), pareto, Report()]
    model.fit(x, y, validation_data=(x_val, y_val), epochs=epochs, batch_size=int(params.get("batch_size", 256)),
              verbose=0, callbacks=callbacks)
    if hardware:
        from .. import calibrate
        from .spec import FANOUT_DEFAULTS

        calibrate(model, x)
        values = objective_values(model, objectives, objective_source, fanout or dict(FANOUT_DEFAULTS))
        last.update({name: values[name] for name in hardware})
        report(dict(last))
    return last


def tune_trainable(config: dict, *, model_path: str, data_spec: dict, out: str, objectives: dict,
                   objective_source: str = "estimate", fanout: dict | None = None) -> None:
    """The function Ray Tune runs (``tune.with_parameters`` binds everything but ``config``)."""
    from ray import tune

    trial_id = tune.get_context().get_trial_id()
    train_trial(config, model_path=model_path, data_spec=data_spec, out=out, objectives=objectives,
                trial_id=trial_id, report=tune.report, objective_source=objective_source, fanout=fanout)
