"""``hgq_chip.sweep``: trials on Ray Tune, the global Pareto front, the firmware fan-out, resume.

Layout of ``OUT`` (on a filesystem every Ray node sees):

- ``sweep.json``: the spec this folder belongs to (a rerun with another spec is refused);
- ``tune/<name>/``: Ray Tune's experiment (``Tuner.restore`` continues it after a kill: finished
  trials are kept, trials that were running start again);
- ``trials/<trial id>/``: each trial's ParetoCheckpoint (``trial.py``);
- ``front.json``: the global front (``front.py``), rewritten atomically as trials finish and
  as fan-out results arrive;
- ``members/<trial>-e<epoch>/project``: each front member's hls4ml project (``fanout.py``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from ..atomic_write import write_atomically
from ..conversion.output_dir import check_no_dangling_link
from ..errors import (
    HGQChipError,
    OutputLockedError,
    SweepSpecError,
    UnsafeOutputError,
)
from ..report.sweep import SPEC_MARKER
from . import cluster
from .fanout import process_member
from .front import PENDING, merge_front, previous_members, write_front
from .spec import SweepSpec, load_spec
from .trial import tune_trainable

SPEC_NAME = SPEC_MARKER  # "sweep.json"; the report recognises a sweep folder by it
TUNE_DIR = "tune"
PRINT_ERRORS_ENV = "TUNE_PRINT_ALL_TRIAL_ERRORS"  # Tune's per-trial traceback on the driver's log


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _quiet(message: str) -> None:
    pass


def param_space(spec: SweepSpec) -> dict:
    """The spec's ``space`` as Ray Tune domains (constants stay constants)."""
    from ray import tune

    makers = {"uniform": lambda a: tune.uniform(*a), "loguniform": lambda a: tune.loguniform(*a),
              "randint": lambda a: tune.randint(*a), "choice": tune.choice, "grid": tune.grid_search}
    return {name: makers[next(iter(v))](next(iter(v.values()))) if isinstance(v, dict) else v
            for name, v in spec.space.items()}


def search_algorithm(spec: SweepSpec):
    """Optuna's NSGA-II through Ray Tune's OptunaSearch, or None (Tune's grid/random variant generator)."""
    if spec.sampler != "nsga2":
        return None
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    population = spec.population or max(min(spec.trials, 50), 2)
    sampler = optuna.samplers.NSGAIISampler(population_size=population, seed=spec.sampler_seed)
    metrics = list(spec.objectives)
    return OptunaSearch(metric=metrics, mode=[spec.objectives[m] for m in metrics], sampler=sampler)


def check_out(out: Path, spec: SweepSpec) -> None:
    """``out`` is new, empty, or a sweep folder of this same spec (resume); else refuse before any work
    (UnsafeOutputError, or SweepSpecError for another spec's sweep)."""
    check_no_dangling_link(out, "--out")
    if out.exists() and not out.is_dir():
        raise UnsafeOutputError(f"--out {out} is a file; name a folder for the sweep")
    marker = out / SPEC_NAME
    if marker.is_file():
        try:
            earlier = json.loads(marker.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise UnsafeOutputError(f"--out {out} holds a {SPEC_NAME} that is not a readable sweep spec ({error}); "
                                    "choose a new or empty folder") from error
        now = json.loads(json.dumps(spec.to_dict()))
        if not isinstance(earlier, dict):
            raise UnsafeOutputError(f"--out {out} holds a {SPEC_NAME} that is not a sweep spec; choose a new or "
                                    "empty folder")
        for record in (earlier, now):  # --workers may change between runs
            record.get("budget", {}).pop("concurrent", None)
        if earlier != now:
            raise SweepSpecError(f"{out} holds a sweep of another spec ({marker}); rerun that spec to resume it, "
                                 "or choose another --out")
    elif out.is_dir() and any(out.iterdir()):
        # Not OutputExistsError (whose remedy is --force): a sweep never replaces a folder, it resumes its own.
        raise UnsafeOutputError(f"--out {out} is not empty and holds no sweep; a sweep writes only into a new or "
                                "empty folder, or resumes its own: choose another --out")
    existing = out if out.is_dir() else next(p for p in out.parents if p.exists())
    if not existing.is_dir():
        raise UnsafeOutputError(f"--out {out} cannot be created: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UnsafeOutputError(f"--out {out}: no permission to write into {existing}")


@contextlib.contextmanager
def locked(out: Path):
    """An exclusive ``flock`` on the folder ``out`` itself (no lock file), held while a sweep writes it:
    a second sweep of the same folder fails at once with OutputLockedError. Where the filesystem
    has no flock (some NFS mounts) the sweep runs unlocked."""
    import fcntl

    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputLockedError(f"--out {out} is being written by another hgq_chip sweep; wait for it to finish, "
                                    "then run the same command again") from None
        except OSError:
            pass  # no flock on this filesystem
        yield
    finally:
        os.close(fd)


class Progress:
    """The Tune callback (built lazily, as a subclass of ``ray.tune.Callback``): one line per finished
    or failed trial and the global front merged and written as each trial finishes."""

    @staticmethod
    def make(out: str, spec: SweepSpec, quiet: bool):
        from ray import tune

        class _Progress(tune.Callback):
            def on_trial_complete(self, iteration, trials, trial, **info):
                # Called before Tune marks ``trial`` TERMINATED: it counts as finished here.
                done = {**_finished(trials), trial.trial_id: trial.config}
                head = header(spec, trials, finished=trial.trial_id)
                members = merge_front(out, done, previous_members(out))
                write_front(out, members, head)
                self._line(head, f"trial {trial.trial_id} done", members)

            def on_trial_error(self, iteration, trials, trial, **info):
                self._line(header(spec, trials, failed=trial.trial_id),
                           f"trial {trial.trial_id} FAILED ({failure_text(trial_failure(trial))})", previous_members(out))

            def _line(self, head, event, members):
                if not quiet:
                    _stderr(f"[sweep] {event}: {progress_text(head['trials'], members)}")

        return _Progress()


def trial_failure(trial) -> BaseException | None:
    """The exception a failed Tune trial raised in its worker (Tune's RayTaskError unwrapped), if known."""
    from ray import cloudpickle

    try:
        local = trial.pickled_error_file  # written before the callbacks run; storage is synced later
        if local and os.path.isfile(local):
            with open(local, "rb") as file:
                error = cloudpickle.load(file)
        else:
            error = trial.get_pickled_error()
    except Exception:  # noqa: BLE001  (an unreadable error file: the failure is still counted)
        return None
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error


def failure_text(error: BaseException | None) -> str:
    if error is None:
        return "no error recorded"
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1].strip() if lines else ''}"


def all_trials_failed(grid, experiment: Path) -> HGQChipError:
    """The error of a sweep whose every trial failed: the first failure's own class if it is an
    hgq_chip error (a loader's DataError: exit 11), else SweepSpecError (what all trials share is
    the spec: its builder, loader or parameters)."""
    first = next((r.error for r in grid if r.error is not None), None)
    cause = getattr(first, "cause", None) or first
    kind = type(cause) if isinstance(cause, HGQChipError) else SweepSpecError
    return kind(f"every trial failed; the first with {failure_text(cause)} (Tune's error logs: {experiment}/*/error.txt)"
                "; fix it, then run with a new --out (a rerun of this folder does not retry failed trials)")


@contextlib.contextmanager
def _tune_signals_and_logs():
    """Undo what ``Tuner.fit`` leaves behind: its SIGINT/SIGUSR1 handler (installed for the run and
    restored only when it fires, so a later Ctrl-C, during the fan-out, would be swallowed); and
    quiet its own log lines (interruption notices naming Tuner.restore, per-trial tracebacks):
    the sweep prints one line per failed trial and the CLI one line on Ctrl-C."""
    saved = {}
    if threading.current_thread() is threading.main_thread():
        saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGUSR1)}
    tune_log = logging.getLogger("ray.tune.tune")
    level, previous_env = tune_log.level, os.environ.get(PRINT_ERRORS_ENV)
    tune_log.setLevel(logging.CRITICAL)
    os.environ[PRINT_ERRORS_ENV] = "0"
    state = {"interrupted": False}
    try:
        yield state
        # Tune's handler puts the previous one back when it fires (and only then): a Ctrl-C that came
        # as the last trial finished leaves every trial done but is a Ctrl-C all the same.
        tune_installs = bool(saved) and not int(os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0") or 0)
        state["interrupted"] = tune_installs and signal.getsignal(signal.SIGINT) == saved[signal.SIGINT]
    finally:
        tune_log.setLevel(level)
        if previous_env is None:
            os.environ.pop(PRINT_ERRORS_ENV, None)
        else:
            os.environ[PRINT_ERRORS_ENV] = previous_env
        for signum, handler in saved.items():
            if handler is not None:
                signal.signal(signum, handler)


def _finished(trials) -> dict[str, dict]:
    return {t.trial_id: t.config for t in trials if t.status == "TERMINATED"}


def header(spec: SweepSpec, trials, finished: str | None = None, failed: str | None = None) -> dict:
    """front.json's header: name, objectives and trial counts (``finished``/``failed``: a trial
    whose new state Tune has not recorded yet when its callback runs)."""
    counts = {"total": spec.trials * _grid_size(spec), "done": 0, "running": 0, "failed": 0}
    for trial in trials:
        status = "TERMINATED" if trial.trial_id == finished else "ERROR" if trial.trial_id == failed else trial.status
        key = {"TERMINATED": "done", "RUNNING": "running", "ERROR": "failed"}.get(status)
        if key:
            counts[key] += 1
    return {"name": spec.name, "objectives": spec.objectives, "trials": counts}


def _grid_size(spec: SweepSpec) -> int:
    size = 1
    for value in spec.space.values():
        if isinstance(value, dict) and "grid" in value:
            size *= len(value["grid"])
    return size


def progress_text(counts: dict, members: list[dict]) -> str:
    best = max(members, key=lambda m: m["val_accuracy"], default=None)
    cheapest = min(members, key=lambda m: m["ebops"], default=None)
    front = (f"front {len(members)} members, best {best['val_accuracy']:.4f} @ {best['ebops']} EBOPs, cheapest "
             f"{cheapest['val_accuracy']:.4f} @ {cheapest['ebops']} EBOPs") if members else "front empty"
    return (f"{counts['done']}/{counts['total']} trials done, {counts['running']} running, {counts['failed']} failed; "
            f"{front}")


def _tuner(spec: SweepSpec, out: Path, quiet: bool):
    from ray import tune

    trainable = tune.with_parameters(tune_trainable, model_path=spec.model, data_spec=spec.data, out=str(out),
                                     objectives=spec.objectives, objective_source=spec.objective_source,
                                     fanout=spec.fanout)
    trainable = tune.with_resources(trainable, {"cpu": spec.cpus_per_trial})
    experiment = out / TUNE_DIR / spec.name
    if tune.Tuner.can_restore(str(experiment)):
        return tune.Tuner.restore(str(experiment), trainable=trainable, resume_unfinished=True,
                                  resume_errored=False, restart_errored=False), True
    run_config = tune.RunConfig(name=spec.name, storage_path=str(out / TUNE_DIR), verbose=0,
                                callbacks=[Progress.make(str(out), spec, quiet)],
                                failure_config=tune.FailureConfig(max_failures=0))
    tune_config = tune.TuneConfig(search_alg=search_algorithm(spec), num_samples=spec.trials,
                                  max_concurrent_trials=spec.concurrent)
    return tune.Tuner(trainable, param_space=param_space(spec), tune_config=tune_config, run_config=run_config), False


def fan_out(out: Path, spec: SweepSpec, members: list[dict], head: dict, synth: str | None, log) -> list[dict]:
    """Run ``process_member`` as Ray tasks for the members without a result; rows updated and
    front.json rewritten as each task returns. A task that dies is recorded as a failure."""
    import ray

    picks = members if spec.fanout["members"] is None else _spread(members, spec.fanout["members"])
    todo = [m for m in picks if m.get("status", PENDING) == PENDING]
    if not todo:
        return members
    task = ray.remote(num_cpus=1, max_retries=0)(process_member)
    pending = {task.remote(m, spec.data, str(out), spec.fanout, synth, spec.objectives, spec.objective_source): m
               for m in todo}
    log(f"[sweep] fan-out: {len(todo)} front members to convert, verify and estimate as Ray tasks"
        + (" (with RTL + Verilator verify)" if spec.fanout.get("rtl") not in (None, False) else ""))
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        row = pending.pop(ready[0])
        try:
            row.update(ray.get(ready[0]))
        except ray.exceptions.RayError as error:  # the task's worker died: recorded, the others go on
            row.update(status="failed", error=f"ray task: {type(error).__name__}: {str(error).splitlines()[0]}")
        write_front(out, members, head)
        log(f"[sweep] member {row['trial']} epoch {row['epoch']}: {row['status']}"
            + (f" ({row['error']})" if row.get("error") else
               f", test {row['test_accuracy']:.4f}, {row['lut']} est. LUTs, bit-exact on "
               f"{sum(c['samples'] for c in row['verify'].values())} samples" + _rtl_text(row)))
    return members


def _rtl_text(row: dict) -> str:
    rtl, synth = row.get("rtl"), row.get("synth") or {}
    text = (f"; RTL {rtl['stages']} stages, bit-exact in Verilator on "
            f"{sum(c['samples'] for c in rtl['verify'].values())} samples") if rtl else ""
    pnr = (synth.get("ecp5") or {}).get("pnr")
    if synth:
        text += f"; yosys {synth['lut']} LUT {synth['ff']} FF (Xilinx)"
    if pnr:
        text += f"; ECP5 {pnr['fmax_mhz']:.1f} MHz, {synth['ecp5']['latency_ns']} ns"
    return text


def _spread(members: list[dict], count: int) -> list[dict]:
    """``count`` members spread evenly over the front (by EBOPs), always both ends."""
    if count >= len(members):
        return members
    if count == 0:
        return []
    picks = {round(i * (len(members) - 1) / max(count - 1, 1)) for i in range(count)}
    return [members[i] for i in sorted(picks)]


def sweep(spec, out, address: str | None = None, workers: int | None = None, synth: str | None = None,
          quiet: bool = False, ray_temp_dir: str | None = None) -> dict:
    """Run (or resume) the sweep of ``spec`` (a YAML path, mapping or SweepSpec) into folder ``out``.

    ``address``: None for an embedded Ray on 127.0.0.1 with ``workers x cpus_per_trial`` CPUs,
    or a cluster (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``). ``workers``: concurrent trials
    (default: the spec's ``budget.concurrent``). ``synth="yosys"`` adds yosys synthesis to the
    fan-out. Progress lines go to stderr unless ``quiet``. Returns the front.json content.
    Raises SweepSpecError, UnsafeOutputError (``out``), ClusterError, all
    before any trial runs, and OutputLockedError when another sweep writes ``out``; a failed
    trial or member is recorded, not raised, unless every trial failed (the first trial's
    hgq_chip error, else SweepSpecError). KeyboardInterrupt when Ctrl-C stopped the trials
    (Tune catches it and returns early): nothing is fanned out, a rerun resumes.
    """
    spec = load_spec(spec)
    if workers is not None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise SweepSpecError(f"--workers must be a positive integer, got {workers!r}")
        spec.concurrent = workers
    if synth not in (None, "yosys"):
        raise SweepSpecError(f"--synth takes yosys, got {synth!r}")
    check_no_dangling_link(out, "--out")  # before resolve() follows it
    out = Path(out).resolve()
    check_out(out, spec)
    log = _quiet if quiet else _stderr
    started = cluster.start(address, max(int(spec.concurrent * spec.cpus_per_trial), 1), ray_temp_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with locked(out):
            return _run_locked(spec, out, synth, quiet, log)
    finally:
        cluster.stop(started)


def _run_locked(spec: SweepSpec, out: Path, synth: str | None, quiet: bool, log) -> dict:
    """The sweep once ``out`` is created and locked: trials, global front, fan-out."""
    check_out(out, spec)  # again, under the lock: a sweep that just finished may have written it
    text = json.dumps(spec.to_dict(), indent=1)
    write_atomically(out / SPEC_NAME, lambda partial: Path(partial).write_text(text))
    tuner, resumed = _tuner(spec, out, quiet)
    log(f"[sweep] {'resuming' if resumed else 'starting'} {spec.name}: {spec.trials} trials "
        f"({spec.sampler}), {spec.concurrent} at a time, results in {out}")
    start = time.perf_counter()
    with _tune_signals_and_logs() as tune_state:
        grid = tuner.fit()
    total = spec.trials * _grid_size(spec)
    if tune_state["interrupted"] or grid.num_terminated + grid.num_errors < total:
        # Tune stops early only when its SIGINT/SIGUSR1 handler fired (it returns normally then):
        # the sweep is interrupted, not done; front.json keeps the trials finished so far.
        raise KeyboardInterrupt
    finished = {r.metrics["trial_id"]: r.config for r in grid if r.error is None and r.metrics}
    counts = {"total": total, "done": len(finished), "running": 0, "failed": sum(r.error is not None for r in grid)}
    head = {"name": spec.name, "objectives": spec.objectives, "trials": counts,
            "train_seconds": round(time.perf_counter() - start, 1)}
    members = merge_front(out, finished, previous_members(out))
    for row in members:
        row.setdefault("status", PENDING)
    write_front(out, members, head)
    if not finished and counts["failed"]:
        raise all_trials_failed(grid, out / TUNE_DIR / spec.name)
    log(f"[sweep] trials finished: {progress_text(counts, members)}")
    fan_out(out, spec, members, head, synth, log)
    return {**head, "members": members}
