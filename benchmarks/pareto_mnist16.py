"""Accuracy/EBOPs Pareto fronts and per-epoch training time: hgq_chip vs HGQ2 vs float Keras.

    python benchmarks/pareto_mnist16.py [--epochs 150] [--data DIR] [--seed 0] [--out DIR]
                                        [--plot fronts.png] [--verify-points 3] [--json FILE]
                                        [--models float,float-xla,hgq_chip,hgq2]

Task (issue 9): MNIST averaged 28x28 -> 4x4 (16 features, the jet-tagging MLP's input
size), 50k train / 10k validation (a seeded split of the 60k training images) / 10k test,
MLP 16-64-32-32-10 relu, batch 1024, Adam 3e-3, beta ramped geometrically 1e-7 -> 1e-4
(HGQ2 over the whole run; ours, by default, over the first 80% and then held at 1e-4, and
from 4 instead of 6 initial fractional bits: ``--ramp-fraction 1 --init-bits 6`` is the
same schedule and HDense's default start).

Each model keeps the epochs on its (validation accuracy, EBOPs) Pareto front. Every kept
epoch is then reloaded, its activation ranges traced on the whole training set, and
measured: exact EBOPs and test accuracy. The printed fronts are the points no other point
of the same model beats in both numbers. HGQ2 (``import hgq``) runs only if installed.
EBOPs are counted both ways (``ebops_conventions.py``): hgq_chip's (full k+i+f widths) and
HGQ2's (sign bits excluded, plus a bias term), and fronts are compared within one
convention; without HGQ2, our front is held against HGQ2's 500-epoch reference points.

Epoch times are wall time per epoch as a user sees it (training, the validation pass and
each model's own epoch-end callbacks); the first epoch (tracing) is excluded and the
median of the rest reported. The models train in turn, ``--chunk`` epochs at a time, so a
shared machine whose speed drifts during the run slows all of them alike. Every model is
compiled with Keras' default ``jit_compile="auto"`` (``--jit-compile`` changes ours), as a
user would; a float model with XLA is timed too, for reference; ``--hgq2-xla`` compiles
HGQ2 with XLA. ``benchmarks/train_speed.py`` is the per-backend timing table.

Front points also get estimated LUTs (``hgq_chip.estimate``, no synthesis). HGQ2's
models are not ours to convert, so their front is in EBOPs only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
from ebops_conventions import (
    hgq2_model_in_hgq_chip_convention,
    hgq_chip_model_in_hgq2_convention,
)

import hgq_chip
from hgq_chip.sweeps import tasks
from hgq_chip.training import EBOPsMetric, LogRampBeta, ParetoCheckpoint, ResetRanges

try:  # HGQ2's import name is ``hgq``; it is a comparison baseline, never a dependency.
    from hgq.config import LayerConfigScope
    from hgq.layers import QDense
    from hgq.utils import trace_minmax
    from hgq.utils.sugar import BetaScheduler, FreeEBOPs, ParetoFront, PieceWiseSchedule
except ImportError:
    QDense = None

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "mnist"
HIDDEN = (64, 32, 32)
N_CLASSES = 10
BATCH_SIZE = 1024
LEARNING_RATE = 3e-3
BETA_START, BETA_END = 1e-7, 1e-4
TARGETS = ((0.85, 60_000), (0.80, 25_000))  # issue 9: (test accuracy, at most this many EBOPs)
# HGQ2's 500-epoch front as this benchmark measured it (issue 18; HGQ2's own EBOPs count): the
# reference our front is held against when HGQ2 is not run. (test accuracy, EBOPs)
HGQ2_REFERENCE_500 = ((0.774, 4_900), (0.795, 6_600), (0.849, 39_200))
CONVENTIONS = {"ebops": "hgq_chip EBOPs: k+i+f widths, no bias term",
               "ebops_hgq2": "HGQ2 EBOPs: i+f without sign, plus bias term"}


# -- data and our model: the MNIST-4x4 task shared with sweeps (hgq_chip.sweeps.tasks) ---------
def load_data(directory: Path, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """50k train / 10k validation (a seeded split of the 60k training images) / 10k test, 16 features."""
    return tasks.load(directory, seed=seed)


# -- models ------------------------------------------------------------------------------
def float_mlp(n_in: int) -> keras.Model:
    inputs = keras.Input((n_in,))
    x = inputs
    for width in HIDDEN:
        x = keras.layers.Dense(width, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(N_CLASSES)(x))


def hgq_chip_mlp(n_in: int, init_bits: float = 4.0) -> keras.Model:
    # Per-element quantizers (HDense's default); the first layer's input quantizer quantizes the
    # network input, as HGQ2's QDense does. Inputs and weights start at ``init_bits`` fractional
    # bits (HDense's default is 6). train_interleaved compiles it again with the shared recipe.
    return tasks.build({"widths": list(HIDDEN), "init_bits": init_bits}, n_in, N_CLASSES)


def hgq2_mlp(n_in: int) -> keras.Model:
    with LayerConfigScope(enable_ebops=True, beta0=BETA_START):
        inputs = keras.Input((n_in,))
        x = inputs
        for width in HIDDEN:
            x = QDense(width, activation="relu")(x)
        return keras.Model(inputs, QDense(N_CLASSES)(x))


# -- training ----------------------------------------------------------------------------
class EpochTimer(keras.callbacks.Callback):
    """Wall time per epoch, including the other callbacks' epoch-end work and, for the last
    epoch of each ``fit``, their train-end work (e.g. waiting for background checkpoint writes)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self._end = time.perf_counter()
        self.seconds.append(self._end - self._start)

    def on_train_end(self, logs=None):
        if self.seconds:
            self.seconds[-1] += time.perf_counter() - self._end


@dataclass
class Run:
    """One model of the comparison with its own callbacks and compile option."""

    name: str
    model: keras.Model
    callbacks: list = field(default_factory=list)
    jit_compile: object = "auto"
    timer: EpochTimer = field(default_factory=EpochTimer)


def train_interleaved(runs: list[Run], data, epochs: int, chunk: int) -> dict[str, list[float]]:
    """Fit every run with the shared recipe, ``chunk`` epochs at a time in turn, so that a
    machine whose speed drifts (shared cores) slows every model alike. Returns each run's
    per-epoch seconds without the first epoch (tracing and compilation)."""
    for run in runs:
        run.model.compile(keras.optimizers.Adam(LEARNING_RATE),
                          keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
                          jit_compile=run.jit_compile)
    for start in range(0, epochs, chunk):
        for run in runs:
            # The timer comes last so its epoch end follows the other callbacks' epoch-end work.
            run.model.fit(*data["train"], validation_data=data["val"], initial_epoch=start,
                          epochs=min(start + chunk, epochs), batch_size=BATCH_SIZE, verbose=0,
                          callbacks=[*run.callbacks, run.timer])
    return {run.name: run.timer.seconds[1:] for run in runs}


def test_accuracy(model, data) -> float:
    x, y = data["test"]
    logits = model.predict(x, batch_size=BATCH_SIZE, verbose=0)
    return float(np.mean(np.argmax(logits, axis=1) == y))


def non_dominated(points: list[dict], key: str = "ebops") -> list[dict]:
    """Points no other point matches or beats in both accuracy (higher) and ``key`` (lower), by ``key``."""
    def beaten(p):
        return any(q is not p and q["accuracy"] >= p["accuracy"] and q[key] <= p[key]
                   and (q["accuracy"], -q[key]) != (p["accuracy"], -p[key]) for q in points)
    front, seen = [], set()
    for p in sorted(points, key=lambda p: (p[key], -p["accuracy"])):
        pair = (p["accuracy"], p[key])
        if not beaten(p) and pair not in seen:
            seen.add(pair)
            front.append(p)
    return front


def hgq_chip_run(n_in: int, epochs: int, directory: Path, init_bits: float, ramp_fraction: float,
                 jit_compile="auto") -> Run:
    model = hgq_chip_mlp(n_in, init_bits)
    # Same beta range as HGQ2, but the ramp ends at ramp_fraction of the run and beta then
    # holds at its end value: the last epochs trade accuracy for EBOPs at full pressure.
    ramp_end = max(min(round(ramp_fraction * epochs), epochs - 1), 1)
    # EBOPsMetric precedes ParetoCheckpoint so the checkpoint reads the logged exact EBOPs.
    callbacks = [ResetRanges(), LogRampBeta(BETA_START, BETA_END, stop=ramp_end), EBOPsMetric(),
                 ParetoCheckpoint(str(directory / "hgq_chip"), monitor="val_accuracy")]
    return Run("hgq_chip", model, callbacks, jit_compile={"true": True, "false": False}.get(jit_compile, jit_compile))


def hgq_chip_points(directory: Path, data) -> list[dict]:
    points = []
    with open(directory / "hgq_chip" / "pareto.json") as handle:
        members = json.load(handle)
    for member in members:
        trained = hgq_chip.load_model(member["path"])
        hgq_chip.calibrate(trained, data["train"][0])
        points.append({"epoch": member["epoch"], "path": member["path"], "ebops": hgq_chip.ebops(trained),
                       "ebops_hgq2": hgq_chip_model_in_hgq2_convention(trained),
                       "accuracy": test_accuracy(trained, data), "lut": hgq_chip.estimate(trained).lut})
    return points


def hgq2_run(n_in: int, epochs: int, directory: Path, jit_compile="auto") -> Run:
    schedule = PieceWiseSchedule([(0, BETA_START, "log"), (max(epochs - 1, 1), BETA_END, "constant")])
    # Weights only: reloading into a freshly built model avoids depending on HGQ2's
    # whole-model deserialization; the epoch in the name lets us report it.
    front = ParetoFront(str(directory / "hgq2"), ["val_accuracy", "ebops"], [1, -1],
                        fname_format="epoch={epoch}.weights.h5")
    return Run("HGQ2", hgq2_mlp(n_in), [BetaScheduler(schedule), FreeEBOPs(), front], jit_compile=jit_compile)


def hgq2_points(run: Run, data) -> list[dict]:
    front = run.callbacks[-1]
    points = []
    for path in front.paths:
        trained = hgq2_mlp(data["train"][0].shape[1])
        trained.load_weights(path)
        # trace_minmax resets and re-traces the ranges on the training set, then returns the
        # sum of every layer's exact EBOPs at those ranges.
        ebops = trace_minmax(trained, data["train"][0], batch_size=BATCH_SIZE)
        epoch = int(Path(path).name.split("=")[1].split(".")[0])
        points.append({"epoch": epoch, "path": str(path), "ebops": hgq2_model_in_hgq_chip_convention(trained),
                       "ebops_hgq2": int(ebops), "accuracy": test_accuracy(trained, data)})
    return points


# -- conversion check --------------------------------------------------------------------
def verify_points(front: list[dict], count: int, data, directory: Path) -> None:
    """Convert ``count`` front points spread over the front and check C simulation == Keras bit for bit."""
    if count <= 0 or not front:
        return
    picks = sorted({round(i * (len(front) - 1) / max(count - 1, 1)) for i in range(min(count, len(front)))})
    quiet = {"log": lambda message: None}
    for index in picks:
        point = front[index]
        model = hgq_chip.load_model(point["path"])
        hgq_chip.calibrate(model, data["train"][0])
        project = directory / f"verify_epoch{point['epoch']}"
        start = time.perf_counter()
        hgq_chip.convert(model, project, force=True, **quiet)
        report = hgq_chip.verify(model, project, data["test"][0], **quiet)
        status = "bit-exact" if report.ok else "MISMATCH"
        print(f"  epoch {point['epoch']:4d}  {point['accuracy']:.4f} @ {point['ebops']:>8d} EBOPs: {status} "
              f"on {len(data['test'][0])} test samples ({time.perf_counter() - start:.0f} s) - {report.describe()}")


# -- reporting ---------------------------------------------------------------------------
def print_front(name: str, points: list[dict], key: str = "ebops") -> list[dict]:
    front = non_dominated(points, key)
    print(f"\n{name}: {len(front)} front points of {len(points)} checkpoints (test accuracy @ exact EBOPs, "
          f"{CONVENTIONS[key]}; training-set ranges)")
    for p in front:
        lut = f"   {p['lut']:7d} est. LUTs" if "lut" in p else ""
        other = next(k for k in CONVENTIONS if k != key)
        print(f"  {p['accuracy']:.4f} @ {p[key] / 1e3:8.1f}k   ({CONVENTIONS[other].split(':')[0]}: "
              f"{p[other] / 1e3:.1f}k){lut}   (epoch {p['epoch']})")
    return front


def print_lut_front(name: str, points: list[dict]) -> None:
    """The same checkpoints ranked by estimated LUTs instead of EBOPs."""
    by_lut = non_dominated([{**p, "ebops": p["lut"]} for p in points])
    print(f"\n{name}: {len(by_lut)} front points by estimated LUTs (test accuracy @ LUTs, latency strategy)")
    for p in by_lut:
        print(f"  {p['accuracy']:.4f} @ {p['lut']:7d} LUTs   (epoch {p['epoch']})")


def print_dominance(ours: list[dict], theirs: list[dict], key: str = "ebops", label: str = "HGQ2") -> None:
    """For each of their front points, our cheapest point at least as accurate and no more expensive."""
    print(f"\ndoes our front dominate {label}'s? ({CONVENTIONS[key]}; each {label} point: our cheapest point "
          "with >= accuracy at <= EBOPs)")
    missing = 0
    for p in theirs:
        covering = [q for q in ours if q["accuracy"] >= p["accuracy"] and q[key] <= p[key]]
        if covering:
            q = min(covering, key=lambda q: q[key])
            print(f"  {label} {p['accuracy']:.4f} @ {p[key] / 1e3:7.1f}k  <-  ours {q['accuracy']:.4f} @ {q[key] / 1e3:7.1f}k")
        else:
            missing += 1
            print(f"  {label} {p['accuracy']:.4f} @ {p[key] / 1e3:7.1f}k  <-  none of ours")
    print(f"  {len(theirs) - missing} of {len(theirs)} {label} points dominated")


def print_targets(ours: list[dict]) -> None:
    for accuracy, budget in TARGETS:
        best = max((p for p in ours if p["ebops"] <= budget), key=lambda p: p["accuracy"], default=None)
        found = f"{best['accuracy']:.4f} @ {best['ebops'] / 1e3:.1f}k" if best else "no point"
        verdict = "met" if best and best["accuracy"] >= accuracy else "NOT met"
        print(f"  target {accuracy:.2f} at <= {budget / 1e3:.0f}k EBOPs: best {found} -> {verdict}")


def plot_fronts(fronts: dict[str, list[dict]], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib not installed: no plot written to {path}")
        return
    figure, (axis, lut_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, front in fronts.items():
        axis.step([p["ebops"] for p in front], [p["accuracy"] for p in front], where="post", marker="o", label=name)
        with_lut = sorted((p for p in front if "lut" in p), key=lambda p: p["lut"])
        if with_lut:
            lut_axis.plot([p["lut"] for p in with_lut], [p["accuracy"] for p in with_lut], marker="o", label=name)
    axis.set_xscale("log")
    axis.set_xlabel("exact EBOPs (ranges traced on the training set)")
    lut_axis.set_xscale("log")
    lut_axis.set_xlabel("estimated LUTs (hgq_chip.estimate, latency strategy)")
    for a in (axis, lut_axis):
        a.set_ylabel("test accuracy")
        a.set_title("MNIST 4x4, MLP 16-64-32-32-10")
        a.grid(True, which="both", alpha=0.3)
        a.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    print(f"plot written to {path}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="directory with mnist_train.npz and mnist_test.npz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="keep checkpoints and verify projects here (default: a temp dir)")
    parser.add_argument("--plot", default=None, help="write a PNG of both fronts here")
    parser.add_argument("--verify-points", type=int, default=3, help="convert and verify this many of our front points")
    parser.add_argument("--hgq2-xla", action="store_true", help="compile HGQ2 with jit_compile=True as well")
    parser.add_argument("--chunk", type=int, default=10, help="models train in turn, this many epochs at a time")
    parser.add_argument("--init-bits", type=float, default=4.0, help="our initial fractional bits (HDense default: 6)")
    parser.add_argument("--models", default="float,float-xla,hgq_chip,hgq2",
                        help="comma-separated subset of float, float-xla, hgq_chip, hgq2 (HGQ2 only if installed)")
    parser.add_argument("--jit-compile", choices=("auto", "true", "false"), default="auto",
                        help="our model's compile(jit_compile=...) (default: Keras' 'auto', as the float model)")
    parser.add_argument("--json", default=None, help="write the measured points and epoch times here")
    parser.add_argument("--ramp-fraction", type=float, default=0.8,
                        help="our beta ramp ends at this fraction of the epochs, then holds (1.0: HGQ2's schedule)")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be >= 2: the first epoch is excluded from timing")

    data = load_data(args.data, args.seed)
    print(f"backend {keras.backend.backend()}; train/val/test {len(data['train'][0])}/{len(data['val'][0])}/"
          f"{len(data['test'][0])}; MLP 16-{'-'.join(map(str, HIDDEN))}-{N_CLASSES}; batch {BATCH_SIZE}; "
          f"Adam {LEARNING_RATE:g}; {args.epochs} epochs; beta {BETA_START:g} -> {BETA_END:g} (log)")
    with tempfile.TemporaryDirectory(prefix="pareto_mnist16_") as temporary:
        directory = args.out or Path(temporary)
        directory.mkdir(parents=True, exist_ok=True)
        fronts = {}
        n_in = data["train"][0].shape[1]
        runs = []
        for name, make in (("float", lambda: Run("float keras", float_mlp(n_in))),
                           ("float-xla", lambda: Run("float + XLA", float_mlp(n_in), jit_compile=True)),
                           ("hgq_chip", lambda: hgq_chip_run(n_in, args.epochs, directory, args.init_bits,
                                                             args.ramp_fraction, args.jit_compile)),
                           ("hgq2", lambda: hgq2_run(n_in, args.epochs, directory, True if args.hgq2_xla else "auto"))):
            if name not in args.models.split(","):
                continue
            if name == "hgq2" and QDense is None:
                print("\nHGQ2 not installed (import hgq failed): it is skipped")
                continue
            keras.utils.set_random_seed(args.seed)
            runs.append(make())
        by_name = {run.name: run for run in runs}
        times = train_interleaved(runs, data, args.epochs, args.chunk)

        if "float keras" in by_name:
            print(f"\nfloat keras: test accuracy {test_accuracy(by_name['float keras'].model, data):.4f}")
        summary = {"seed": args.seed, "epochs": args.epochs, "backend": keras.backend.backend()}
        if "hgq_chip" in by_name:
            ours = hgq_chip_points(directory, data)
            fronts["hgq_chip"] = print_front("hgq_chip", ours)
            print_lut_front("hgq_chip", ours)
            print_targets(fronts["hgq_chip"])
            summary["hgq_chip"] = ours
        if "HGQ2" in by_name:
            theirs = hgq2_points(by_name["HGQ2"], data)
            fronts["HGQ2"] = print_front("HGQ2", theirs)
            summary["HGQ2"] = theirs
        if "hgq_chip" in fronts:
            # Both conventions: a front is comparable only with one counted the same way.
            ours_hgq2 = print_front("hgq_chip", ours, "ebops_hgq2")
            if "HGQ2" in fronts:
                print_dominance(fronts["hgq_chip"], fronts["HGQ2"], "ebops")
                print_dominance(ours_hgq2, non_dominated(theirs, "ebops_hgq2"), "ebops_hgq2")
            reference = [{"accuracy": a, "ebops_hgq2": e} for a, e in HGQ2_REFERENCE_500]
            print_dominance(ours_hgq2, reference, "ebops_hgq2", label="HGQ2 500-epoch reference")

        print("\nper-epoch wall time (median of warm epochs)")
        baseline = "float keras" if "float keras" in times else next(iter(times))
        reference_time = statistics.median(times[baseline])
        for name, seconds in times.items():
            median = statistics.median(seconds)
            mean = statistics.mean(seconds)
            compiled = "XLA/jit" if by_name[name].model.jit_compile else "no XLA"
            print(f"  {name:12s} {median * 1e3:8.1f} ms   {median / reference_time:5.2f}x {baseline}   "
                  f"(mean {mean * 1e3:.1f} ms = {mean / statistics.mean(times[baseline]):.2f}x; {compiled})")
        if args.json:
            summary["epoch_seconds"] = times
            with open(args.json, "w") as handle:
                json.dump(summary, handle, indent=1)

        if args.verify_points > 0 and "hgq_chip" in fronts:
            print(f"\nconvert + verify {min(args.verify_points, len(fronts['hgq_chip']))} hgq_chip front points")
            verify_points(fronts["hgq_chip"], args.verify_points, data, directory)
        if args.plot:
            plot_fronts(fronts, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
