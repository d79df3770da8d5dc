"""The whole hgq_chip flow on a small real task, end to end, in about a minute on a laptop CPU.

1. train a quantized MLP on scikit-learn's 8x8 digits (or your own ``--data x_y.npz``)
   while the EBOPs penalty beta ramps up geometrically, so bit-widths shrink as it learns;
2. calibrate the activation ranges on the training set;
3. convert it into an hls4ml project (every type derived exactly);
4. compile the project's C simulation and check it equals Keras bit for bit on the
   held-out set and on random inputs four times wider than the calibrated range.

Run it with ``bash ci/demo.sh`` (creates the virtual environment) or, inside the
environment, ``python examples/train_convert_verify.py [--output-dir out/demo]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

import hgq_chip
from hgq_chip.conversion.reports import format_summary, summarize
from hgq_chip.data import load_split
from hgq_chip.errors import HGQChipError, MismatchError
from hgq_chip.conversion.output_dir import check_output_dir
from hgq_chip.estimation.estimate import format_estimate
from hgq_chip.layers import HDense, HQuantize
from hgq_chip.training import EBOPsMetric, LogRampBeta, ResetRanges


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="an .npz with arrays x and y (default: scikit-learn digits)")
    parser.add_argument("--output-dir", default="out/demo", help="where the hls4ml project goes (an earlier project there is replaced)")
    parser.add_argument("--replace-non-project", action="store_true",
                        help="replace --output-dir even if it holds files convert did not write, or edited ones "
                             "(deleting them), as convert's own --replace-non-project")
    parser.add_argument("--backend", default="Vitis", help="Vitis or Vivado")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--hidden", type=int, default=32, help="hidden layer width")
    parser.add_argument("--beta", type=float, nargs=2, default=(1e-7, 3e-5), metavar=("START", "END"),
                        help="EBOPs weight in the loss, ramped geometrically from START to END")
    parser.add_argument("--random", type=int, default=1000, help="random out-of-range samples to verify")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def build_model(n_features: int, n_classes: int, hidden: int) -> keras.Model:
    inputs = keras.Input((n_features,), name="pixels")
    x = HQuantize(name="input_q")(inputs)
    x = HDense(hidden, activation="relu", name="hidden")(x)
    outputs = HDense(n_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="digits_mlp")


def accuracy(model, x, y) -> float:
    return float(np.mean(np.argmax(model.predict(x, verbose=0, batch_size=1024), axis=-1) == y))


def step(message: str) -> None:
    print(f"\n== {message}", flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    # Before a minute of training: the output must be new, empty or an earlier project (never a
    # folder of other files, the current directory, or the folder holding --data).
    check_output_dir(args.output_dir, force=True, replace_non_project=args.replace_non_project, reads=[args.data])
    keras.utils.set_random_seed(args.seed)
    split = load_split(args.data, seed=args.seed)
    source = args.data or "scikit-learn digits"
    print(f"data: {source}: {len(split.x_train)} training and {len(split.x_val)} held-out samples, "
          f"{split.n_features} features, {split.n_classes} classes")

    step(f"training {args.epochs} epochs, beta {args.beta[0]:g} -> {args.beta[1]:g} (log ramp)")
    model = build_model(split.n_features, split.n_classes, args.hidden)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    start = time.time()
    history = model.fit(
        split.x_train, split.y_train, validation_data=(split.x_val, split.y_val), epochs=args.epochs,
        batch_size=64, verbose=0,
        callbacks=[ResetRanges(), LogRampBeta(args.beta[0], args.beta[1], stop=args.epochs - 1), EBOPsMetric()],
    )
    logs = history.history
    for epoch in sorted({0, args.epochs // 2, args.epochs - 1}):
        print(f"  epoch {epoch + 1:3d}: beta {logs['beta'][epoch]:.2e}  EBOPs {int(logs['ebops'][epoch]):7d}  "
              f"val accuracy {logs['val_accuracy'][epoch]:.3f}")
    print(f"  trained in {time.time() - start:.0f} s")

    step("calibrating activation ranges on the training set")
    hgq_chip.calibrate(model, split.x_train)
    print(f"  held-out accuracy of the quantized model (= the firmware's): {accuracy(model, split.x_val, split.y_val):.3f}")
    print(f"  exact EBOPs: {hgq_chip.ebops(model)}")

    step(f"converting to an hls4ml {args.backend} project in {args.output_dir}")
    conversion = hgq_chip.convert(model, args.output_dir, backend=args.backend, force=True,
                                  replace_non_project=args.replace_non_project,
                                  reads=[args.data] if args.data else ())
    print(format_summary(summarize(conversion.records)))

    step("verifying the C simulation against Keras, bit for bit")
    held_out = hgq_chip.verify(model, conversion.output_dir, split.x_val, strict=True)
    print(f"  held-out set: {held_out.describe()}")
    wide = hgq_chip.verify(model, conversion.output_dir, random=args.random, seed=args.seed, scale=4.0, strict=True)
    print(f"  random inputs over 4x the calibrated range: {wide.describe()}")

    step("estimating resources without Vivado (same derived types; no compilation)")
    start = time.time()
    resources = hgq_chip.estimate(conversion.output_dir, clock_period=5.0)
    print(format_estimate(resources))
    print(f"  estimated in {time.time() - start:.2f} s")

    step("done")
    out = conversion.output_dir
    print(f"  hls4ml project:        {out}  (synthesize with Vitis/Vivado HLS: not available here)")
    print(f"  derived types:         {out / 'hls_config.yml'}")
    print(f"  per-weight bit-widths: {out / 'weight_types.csv'}")
    print(f"  summary:               {out / 'summary.json'}")
    print(f"  estimate again:        hgq_chip estimate {out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MismatchError as error:
        print(f"hgq_chip: error: the firmware does not match Keras: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    except HGQChipError as error:
        print(f"hgq_chip: error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
