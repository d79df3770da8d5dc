"""Train a float MLP and an HGQ MLP of the same shape; shrink the HGQ one with a log-ramped beta.

    python examples/digits_mlp.py out/digits
    python examples/digits_mlp.py out/mnist --data /path/to/mnist_train.npz --max-samples 20000

Data: sklearn's 8x8 digits (offline) by default; ``--data`` takes an ``.npz`` with ``x``
and ``y`` arrays, whose images are flattened as they are (28x28 MNIST gives 784 inputs).
The HGQ model is HQuantize -> HDense(relu) -> HDense(relu) -> HDense. Callbacks reset
activation ranges each epoch, ramp beta geometrically, log exact EBOPs and keep
Pareto-front checkpoints (validation accuracy vs EBOPs) in the output directory.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from hgq_chip import cost  # noqa: E402
from hgq_chip.calibration import calibrate  # noqa: E402
from hgq_chip.data import load_split  # noqa: E402
from hgq_chip.layers import HDense, HQuantize  # noqa: E402
from hgq_chip.training import EBOPsMetric, LogRampBeta, ParetoCheckpoint, ResetRanges  # noqa: E402


def build_mlp(n_in: int, n_out: int, hidden: int, quantized: bool) -> keras.Model:
    inputs = keras.Input((n_in,))
    if quantized:
        x = HQuantize()(inputs)
        x = HDense(hidden, activation="relu")(x)
        x = HDense(hidden, activation="relu")(x)
        outputs = HDense(n_out)(x)
    else:
        x = keras.layers.Dense(hidden, activation="relu")(inputs)
        x = keras.layers.Dense(hidden, activation="relu")(x)
        outputs = keras.layers.Dense(n_out)(x)
    return keras.Model(inputs, outputs, name="hgq_mlp" if quantized else "float_mlp")


def compile_model(model: keras.Model, args, steps_per_epoch: int) -> keras.Model:
    # Cosine decay lets weights and bit-widths settle once beta stops rising.
    lr = keras.optimizers.schedules.CosineDecay(args.lr, args.epochs * steps_per_epoch, alpha=0.05)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(lr), loss, metrics=["accuracy"])
    return model


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="output directory for Pareto checkpoints (pareto.json + .keras files)")
    parser.add_argument("--data", default=None, help=".npz with x and y arrays (default: sklearn digits)")
    parser.add_argument("--max-samples", type=int, default=None, help="use only the first N samples of --data")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--beta0", type=float, default=1e-6)
    parser.add_argument("--beta1", type=float, default=2e-5)
    parser.add_argument("--ramp-epochs", type=int, default=30, help="beta reaches beta1 at this epoch, then stays")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="extend an existing Pareto front in OUT")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    data = load_split(args.data, max_samples=args.max_samples)
    steps = int(np.ceil(len(data.x_train) / args.batch_size))
    fit_kwargs = dict(epochs=args.epochs, batch_size=args.batch_size, validation_data=(data.x_val, data.y_val))

    keras.utils.set_random_seed(args.seed)
    float_model = compile_model(build_mlp(data.n_features, data.n_classes, args.hidden, False), args, steps)
    float_model.fit(data.x_train, data.y_train, verbose=0, **fit_kwargs)
    float_accuracy = float_model.evaluate(data.x_val, data.y_val, verbose=0)[1]

    keras.utils.set_random_seed(args.seed)
    model = compile_model(build_mlp(data.n_features, data.n_classes, args.hidden, True), args, steps)
    calibrate(model, data.x_train)
    initial_ebops = cost.ebops(model)
    pareto = ParetoCheckpoint(args.out, monitor="val_accuracy", mode="max", resume=args.resume)
    callbacks = [ResetRanges(), LogRampBeta(args.beta0, args.beta1, stop=args.ramp_epochs), EBOPsMetric(), pareto]
    model.fit(data.x_train, data.y_train, verbose=2, callbacks=callbacks, **fit_kwargs)
    accuracy = model.evaluate(data.x_val, data.y_val, verbose=0)[1]
    final_ebops = cost.ebops(model)

    print(f"data: {args.data or 'sklearn digits'}; {len(data.x_train)} train / {len(data.x_val)} validation samples")
    print(f"float accuracy: {float_accuracy:.4f}")
    print(f"HGQ accuracy:   {accuracy:.4f}")
    print(f"EBOPs initial (calibrated, untrained): {initial_ebops}; final: {final_ebops} "
          f"({initial_ebops / max(final_ebops, 1):.1f}x fewer)")
    print(f"Pareto front ({pareto.index_path}):")
    for member in pareto.front:
        print(f"  epoch {member['epoch']:3d}  val_accuracy {member['metric']:.4f}  ebops {member['ebops']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
