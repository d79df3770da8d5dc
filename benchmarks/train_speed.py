"""Per-epoch training time: HDense MLP vs the same float Keras MLP (and HGQ2's QDense if installed).

    python benchmarks/train_speed.py [--data PATH] [--batch-size 256] [--epochs 6] [--hidden 64]

All models run in this one process, on the same data, batch size, optimizer and backend.
The first epoch (tracing/compilation) is excluded; the median of the warm epochs is
reported. The HGQ model trains with its EBOPs term active (beta > 0) and fresh ranges
each epoch, as in real use. HGQ2 (``import hgq``, pip name HGQ2) is only timed when it
is already installed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from hgq_chip import cost  # noqa: E402
from hgq_chip.data import load_split  # noqa: E402
from hgq_chip.layers import HDense  # noqa: E402
from hgq_chip.training import ConstantBeta, ResetRanges  # noqa: E402

try:  # HGQ2's import name is ``hgq``; never installed by this project.
    from hgq.config import LayerConfigScope
    from hgq.layers import QDense
except ImportError:
    QDense = None


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def float_mlp(n_in, n_out, hidden):
    inputs = keras.Input((n_in,))
    x = keras.layers.Dense(hidden, activation="relu")(inputs)
    x = keras.layers.Dense(hidden, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(n_out)(x))


def hgq_chip_mlp(n_in, n_out, hidden):
    # The first HDense's input quantizer quantizes the network input, as HGQ2's QDense does.
    inputs = keras.Input((n_in,))
    x = HDense(hidden, activation="relu")(inputs)
    x = HDense(hidden, activation="relu")(x)
    return keras.Model(inputs, HDense(n_out)(x))


def hgq2_mlp(n_in, n_out, hidden):
    with LayerConfigScope(enable_ebops=True, beta0=1e-6):
        inputs = keras.Input((n_in,))
        x = QDense(hidden, activation="relu")(inputs)
        x = QDense(hidden, activation="relu")(x)
        return keras.Model(inputs, QDense(n_out)(x))


def time_epochs(model, data, args, extra_callbacks=()) -> list[float]:
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=args.jit_compile)
    # The timer comes last so its epoch start follows the other callbacks' epoch-begin work.
    timer = EpochTimer()
    model.fit(data.x_train, data.y_train, epochs=args.epochs, batch_size=args.batch_size, verbose=0,
              callbacks=[*extra_callbacks, timer])
    return timer.seconds[1:]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help=".npz with x and y arrays (default: sklearn digits)")
    parser.add_argument("--max-samples", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--jit-compile", action="store_true", help="compile every model with XLA (Keras' 'auto' is off on CPU)")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be >= 2: the first epoch is excluded")
    data = load_split(args.data, max_samples=args.max_samples)
    shape = (data.n_features, data.n_classes, args.hidden)
    steps = int(np.ceil(len(data.x_train) / args.batch_size))
    print(f"backend {keras.backend.backend()}, jit_compile={args.jit_compile}, {len(data.x_train)} samples, batch {args.batch_size}, "
          f"{steps} steps/epoch, MLP {data.n_features}-{args.hidden}-{args.hidden}-{data.n_classes}")

    keras.utils.set_random_seed(0)
    results = {"float keras": time_epochs(float_mlp(*shape), data, args)}
    keras.utils.set_random_seed(0)
    model = hgq_chip_mlp(*shape)
    results["hgq_chip HDense"] = time_epochs(model, data, args, [ResetRanges(), ConstantBeta(1e-6)])
    if QDense is not None:
        keras.utils.set_random_seed(0)
        results["HGQ2 QDense"] = time_epochs(hgq2_mlp(*shape), data, args)
    else:
        print("HGQ2 not installed (import hgq failed): skipped")

    start = time.perf_counter()
    cost.ebops(model)
    ebops_seconds = time.perf_counter() - start

    reference = statistics.median(results["float keras"])
    for name, seconds in results.items():
        median = statistics.median(seconds)
        print(f"{name:16s} median warm epoch {median * 1e3:8.1f} ms  ({median / steps * 1e3:6.2f} ms/step)  "
              f"ratio to float {median / reference:5.2f}x")
    print(f"exact EBOPs (once per epoch with EBOPsMetric): {ebops_seconds * 1e3:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
