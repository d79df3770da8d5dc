"""AdaQAT on sklearn digits: learn per-layer bit-widths from 8 bits down, for several λ.

    python examples/adaqat_digits.py out/adaqat
    python examples/adaqat_digits.py out/adaqat --lams 1e-6,5e-6,2e-5 --from-float --convert

For a baseline, the same MLP (ADense 64-32-32-10) is trained at a fixed 8 bits; then
once per λ with an AdaQATController (from scratch, or with ``--from-float`` by
fine-tuning a trained float MLP). Each run writes its bit-width trajectory
(``bits_<λ>.csv``) and, with matplotlib, a plot like the paper's Figure 1
(``bits_<λ>.png``); ``summary.json`` lists accuracy, BitOPs, exact EBOPs and the final
⌈N_w⌉/⌈N_a⌉ per layer. ``--convert`` writes the hls4ml project of the last run and checks
its C simulation against Keras bit for bit.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from hgq_chip import cost  # noqa: E402
from hgq_chip.data import load_split  # noqa: E402
from hgq_chip.layers.adaqat import ADense  # noqa: E402
from hgq_chip.layers.adaqat_clone import adaqat_from_model  # noqa: E402
from hgq_chip.model_walk import adaqat_layers  # noqa: E402
from hgq_chip.training.adaqat import AdaQATController, total_bitops  # noqa: E402
from hgq_chip.training.adaqat_plot import plot_bitwidth_trajectories  # noqa: E402

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def adaqat_mlp(n_in: int, n_out: int, hidden: int) -> keras.Model:
    inputs = keras.Input((n_in,))
    x = ADense(hidden, activation="relu", input_quantizer={"init_alpha": 1.0})(inputs)  # pixels in [0, 1]
    x = ADense(hidden, activation="relu", input_quantizer={"init_alpha": 4.0})(x)
    return keras.Model(inputs, ADense(n_out, input_quantizer={"init_alpha": 4.0})(x))


def float_mlp(n_in: int, n_out: int, hidden: int) -> keras.Model:
    inputs = keras.Input((n_in,))
    x = keras.layers.Dense(hidden, activation="relu")(inputs)
    x = keras.layers.Dense(hidden, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(n_out)(x))


def compile_model(model, learning_rate, epochs, steps):
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, epochs * steps, alpha=0.05)
    model.compile(keras.optimizers.Adam(schedule), LOSS, metrics=["accuracy"])
    return model


def summarize(model, data, label):
    accuracy = float(model.evaluate(data.x_val, data.y_val, verbose=0)[1])
    bits = {layer.name: {"w": layer.kq.ceil_bits(), "a": layer.iq.ceil_bits(), "frozen_w": layer.kq.is_frozen,
                         "frozen_a": layer.iq.is_frozen} for layer in adaqat_layers(model)}
    row = {"run": label, "accuracy": accuracy, "bitops": total_bitops(model), "ebops": cost.ebops(model), "bits": bits}
    per_layer = " ".join(f"{name}:w{b['w']}/a{b['a']}" for name, b in bits.items())
    print(f"{label:>14}: accuracy {accuracy:.4f}  BitOPs {row['bitops']:>7}  EBOPs {row['ebops']:>7}  {per_layer}")
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="output directory")
    parser.add_argument("--lams", default="2e-6,1e-5", help="comma-separated λ values (weight of BitOPs)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--every", type=int, default=5, help="bit-width update every K steps")
    parser.add_argument("--bits-lr", type=float, default=1.0, help="learning rate of the bit-widths")
    parser.add_argument("--from-float", action="store_true", help="fine-tune a trained float MLP instead of training from scratch")
    parser.add_argument("--convert", action="store_true", help="convert the last model and verify csim bit for bit")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    data = load_split()
    steps = int(np.ceil(len(data.x_train) / args.batch_size))
    fit = dict(batch_size=args.batch_size, verbose=0)

    keras.utils.set_random_seed(args.seed)
    baseline = compile_model(adaqat_mlp(data.n_features, data.n_classes, args.hidden), 0.02, args.epochs, steps)
    baseline.fit(data.x_train, data.y_train, epochs=args.epochs, **fit)
    rows = [summarize(baseline, data, "8-bit")]

    float_model = None
    if args.from_float:
        keras.utils.set_random_seed(args.seed)
        float_model = compile_model(float_mlp(data.n_features, data.n_classes, args.hidden), 0.02, args.epochs, steps)
        float_model.fit(data.x_train, data.y_train, epochs=args.epochs, **fit)
        rows.append({"run": "float", "accuracy": float(float_model.evaluate(data.x_val, data.y_val, verbose=0)[1])})
        print(f"{'float':>14}: accuracy {rows[-1]['accuracy']:.4f}")

    model = None
    for lam in (float(v) for v in args.lams.split(",")):
        keras.utils.set_random_seed(args.seed)
        if float_model is not None:
            model = compile_model(adaqat_from_model(float_model, data.x_train), 0.002, args.epochs, steps)
        else:
            model = compile_model(adaqat_mlp(data.n_features, data.n_classes, args.hidden), 0.02, args.epochs, steps)
        csv_path = os.path.join(args.out, f"bits_{lam:g}.csv")
        controller = AdaQATController((data.x_train, data.y_train), lam=lam, lr=args.bits_lr, every=args.every,
                                      csv_path=csv_path, seed=args.seed)
        history = model.fit(data.x_train, data.y_train, epochs=args.epochs, callbacks=[controller], **fit)
        rows.append(summarize(model, data, f"λ={lam:g}"))
        try:
            plot_bitwidth_trajectories(controller, os.path.join(args.out, f"bits_{lam:g}.png"),
                                       accuracy=history.history["accuracy"], title=f"AdaQAT, λ={lam:g}")
        except ImportError as error:
            print(f"no plot: {error}")

    with open(os.path.join(args.out, "summary.json"), "w") as handle:
        json.dump(rows, handle, indent=2)
    if args.convert and model is not None:
        import hgq_chip

        hgq_chip.calibrate(model, data.x_train)
        project = os.path.join(args.out, "firmware")
        hgq_chip.convert(model, project, force=True)
        report = hgq_chip.verify(model, project, data.x_val)
        print(report.describe())


if __name__ == "__main__":
    main()
