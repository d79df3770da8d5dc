"""A small transformer classifier on MNIST patches: trained bit-widths, Pareto front, exact firmware.

    python examples/transformer_mnist.py out/transformer
    python examples/transformer_mnist.py out/transformer --epochs 4 --max-samples 6000   # a quick run
    python examples/transformer_mnist.py out/transformer --pre-ln   # a pre-LN block (HLayerNormalization)

Data: ``--data`` (default ``../shared/data/mnist/mnist_train.npz``, an ``.npz`` with ``x`` and ``y``);
when that file is absent, sklearn's 8x8 digits (offline). Each image becomes 16 tokens: a 4x4 grid
of patches (MNIST: 28x28 padded to 32x32, 8x8 patches), each patch average-pooled 2x2 into its
features (16 per MNIST token, 4 per digits token).

The model: HQuantize -> HEinsumDense 'btf,fo->bto' (relu) -> x + HMultiHeadAttention(x, x) ->
Flatten -> HDense; the float reference is the same with Keras' EinsumDense, MultiHeadAttention and
Add. ``--pre-ln`` makes the block pre-LN: x + HMultiHeadAttention(n, n) with n = HLayerNormalization(x)
(Keras' LayerNormalization in the float reference). Training ramps beta geometrically (LogRampBeta),
logs exact EBOPs and keeps the Pareto front
(validation accuracy vs EBOPs); each front member's LUTs are estimated, and the most accurate one
is converted (io_parallel) and verified bit-exact in C simulation on validation samples and on
random inputs over 4x the calibrated range.
"""

from __future__ import annotations

import argparse
import json
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import hgq_chip  # noqa: E402
from hgq_chip.data import load_split  # noqa: E402
from hgq_chip.layers import HAdd, HDense, HEinsumDense, HLayerNormalization  # noqa: E402
from hgq_chip.layers import HMultiHeadAttention, HQuantize  # noqa: E402
from hgq_chip.training import EBOPsMetric, LogRampBeta, ParetoCheckpoint, ResetRanges  # noqa: E402

DEFAULT_DATA = os.path.join("..", "shared", "data", "mnist", "mnist_train.npz")
GRID = 4  # tokens per side: 16 tokens


def patch_tokens(x_flat: np.ndarray) -> np.ndarray:
    """Flattened square images ``(n, side * side)`` -> ``(n, 16, features)``: a 4x4 grid of patches
    (the image zero-padded to a multiple of 4 per side, of 8 when larger than 16), each patch
    average-pooled 2x2 when it is at least 4 pixels wide (MNIST: 16 features; digits: 4)."""
    n, side = len(x_flat), math.isqrt(x_flat.shape[1])
    images = x_flat.reshape(n, side, side)
    pool = 2 if side > 4 * GRID else 1
    padded_side = -(-side // (pool * GRID)) * pool * GRID
    pad = padded_side - side
    images = np.pad(images, ((0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2)))
    cells = padded_side // pool
    pooled = images.reshape(n, cells, pool, cells, pool).mean(axis=(2, 4))
    patch = cells // GRID
    tokens = pooled.reshape(n, GRID, patch, GRID, patch).transpose(0, 1, 3, 2, 4)
    return tokens.reshape(n, GRID * GRID, patch * patch).astype(np.float32)


def build_model(tokens: int, features: int, classes: int, args, quantized: bool) -> keras.Model:
    inputs = keras.Input((tokens, features), name="tokens")
    if quantized:
        x = HQuantize(name="q")(inputs)
        x = HEinsumDense("btf,fo->bto", (None, args.width), bias_axes="o", activation="relu", name="embed")(x)
        normed = HLayerNormalization(name="pre_ln")(x) if args.pre_ln else x
        attended = HMultiHeadAttention(args.heads, args.key_dim, name="attention")(normed, normed)
        x = keras.layers.Flatten(name="flatten")(HAdd(name="residual")([x, attended]))
        outputs = HDense(classes, name="head")(x)
    else:
        x = keras.layers.EinsumDense("btf,fo->bto", (tokens, args.width), bias_axes="o", activation="relu")(inputs)
        normed = keras.layers.LayerNormalization()(x) if args.pre_ln else x
        attended = keras.layers.MultiHeadAttention(args.heads, args.key_dim)(normed, normed)
        x = keras.layers.Flatten()(keras.layers.Add()([x, attended]))
        outputs = keras.layers.Dense(classes)(x)
    return keras.Model(inputs, outputs, name="hgq_transformer" if quantized else "float_transformer")


def compile_model(model, args, steps_per_epoch: int):
    lr = keras.optimizers.schedules.CosineDecay(args.lr, args.epochs * steps_per_epoch, alpha=0.05)
    model.compile(keras.optimizers.Adam(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="output directory (Pareto checkpoints, the converted project, results.json)")
    parser.add_argument("--data", default=DEFAULT_DATA, help=f".npz with x and y (default: {DEFAULT_DATA}; "
                        "sklearn digits when absent)")
    parser.add_argument("--max-samples", type=int, default=12000, help="use the first N shuffled samples")
    parser.add_argument("--width", type=int, default=8, help="features per token after the projection")
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--key-dim", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--beta0", type=float, default=1e-6)
    parser.add_argument("--beta1", type=float, default=1e-4)
    parser.add_argument("--verify-samples", type=int, default=300, help="validation samples run in C simulation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pre-ln", action="store_true", help="normalize the attention's input with "
                        "HLayerNormalization (a pre-LN block)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    path = args.data if args.data and os.path.isfile(args.data) else None
    if args.data and path is None:
        print(f"{args.data} not found: using sklearn digits instead (pass --data PATH for MNIST)")
    data = load_split(path, max_samples=args.max_samples)
    x_train, x_val = patch_tokens(data.x_train), patch_tokens(data.x_val)
    tokens, features = x_train.shape[1:]
    steps = int(np.ceil(len(x_train) / args.batch_size))
    fit = {"epochs": args.epochs, "batch_size": args.batch_size, "validation_data": (x_val, data.y_val)}

    keras.utils.set_random_seed(args.seed)
    float_model = compile_model(build_model(tokens, features, data.n_classes, args, False), args, steps)
    float_model.fit(x_train, data.y_train, verbose=0, **fit)
    float_accuracy = float(float_model.evaluate(x_val, data.y_val, verbose=0)[1])

    keras.utils.set_random_seed(args.seed)
    model = compile_model(build_model(tokens, features, data.n_classes, args, True), args, steps)
    pareto = ParetoCheckpoint(os.path.join(args.out, "pareto"), monitor="val_accuracy", mode="max")
    callbacks = [ResetRanges(), LogRampBeta(args.beta0, args.beta1, stop=max(args.epochs - 1, 1)), EBOPsMetric(),
                 pareto]
    model.fit(x_train, data.y_train, verbose=2, callbacks=callbacks, **fit)

    print(f"data: {path or 'sklearn digits'}; {len(x_train)} train / {len(x_val)} validation samples, "
          f"{tokens} tokens x {features} features")
    print(f"float Keras accuracy: {float_accuracy:.4f}")
    rows = []
    for member in pareto.front:
        candidate = hgq_chip.load_model(member["path"])
        hgq_chip.calibrate(candidate, x_train)
        accuracy = float(np.mean(np.argmax(candidate.predict(x_val, verbose=0), axis=1) == data.y_val))
        rows.append({"epoch": member["epoch"], "accuracy": accuracy, "ebops": hgq_chip.ebops(candidate),
                     "lut": hgq_chip.estimate(candidate).lut, "path": member["path"]})
    print("Pareto front (calibrated on the training set):")
    print(f"  {'epoch':>5}  {'accuracy':>8}  {'EBOPs':>9}  {'est. LUT':>9}")
    for row in rows:
        print(f"  {row['epoch']:>5}  {row['accuracy']:8.4f}  {row['ebops']:>9}  {row['lut']:>9}")

    best = max(rows, key=lambda row: (row["accuracy"], -row["ebops"]))
    chosen = hgq_chip.load_model(best["path"])
    hgq_chip.calibrate(chosen, x_train)
    project = os.path.join(args.out, "project")
    hgq_chip.convert(chosen, project, force=True)
    on_data = hgq_chip.verify(chosen, project, x_val[: args.verify_samples], strict=True)
    on_random = hgq_chip.verify(chosen, project, random=args.verify_samples, scale=4.0, strict=True)
    print(f"converted epoch {best['epoch']} to {project}:")
    print(f"  validation samples: {on_data.describe()}")
    print(f"  4x out-of-range random inputs: {on_random.describe()}")
    with open(os.path.join(args.out, "results.json"), "w") as handle:
        json.dump({"pre_ln": args.pre_ln, "float_accuracy": float_accuracy, "front": rows,
                   "converted_epoch": best["epoch"],
                   "bit_exact": bool(on_data.ok and on_random.ok)}, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
