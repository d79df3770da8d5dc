"""Sweep scaling on this machine: the same 8-trial sweep with 1 and 2 Ray workers, and Ray's
overhead per trial against the same trainings run directly.

    python benchmarks/sweep_scaling.py [--data DIR] [--epochs 3] [--max-train 10000] [--out DIR]

Task: MNIST-4x4 (``hgq_chip.sweeps.tasks``: 28x28 averaged to 16 features; sklearn digits
4x4 if the MNIST files are missing), MLP 16-16-16-10, 8 trials = a grid over 8 seeds (same
work whatever the worker count). Each sweep runs as ``hgq_chip sweep --workers N`` in a fresh
process with an embedded Ray (on 127.0.0.1), without the firmware fan-out (``fanout.members:
0``) so only training is timed. "Direct" runs the 8 trainings one after another in this
process with the same trial function (``hgq_chip.sweeps.trial.train_trial``), TensorFlow
already imported. Reported:

- wall time of each sweep (Ray start-up to exit) and the 1-worker / 2-worker ratio;
- per trial: Tune's ``time_total_s`` (inside the trial function) vs the direct run;
- Ray overhead per trial = (1-worker sweep wall - direct total) / 8: process start, TensorFlow
  import in each trial's worker, scheduling, result reporting, Ray's own start-up shared out;
  and the part of it outside the trial functions, (1-worker wall - sum of time_total_s) / 8.

On a shared machine the direct and the Ray runs see different loads; compare them only when
nothing else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "mnist"
TRIALS = 8


def make_spec(data: Path | None, epochs: int, max_train: int) -> dict:
    path = str(data) if data is not None and (data / "mnist_train.npz").is_file() else None
    return {
        "name": "scaling", "model": "hgq_chip.sweeps.tasks:build",
        "data": {"loader": "hgq_chip.sweeps.tasks:load", "args": {"path": path, "max_train": max_train}},
        "sampler": "grid",
        "space": {"seed": {"grid": list(range(TRIALS))}, "width": 16, "depth": 2, "init_bits": 4,
                  "beta_start": 1e-6, "beta_end": 1e-4, "epochs": epochs, "batch_size": 256},
        "budget": {"trials": 1, "concurrent": 1, "cpus_per_trial": 1},
        "fanout": {"members": 0},
    }


def run_sweep(spec_path: Path, out: Path, workers: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hgq_chip.cli", "sweep", str(spec_path), "--out", str(out),
                    "--workers", str(workers), "--quiet"], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def trial_seconds(out: Path) -> list[float]:
    """Tune's time_total_s (time inside the trial function) of each trial, from its result.json."""
    seconds = []
    for result in sorted((out / "tune" / "scaling").glob("*/result.json")):
        lines = result.read_text().splitlines()
        seconds.append(json.loads(lines[-1])["time_total_s"])
    return seconds


def run_direct(spec: dict, out: Path) -> list[float]:
    from hgq_chip.sweeps.spec import parse_spec
    from hgq_chip.sweeps.trial import train_trial

    parsed = parse_spec(spec)
    seconds = []
    for seed in range(TRIALS):
        params = {**{k: v for k, v in parsed.space.items() if k != "seed"}, "seed": seed}
        start = time.perf_counter()
        train_trial(params, model_path=parsed.model, data_spec=parsed.data, out=str(out),
                    objectives=parsed.objectives, trial_id=f"direct{seed}", report=lambda metrics: None)
        seconds.append(time.perf_counter() - start)
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-train", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=None, help="keep the sweep folders here (default: a temp dir)")
    args = parser.parse_args(argv)
    spec = make_spec(args.data, args.epochs, args.max_train)
    with tempfile.TemporaryDirectory(prefix="sweep_scaling_") as temporary:
        folder = args.out or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        spec_path = folder / "spec.yaml"
        spec_path.write_text(yaml.safe_dump(spec))
        walls, inside = {}, {}
        for workers in (1, 2):
            out = folder / f"workers{workers}"
            walls[workers] = run_sweep(spec_path, out, workers)
            inside[workers] = trial_seconds(out)
            print(f"{workers} worker(s): sweep wall {walls[workers]:.1f} s; per trial inside Ray: median "
                  f"{statistics.median(inside[workers]):.1f} s (n={len(inside[workers])})", flush=True)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras  # noqa: F401  (imported before timing: the direct runs do not pay for it)

        direct = run_direct(spec, folder / "direct")
        data_note = "MNIST-4x4" if spec["data"]["args"]["path"] else "digits-4x4 (MNIST files not found)"
        print(f"\n{data_note}, {TRIALS} trials x {args.epochs} epochs, train {args.max_train}; "
              f"direct: {sum(direct):.1f} s total, median {statistics.median(direct):.1f} s per trial")
        print(f"wall ratio 1 worker / 2 workers: {walls[1] / walls[2]:.2f}x")
        outside = (walls[1] - sum(inside[1])) / TRIALS
        print(f"Ray time outside the trial functions, 1 worker (wall - sum of time_total_s) / {TRIALS}: {outside:.1f} s "
              "per trial (Ray start-up, trial actor start, scheduling, result reporting)")
        overhead = (walls[1] - sum(direct)) / TRIALS
        print(f"Ray overhead per trial (1-worker wall - direct) / {TRIALS}: {overhead:.1f} s; inside-trial time "
              f"minus direct, median: {statistics.median(inside[1]) - statistics.median(direct):.1f} s")
        for n in (100, 1000):
            print(f"  at {n} trials: {overhead * n / 60:.0f} worker-minutes of overhead "
                  f"({overhead * n / 60 / 2:.0f} min of wall on 2 workers)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
