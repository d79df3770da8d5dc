"""Ablation of ASQ and POST on digits, in the shape of the ASQ paper's Table 5.

    python examples/asq_post_ablation.py                 # 3- and 4-bit rows, ~2-4 min on 2 cores
    python examples/asq_post_ablation.py --verify out/asq  # also convert ASQ+POST and check csim bit for bit

Rows: float baseline; LSQ (activations and weights); +POT and +POST weights; +ASQ
activations; ASQ+POST. Model: HQuantize -> ASQDense(64) -> ASQDense(32) -> ASQDense(32) ->
ASQDense(10). As in the paper, the first and last layers stay 8-bit LSQ; the two middle
layers use the row's quantizers at 3 or 4 bits. Accuracy is measured with the exact
fixed-point inference path (what the firmware computes); EBOPs with hgq_chip.ebops; LUTs
with hgq_chip.estimate (latency strategy, no synthesis; whole model and middle layers); the
ASQ overhead column is the middle layers' extra parameters (adapter + 1/β table) and
operations relative to their own (paper Table 1 style).
"""

from __future__ import annotations

import argparse
import logging
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
logging.getLogger("tensorflow").setLevel(logging.ERROR)  # predict() retracing notes, one per model

import keras  # noqa: E402
import numpy as np  # noqa: E402

import hgq_chip  # noqa: E402
from hgq_chip.data import load_split  # noqa: E402
from hgq_chip.layers import ASQDense, HQuantize  # noqa: E402

ROWS = {  # name: (activation kind, weight kind)
    "LSQ": ("lsq", "lsq"),
    "+POT": ("lsq", "pot"),
    "+POST": ("lsq", "post"),
    "+ASQ": ("asq", "lsq"),
    "ASQ+POST": ("asq", "post"),
}
EDGE_BITS = 8  # first and last layers, as in the paper


def activation_config(kind: str, bits: int, signed: bool) -> dict:
    # A starting step that spans about [0, 4) (LSQ then learns it, in powers of two).
    config = {"kind": kind, "bits": bits, "signed": signed, "init_step": 4.0 / 2**bits}
    if kind == "asq":
        config["adapter_hidden"] = 4
    return config


def build_model(n_in: int, n_out: int, act_kind: str, weight_kind: str, bits: int) -> keras.Model:
    inputs = keras.Input((n_in,))
    # Digits pixels are multiples of 1/16 in [0, 1]: 4 fractional bits hold them exactly.
    x = HQuantize({"granularity": "per-layer", "init_f": 4, "trainable_f": False})(inputs)
    edge = {"kind": "lsq", "bits": EDGE_BITS}
    x = ASQDense(64, activation="relu", input_quantizer=activation_config("lsq", EDGE_BITS, False),
                 kernel_quantizer=edge, name="first")(x)
    for index, width in enumerate((32, 32)):
        x = ASQDense(width, activation="relu", input_quantizer=activation_config(act_kind, bits, False),
                     kernel_quantizer={"kind": weight_kind, "bits": bits}, name=f"middle{index}")(x)
    outputs = ASQDense(n_out, input_quantizer=activation_config("lsq", EDGE_BITS, False), kernel_quantizer=edge,
                       name="last")(x)
    return keras.Model(inputs, outputs)


def build_float(n_in: int, n_out: int) -> keras.Model:
    inputs = keras.Input((n_in,))
    x = keras.layers.Dense(64, activation="relu")(inputs)
    x = keras.layers.Dense(32, activation="relu")(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(n_out)(x))


def train(model, data, epochs: int, seed: int) -> float:
    keras.utils.set_random_seed(seed)
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, epochs * int(np.ceil(len(data.x_train) / 64)))
    model.compile(keras.optimizers.Adam(schedule), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, batch_size=64, epochs=epochs, verbose=0)
    logits = model.predict(data.x_val, batch_size=1024, verbose=0)  # inference: the exact fixed-point path
    return float(np.mean(np.argmax(logits, axis=1) == data.y_val))


def asq_overhead(model) -> str:
    rows = [layer.adapter_overhead() for layer in model.layers if isinstance(layer, ASQDense) and layer.adaptive]
    if not rows:
        return "-"
    params = np.mean([r["parameter_percent"] for r in rows])
    ops = np.mean([r["operation_percent"] for r in rows])
    return f"+{params:.1f}% params, +{ops:.1f}% ops"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verify", metavar="DIR", help="convert the last ASQ+POST model here and check csim")
    args = parser.parse_args(argv)

    start = time.time()
    data = load_split()
    float_accuracy = train(build_float(data.n_features, data.n_classes), data, args.epochs, args.seed)
    print(f"digits: {len(data.x_train)} train / {len(data.x_val)} validation samples; float baseline accuracy "
          f"{float_accuracy:.4f}\n")
    header = (f"{'method':<10}{'bits':>5}{'accuracy':>10}{'EBOPs':>9}{'middle EBOPs':>14}{'est. LUTs':>11}{'middle LUTs':>13}"
              "  ASQ overhead (middle layers)")
    print(header)
    print("-" * len(header))
    last = None
    for bits in args.bits:
        for name, (act_kind, weight_kind) in ROWS.items():
            model = build_model(data.n_features, data.n_classes, act_kind, weight_kind, bits)
            accuracy = train(model, data, args.epochs, args.seed)
            hgq_chip.calibrate(model, data.x_train)
            middle = sum(model.get_layer(f"middle{i}").ebops_exact() for i in range(2))
            resources = hgq_chip.estimate(model)  # latency strategy, no synthesis
            middle_lut = sum(layer.lut for layer in resources.layers if layer.layer.startswith("middle"))
            print(f"{name:<10}{bits:>5}{accuracy:>10.4f}{hgq_chip.ebops(model):>9}{middle:>14}{resources.lut:>11}"
                  f"{middle_lut:>13}  {asq_overhead(model)}", flush=True)
            last = model
    print(f"\ntotal time {time.time() - start:.0f} s")
    if args.verify and last is not None:
        hgq_chip.convert(last, args.verify, force=True, log=lambda *_: None)
        report = hgq_chip.verify(last, args.verify, data.x_val, log=lambda *_: None)
        print(f"ASQ+POST firmware vs Keras on the validation set: {report.describe()}")
        if not report.ok:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
