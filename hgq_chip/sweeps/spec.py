"""The sweep spec: what ``hgq_chip sweep SPEC.yaml`` trains, searches, optimizes and spends.

A spec is a YAML mapping (every key but ``model`` and ``space`` optional)::

    name: mnist4x4                       # experiment name (Ray Tune's), default "sweep"
    model: hgq_chip.sweeps.tasks:build    # build(params, n_features, n_classes) -> compiled keras.Model
    data:                                # an importable loader ...
      loader: hgq_chip.sweeps.tasks:load  #   load(**args) -> {"train": (x, y), "val": (x, y), "test": (x, y)}
      args: {path: /data/mnist, max_train: 10000}
    # ... or .npz files holding x and y: {train: a.npz, val: b.npz, test: c.npz}
    # (no val: 25% of train; no test: the validation set)
    sampler: nsga2                       # nsga2 (Optuna's NSGA-II through Ray Tune), grid or random
    sampler_seed: 0
    population: 8                        # NSGA-II population size (default: min(trials, 50))
    space:                               # trial parameters: a constant or one domain each
      beta_start: {loguniform: [1.0e-7, 1.0e-5]}
      beta_end: {loguniform: [1.0e-5, 1.0e-3]}
      beta_schedule: {choice: [log, linear]}   # log | linear | constant (beta_end ignored)
      ramp_fraction: 0.8                 # the ramp ends at this fraction of the epochs
      seed: {randint: [0, 1000]}
      init_bits: {choice: [3, 4, 6]}
      width: {grid: [16, 32]}            # grid only with sampler grid/random
      learning_rate: 3.0e-3
      epochs: 10
      batch_size: 256
    objectives: {val_accuracy: max, ebops: min}   # optionally lut: min, latency_ns: min
    objective_source: estimate           # lut/latency_ns from the estimate, or synth (yosys/nextpnr per trial)
    budget: {trials: 8, concurrent: 2, cpus_per_trial: 1}
    fanout: {random: 1000, scale: 4, backend: Vitis, strategy: latency, members: null}
    # members: how many front members the fan-out converts (spread over the front; null: all, 0: none)
    # RTL per member (objectives.py): rtl: {stages: 3} | {clock_period: 4} | null, synth: false,
    # family: xc7, pnr: null | ecp5, time_limit: 3600

Domains (Ray Tune's search-space API): ``uniform``/``loguniform`` ``[low, high]``, ``randint``
``[low, high)``, ``choice`` (a list), ``grid`` (a list: every value, times ``budget.trials``).
The trainer reads ``beta_*``, ``ramp_fraction``, ``seed``, ``epochs``, ``batch_size``; every
parameter also goes to the model builder (the bundled builder's ``width``, ``depth``, ``widths``,
``init_bits``, ``learning_rate`` and ``granularity`` are checked too). Errors: SweepSpecError, naming
the key (also for an NSGA-II space of constants only); DataError for .npz data files that are
missing or lack ``x``/``y``, and for what a loader's ``check_args(**args)`` refuses (the bundled
loader: a ``path`` without ``mnist_train.npz``/``mnist_test.npz``), all before Ray starts; ToolMissingError when ``fanout.rtl``/``synth``/
``pnr`` or ``objective_source: synth`` need da4ml, yosys or nextpnr and it is not installed.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError, SweepSpecError
from .objectives import HARDWARE_DEFAULTS, check_hardware, check_tools

DOMAINS = ("uniform", "loguniform", "randint", "choice", "grid")
SAMPLERS = ("nsga2", "grid", "random")
OBJECTIVES = {"val_accuracy": "max", "ebops": "min", "lut": "min", "latency_ns": "min"}
SCHEDULES = ("log", "linear", "constant")
DEFAULT_SPACE = {"beta_start": 1e-6, "beta_end": 1e-4, "beta_schedule": "log", "ramp_fraction": 0.8, "seed": 0,
                 "epochs": 10, "batch_size": 256}
TOP_KEYS = {"name", "model", "data", "sampler", "sampler_seed", "population", "space", "objectives", "budget",
            "fanout", "objective_source"}
FANOUT_DEFAULTS = {"random": 1000, "scale": 4.0, "backend": "Vitis", "strategy": "latency", "members": None,
                   "clock_period": 5.0, **HARDWARE_DEFAULTS}


@dataclass
class SweepSpec:
    """A checked spec; ``space`` maps names to constants or ``{domain: args}``."""

    model: str
    data: dict
    space: dict
    name: str = "sweep"
    sampler: str = "nsga2"
    sampler_seed: int = 0
    population: int | None = None
    objectives: dict = field(default_factory=lambda: {"val_accuracy": "max", "ebops": "min"})
    trials: int = 8
    concurrent: int = 2
    cpus_per_trial: float = 1.0
    fanout: dict = field(default_factory=lambda: dict(FANOUT_DEFAULTS))
    objective_source: str = "estimate"

    def to_dict(self) -> dict:
        return {"name": self.name, "model": self.model, "data": self.data, "sampler": self.sampler,
                "sampler_seed": self.sampler_seed, "population": self.population, "space": self.space,
                "objectives": self.objectives, "objective_source": self.objective_source, "fanout": self.fanout,
                "budget": {"trials": self.trials, "concurrent": self.concurrent, "cpus_per_trial": self.cpus_per_trial}}


def import_object(path: str, what: str):
    """``"package.module:name"`` -> the object (SweepSpecError naming ``what`` if it cannot be imported)."""
    if not isinstance(path, str) or ":" not in path:
        raise SweepSpecError(f"{what} must be 'package.module:function', got {path!r}")
    module_name, _, attribute = path.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise SweepSpecError(f"{what} {path!r} cannot be imported ({error}); is its package on PYTHONPATH on "
                             "every Ray node?") from error
    except Exception as error:  # the user's module failed while importing (SyntaxError, ...)
        raise SweepSpecError(f"{what} {path!r}: importing {module_name} failed ({type(error).__name__}: {error}); "
                             "fix that module") from error
    if not callable(target):
        raise SweepSpecError(f"{what} {path!r} is not callable")
    return target


def _positive_int(value, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SweepSpecError(f"{key} must be a positive integer, got {value!r}")
    return value


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# Parameters the trainer itself reads (trial.py): (test of one value, what it must be).
TRAINER_PARAMS = {
    "epochs": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a whole number >= 1"),
    "batch_size": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a whole number >= 1"),
    "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32,
             "a whole number in [0, 2**32)"),
    "beta_start": (lambda v: _number(v) and v >= 0, "a finite number >= 0"),
    "beta_end": (lambda v: _number(v) and v >= 0, "a finite number >= 0"),
    "ramp_fraction": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "beta_schedule": (lambda v: v in SCHEDULES, f"one of {list(SCHEDULES)}"),
}


def _whole(low: int):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


# Parameters the bundled builder (hgq_chip.sweeps.tasks:build) reads, checked only for it.
DEFAULT_BUILDER = "hgq_chip.sweeps.tasks:build"
BUILDER_PARAMS = {
    "width": (_whole(1), "a whole number >= 1 (neurons per hidden layer)"),
    "depth": (_whole(0), "a whole number >= 0 (hidden layers)"),
    "widths": (lambda v: v is None or (isinstance(v, list) and all(_whole(1)(w) for w in v)),
               "a list of whole numbers >= 1"),
    "init_bits": (lambda v: _number(v) and v >= 0, "a finite number >= 0"),
    "learning_rate": (lambda v: _number(v) and v > 0, "a finite number > 0"),
    "granularity": (lambda v: v in ("per-element", "per-channel", "per-layer"),
                    "one of per-element, per-channel, per-layer"),
}


def _check_trainer_param(name: str, value, table: dict = TRAINER_PARAMS) -> None:
    """Every value a trainer parameter can take (a constant, each choice/grid value, or a range's
    bounds; randint's high is excluded) passes its ``table`` test; else SweepSpecError."""
    if name not in table:
        return
    test, meaning = table[name]
    if not isinstance(value, dict):
        values = [value]
    else:
        kind, args = next(iter(value.items()))
        if kind in ("uniform", "loguniform") and name in ("epochs", "batch_size", "seed"):
            raise SweepSpecError(f"space.{name} takes whole numbers: use randint or choice, not {kind}")
        values = list(args) if kind in ("choice", "grid") else [args[0], args[1] - (kind == "randint")]
    for one in values:
        if not test(one):
            raise SweepSpecError(f"space.{name} must be {meaning}, got {one!r}")


def _check_name(name) -> str:
    """The experiment name: a folder name under OUT/tune (no path separators, not '.' or '..')."""
    if not isinstance(name, str) or not name.strip() or name in (".", "..") or "/" in name or "\\" in name \
            or "\0" in name:
        raise SweepSpecError(f"name must be a plain folder name (no '/', not '.' or '..'), got {name!r}")
    return name


def _check_fanout(fanout: dict) -> None:
    """The fan-out's conversion and verify options, checked as convert/verify would check them."""
    from ..conversion.hls_config import backend_name, check_options, strategy_name
    from ..errors import UnsupportedConfigurationError
    from ..sampling_options import check_sampling_options

    names = {"random": "fanout.random", "seed": "fanout.seed", "scale": "fanout.scale", "batch_size": "batch_size"}
    try:
        backend_name(fanout["backend"])
        strategy_name(fanout["strategy"])
        check_options(1, fanout["clock_period"], None, fanout["strategy"])
        check_sampling_options(fanout["random"], 0, fanout["scale"], names=names)
    except UnsupportedConfigurationError as error:
        raise SweepSpecError(f"fanout: {error}") from error


def _check_domain(name: str, value) -> None:
    if not isinstance(value, dict):
        return  # a constant
    if len(value) != 1 or next(iter(value)) not in DOMAINS:
        raise SweepSpecError(f"space.{name} must be a constant or one of {{{'|'.join(DOMAINS)}: ...}}, got {value!r}")
    kind, args = next(iter(value.items()))
    if not isinstance(args, list) or not args:
        raise SweepSpecError(f"space.{name}.{kind} takes a non-empty list, got {args!r}")
    numbers = len(args) == 2 and all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
    if kind in ("uniform", "loguniform", "randint") and (
            not numbers or not args[0] < args[1] or (kind == "loguniform" and args[0] <= 0)):
        raise SweepSpecError(f"space.{name}.{kind} takes [low, high] numbers with low < high "
                             f"(low > 0 for loguniform), got {args!r}")


def _check_data(data) -> dict:
    if data is None:
        return {"loader": "hgq_chip.sweeps.tasks:load", "args": {}}
    if not isinstance(data, dict):
        raise SweepSpecError(f"data must be a mapping (loader/args or train/val/test .npz paths), got {data!r}")
    if "loader" in data:
        unknown = set(data) - {"loader", "args"}
        if unknown or not isinstance(data.get("args", {}), dict):
            raise SweepSpecError(f"data with a loader takes 'loader' and a mapping 'args', got {data!r}")
        return {"loader": data["loader"], "args": dict(data.get("args") or {})}
    if "train" not in data or set(data) - {"train", "val", "test"}:
        raise SweepSpecError(f"data needs 'loader' or 'train' (with optional 'val', 'test') .npz paths, got {data!r}")
    bad = {key: value for key, value in data.items() if not isinstance(value, str) or not value.strip()}
    if bad:
        raise SweepSpecError(f"data.{next(iter(bad))} must be the path of an .npz file, got {next(iter(bad.values()))!r}")
    return {key: str(Path(value).resolve()) for key, value in data.items()}


def _check_npz(key: str, path: str) -> None:
    """DataError unless ``path`` is an .npz holding ``x`` and ``y`` (read lazily: only its index)."""
    import zipfile

    import numpy as np

    try:
        loaded = np.load(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"data.{key} {path}: cannot read it as an .npz ({type(error).__name__}: {error})") from error
    names = None  # a .npy gives an array, not an archive
    if isinstance(loaded, np.lib.npyio.NpzFile):
        names = list(loaded.files)
        loaded.close()
    if names is None or not {"x", "y"} <= set(names):
        raise DataError(f"data.{key} {path} must be an .npz holding arrays x and y (np.savez(path, x=..., y=...)), "
                        f"has {names}")


def parse_spec(raw: dict, base: Path | None = None) -> SweepSpec:
    """Check a spec mapping; ``base`` resolves relative .npz paths (the spec file's folder)."""
    if not isinstance(raw, dict):
        raise SweepSpecError(f"a sweep spec is a YAML mapping, got {type(raw).__name__}")
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise SweepSpecError(f"unknown spec keys {sorted(unknown)}; known: {sorted(TOP_KEYS)}")
    if "model" not in raw or "space" not in raw:
        raise SweepSpecError("a sweep spec needs 'model' (package.module:build) and 'space' (trial parameters)")
    import_object(raw["model"], "model")
    data = _check_data(raw.get("data"))
    if "loader" not in data and base is not None:
        data = {k: str(base / v) if not Path(v).is_absolute() else v for k, v in data.items()}
    if "loader" not in data:
        for key, path in data.items():
            _check_npz(key, path)
    if "loader" in data:
        loader = import_object(data["loader"], "data.loader")
        check_args = getattr(loader, "check_args", None)
        if callable(check_args):  # the loader's own cheap checks (files exist), before Ray starts
            check_args(**data["args"])
    if not isinstance(raw["space"], dict):
        raise SweepSpecError(f"space must be a mapping of parameter names, got {raw['space']!r}")
    space = {**DEFAULT_SPACE, **raw["space"]}
    for name, value in space.items():
        _check_domain(name, value)
        _check_trainer_param(name, value)
        if raw["model"] == DEFAULT_BUILDER:
            _check_trainer_param(name, value, BUILDER_PARAMS)
    sampler = raw.get("sampler", "nsga2")
    if sampler not in SAMPLERS:
        raise SweepSpecError(f"sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
    if sampler == "nsga2" and not any(isinstance(v, dict) for v in space.values()):
        raise SweepSpecError("space holds constants only, so the NSGA-II sampler has nothing to search; give at "
                             "least one parameter a domain (uniform, loguniform, randint or choice), or use sampler "
                             "random to train the same parameters budget.trials times")
    grid = [n for n, v in space.items() if isinstance(v, dict) and "grid" in v]
    if sampler == "nsga2" and grid:
        raise SweepSpecError(f"space {grid} use grid, which the NSGA-II sampler cannot run; use choice, or sampler "
                             "grid/random")
    objectives = raw.get("objectives", {"val_accuracy": "max", "ebops": "min"})
    if not isinstance(objectives, dict) or not {"val_accuracy", "ebops"} <= set(objectives) \
            or any(OBJECTIVES.get(k) != v for k, v in objectives.items()):
        raise SweepSpecError(f"objectives must hold val_accuracy: max and ebops: min, optionally lut: min and "
                             f"latency_ns: min; got {objectives!r}")
    budget = raw.get("budget") or {}
    if not isinstance(budget, dict) or set(budget) - {"trials", "concurrent", "cpus_per_trial"}:
        raise SweepSpecError(f"budget takes trials, concurrent and cpus_per_trial, got {budget!r}")
    cpus = budget.get("cpus_per_trial", 1)
    if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not cpus > 0:
        raise SweepSpecError(f"budget.cpus_per_trial must be a positive number, got {cpus!r}")
    fanout = raw.get("fanout") or {}
    if not isinstance(fanout, dict) or set(fanout) - set(FANOUT_DEFAULTS):
        raise SweepSpecError(f"fanout takes {sorted(FANOUT_DEFAULTS)}, got {fanout!r}")
    fanout = {**FANOUT_DEFAULTS, **fanout}
    members = fanout["members"]
    if members is not None and (isinstance(members, bool) or not isinstance(members, int) or members < 0):
        raise SweepSpecError(f"fanout.members must be null (all), 0 (none) or a positive integer, got {members!r}")
    _positive_int(fanout["random"], "fanout.random")
    _check_fanout(fanout)
    source = raw.get("objective_source", "estimate")
    check_hardware(fanout, objectives, source)
    check_tools(fanout, objectives, source)
    population = raw.get("population")
    sampler_seed = raw.get("sampler_seed", 0)
    if isinstance(sampler_seed, bool) or not isinstance(sampler_seed, int) or sampler_seed < 0:
        raise SweepSpecError(f"sampler_seed must be a whole number >= 0, got {sampler_seed!r}")
    return SweepSpec(
        model=raw["model"], data=data, space=space, name=_check_name(raw.get("name", "sweep")), sampler=sampler,
        sampler_seed=sampler_seed,
        population=None if population is None else _positive_int(population, "population"),
        objectives=dict(objectives), trials=_positive_int(budget.get("trials", 8), "budget.trials"),
        concurrent=_positive_int(budget.get("concurrent", 2), "budget.concurrent"), cpus_per_trial=float(cpus),
        fanout=fanout, objective_source=source,
    )


def load_spec(spec) -> SweepSpec:
    """A SweepSpec from a YAML file path, a mapping, or a SweepSpec (returned as is)."""
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, dict):
        return parse_spec(spec)
    import yaml

    path = Path(spec)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise SweepSpecError(f"cannot read the sweep spec {path} ({type(error).__name__}: {error})") from error
    return parse_spec(raw, base=path.resolve().parent)
