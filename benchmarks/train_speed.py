"""Per-epoch training time on every Keras backend: float Keras vs hgq_chip vs HGQ2 (if installed).

    python benchmarks/train_speed.py [--backends tensorflow,jax] [--epochs 16] [--chunk 2]
                                     [--data DIR] [--jit-compile auto|true|false] [--threads N]

Task: the MNIST-4x4 MLP of ``benchmarks/pareto_mnist16.py`` (16-64-32-32-10 relu, batch 1024,
Adam 3e-3, 50k training / 10k validation samples), each model trained as that benchmark trains
it: hgq_chip with ResetRanges, LogRampBeta (1e-7 -> 1e-4), EBOPsMetric and ParetoCheckpoint
(and once more without ParetoCheckpoint, "-ckpt": its .keras writes, on a background thread,
are most of the callbacks' cost); HGQ2 with its BetaScheduler, FreeEBOPs and ParetoFront;
float Keras plain; "minimal STE", the floor of any quantizer: the float MLP with every Dense
input, kernel and bias rounded to a fixed 2**-4 step with a straight-through gradient (no
trainable bits, no EBOPs term, no range recording). Every model is
compiled with the same ``jit_compile`` (Keras' default ``"auto"`` unless told: XLA/jit on JAX,
no XLA on a CPU-only TensorFlow machine).

Each backend runs in its own child process (Keras picks its backend once per process); in it
the models train in turn, ``--chunk`` epochs at a time, so a shared machine whose speed drifts
slows them alike. An epoch's time is what a user waits for: training, the validation pass and
the callbacks' epoch-end work. The first epoch of each model (tracing/compilation) is
dropped and the median of the rest reported, as wall time and as the process's CPU time (all
threads; steadier than wall time when other jobs share the cores). Ratios are to float Keras
on the same backend.

Measured (CPU ms per epoch, ``--epochs 8 --chunk 2``, 2 shared cores under load ~6; the
ratios move by +-0.2 between runs of one build, so compare rows of one run):

    backend     model           before (main 142f4fe)  after, run 1    after, run 2
    tensorflow  float keras     167 ms  1.00x          221 ms  1.00x   294 ms  1.00x
    tensorflow  minimal STE     171 ms  1.02x          204 ms  0.92x   299 ms  1.02x
    tensorflow  hgq_chip        373 ms  2.23x          388 ms  1.76x   568 ms  1.93x
    tensorflow  hgq_chip -ckpt  341 ms  2.04x          347 ms  1.57x   456 ms  1.55x
    jax         float keras      72 ms  1.00x           82 ms  1.00x   103 ms  1.00x
    jax         minimal STE      70 ms  0.97x           69 ms  0.84x    90 ms  0.87x
    jax         hgq_chip        141 ms  1.95x          152 ms  1.84x   204 ms  1.98x
    jax         hgq_chip -ckpt  107 ms  1.48x          129 ms  1.57x   149 ms  1.44x

The floor is ~1.0x: rounding every tensor costs this MLP nothing measurable, so the distance
to 1.10x is what trainable bit-widths bring, not quantization as such. On TensorFlow (no XLA
on a CPU) time follows the step graph's node count. After Grappler the training step has
338 nodes for float Keras and 1558 (before) / 1506 (after) for hgq_chip: the Adam update of the
12 bit-width variables (~360 nodes; as many variables again as the float model has), the
quantizers' forward/backward and range recording (~340) and the EBOPs term (~470; the
rewrite cut 2959 -> 2361 traced ops, but Grappler had already folded most of them). On JAX
the step is ~3x the float step's XLA thunks (fusions: float 63, hgq_chip 181 before / 173
after); each ``pow2`` (``ldexp``, exact) is its own fusion. Reaching 1.10x needs fewer
bit-width variables to update (e.g. per-channel activations) or fewer nodes per quantizer,
not cheaper rounding.
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

HERE = Path(__file__).resolve().parent
BACKENDS = ("tensorflow", "jax")
RESULT_PREFIX = "RESULT "


STE_FRACTIONAL_BITS = 4  # the floor's fixed step: 2**-4 on every input, weight and bias


def minimal_ste_mlp(n_in: int):
    """The float MLP with the cheapest fixed-point quantization: the floor of any quantizer.

    Every Dense input, kernel and bias is rounded to a fixed step 2**-STE_FRACTIONAL_BITS
    (``round(x * 2**f) / 2**f``, no overflow, as our layers train) with a straight-through
    gradient (``x + stop_gradient(q - x)``): no trainable bit-widths, no EBOPs term, no range
    recording. Its ratio to float Keras is what a per-element quantizer costs at the least.
    """
    import keras
    import pareto_mnist16 as bench
    from keras import ops

    scale = float(2**STE_FRACTIONAL_BITS)

    def ste(x):
        return x + ops.stop_gradient(ops.round(x * scale) / scale - x)

    class MinimalSTEDense(keras.layers.Dense):
        def call(self, inputs):
            return self.activation(ops.matmul(ste(inputs), ste(self.kernel)) + ste(self.bias))

    inputs = keras.Input((n_in,))
    x = inputs
    for width in bench.HIDDEN:
        x = MinimalSTEDense(width, activation="relu")(x)
    return keras.Model(inputs, MinimalSTEDense(bench.N_CLASSES)(x))


def _worker(args) -> int:
    """Train every model on this process's backend and print one JSON result line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(HERE))
    import keras
    import pareto_mnist16 as bench

    class CpuAndWallTimer(bench.EpochTimer):
        """EpochTimer (wall time, train-end work included) plus the process's CPU time."""

        def __init__(self):
            super().__init__()
            self.cpu_seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._cpu_start = time.process_time()
            super().on_epoch_begin(epoch, logs)

        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            self._cpu_end = time.process_time()
            self.cpu_seconds.append(self._cpu_end - self._cpu_start)

        def on_train_end(self, logs=None):
            super().on_train_end(logs)
            if self.cpu_seconds:
                self.cpu_seconds[-1] += time.process_time() - self._cpu_end

    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    data = bench.load_data(args.data, 0)
    n_in = data["train"][0].shape[1]
    with tempfile.TemporaryDirectory(prefix="train_speed_") as directory:
        def without_checkpoints():
            run = bench.hgq_chip_run(n_in, args.epochs, Path(directory) / "unused", 4.0, 0.8)
            run.name, run.callbacks = "hgq_chip -ckpt", run.callbacks[:-1]  # drop ParetoCheckpoint
            return run

        makers = [("float keras", lambda: bench.Run("float keras", bench.float_mlp(n_in))),
                  ("minimal STE", lambda: bench.Run("minimal STE", minimal_ste_mlp(n_in))),
                  ("hgq_chip", lambda: bench.hgq_chip_run(n_in, args.epochs, Path(directory), 4.0, 0.8)),
                  ("hgq_chip -ckpt", without_checkpoints)]
        if bench.QDense is not None:
            makers.append(("HGQ2", lambda: bench.hgq2_run(n_in, args.epochs, Path(directory))))
        runs = []
        for _, make in makers:
            keras.utils.set_random_seed(0)
            run = make()
            run.jit_compile = jit
            run.timer = CpuAndWallTimer()
            runs.append(run)
        bench.train_interleaved(runs, data, args.epochs, args.chunk)
        result = {"backend": keras.backend.backend(), "jit_compile": {r.name: bool(r.model.jit_compile) for r in runs},
                  "wall": {r.name: r.timer.seconds[1:] for r in runs}, "cpu": {r.name: r.timer.cpu_seconds[1:] for r in runs}}
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


def _run_backend(backend: str, args) -> dict | None:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    if args.threads:
        # One thread pool size for every backend's CPU kernels (TensorFlow, XLA/Eigen).
        env.update(TF_NUM_INTRAOP_THREADS=str(args.threads), TF_NUM_INTEROP_THREADS=str(args.threads),
                   XLA_FLAGS=f"--xla_cpu_multi_thread_eigen={'true' if args.threads > 1 else 'false'}")
    command = [sys.executable, __file__, "--worker", "--epochs", str(args.epochs), "--chunk", str(args.chunk),
               "--data", str(args.data), "--jit-compile", args.jit_compile]
    child = subprocess.run(command, check=False, env=env, capture_output=True, text=True)
    lines = [line for line in child.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if child.returncode != 0 or not lines:
        print(f"{backend}: failed (exit {child.returncode}): {child.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def print_table(results: list[dict]) -> None:
    print(f"\n{'backend':11s} {'model':14s} {'XLA/jit':7s} {'wall ms':>8s} {'ratio':>6s} {'cpu ms':>8s} {'ratio':>6s}  (median of warm epochs)")
    for result in results:
        wall = {name: statistics.median(s) for name, s in result["wall"].items()}
        cpu = {name: statistics.median(s) for name, s in result["cpu"].items()}
        for name, seconds in wall.items():
            print(f"{result['backend']:11s} {name:14s} {result['jit_compile'][name]!s:7s} {seconds * 1e3:8.1f} "
                  f"{seconds / wall['float keras']:5.2f}x {cpu[name] * 1e3:8.1f} {cpu[name] / cpu['float keras']:5.2f}x")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated Keras backends")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--chunk", type=int, default=4,
                        help="models train in turn, this many epochs at a time (each fit's end flushes ParetoCheckpoint)")
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "mnist",
                        help="directory with mnist_train.npz and mnist_test.npz")
    parser.add_argument("--jit-compile", choices=("auto", "true", "false"), default="auto",
                        help="every model's compile(jit_compile=...) (default: Keras' own 'auto')")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per backend (default: the backend's own)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.epochs < 2 * args.chunk:
        parser.error("--epochs must cover at least two chunks: the first epoch is dropped")
    if args.worker:
        return _worker(args)
    results = []
    for backend in args.backends.split(","):
        print(f"{backend}: training float keras, minimal STE, hgq_chip and HGQ2 (if installed) interleaved, {args.epochs} epochs ...",
              flush=True)
        result = _run_backend(backend, args)
        if result is not None:
            results.append(result)
    if not results:
        return 1
    print_table(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
