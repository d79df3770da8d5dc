"""Small ASQ/POST models for the tests: three branches (POST, ASQ, ASQ+POST), dense or convolutional.

One Keras model holds every branch, so one hls4ml project and one g++ compilation check
all three; adapters get random nonzero weights so β really changes from sample to sample.
"""

from __future__ import annotations

import keras
import numpy as np

from hgq_chip.layers import ASQConv1D, ASQConv2D, ASQDense, HQuantize

BRANCHES = {
    "post": ({"kind": "lsq", "bits": 4, "signed": True}, {"kind": "post", "bits": 4}),
    "asq": ({"kind": "asq", "bits": 4, "signed": True}, {"kind": "lsq", "bits": 4}),
    "asq_post": ({"kind": "asq", "bits": 3, "signed": True, "adapter_hidden": 3}, {"kind": "post", "bits": 3}),
}


def randomize_adapters(model, rng, scale=0.3) -> None:
    for layer in model.layers:
        iq = getattr(layer, "iq", None)
        for name in ("a1", "d1", "a2"):
            if hasattr(iq, name):
                var = getattr(iq, name)
                var.assign(rng.normal(0.0, scale, var.shape))


def branch(x, name: str, input_quantizer: dict, kernel_quantizer: dict, hidden: int = 12, outputs: int = 5):
    second_input = dict(input_quantizer, signed=False)  # after a relu
    x = ASQDense(hidden, activation="relu", input_quantizer=input_quantizer, kernel_quantizer=kernel_quantizer,
                 name=f"{name}_d0")(x)
    return ASQDense(outputs, input_quantizer=second_input, kernel_quantizer=kernel_quantizer, name=f"{name}_d1")(x)


def three_branch_model(n_in: int = 16, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inp = keras.Input((n_in,), name="x")
    x = HQuantize({"granularity": "per-layer", "init_f": 4}, name="q")(inp)
    outputs = [branch(x, name, iq, kq) for name, (iq, kq) in BRANCHES.items()]
    model = keras.Model(inp, outputs)
    randomize_adapters(model, np.random.default_rng(seed))
    return model


def calibration_inputs(n: int = 256, n_in: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Per-sample scale differences: the case ASQ adapts to.
    return (rng.normal(0.0, 1.0, (n, n_in)) * rng.uniform(0.3, 2.0, (n, 1))).astype(np.float32)


def conv_model(seed: int = 0) -> keras.Model:
    """Conv2D (strided) and Conv1D branches for every BRANCHES quantizer pair, each followed by a
    second ASQ/POST conv on the relu output, flattened into one output per branch."""
    keras.utils.set_random_seed(seed)
    image = keras.Input((7, 6, 2), name="image")
    series = keras.Input((9, 3), name="series")
    q_image = HQuantize({"granularity": "per-layer", "init_f": 4}, name="q_image")(image)
    q_series = HQuantize({"granularity": "per-layer", "init_f": 4}, name="q_series")(series)
    outputs = []
    for name, (iq, kq) in BRANCHES.items():
        second = dict(iq, signed=False)  # after a relu
        x = ASQConv2D(4, (3, 2), strides=(2, 1), activation="relu", input_quantizer=iq, kernel_quantizer=kq,
                      name=f"{name}_c2d")(q_image)
        x = ASQConv2D(2, 2, input_quantizer=second, kernel_quantizer=kq, name=f"{name}_c2d_b")(x)
        outputs.append(keras.layers.Flatten(name=f"{name}_flat2d")(x))
        y = ASQConv1D(3, 3, strides=2, activation="relu", input_quantizer=iq, kernel_quantizer=kq, name=f"{name}_c1d")(q_series)
        outputs.append(keras.layers.Flatten(name=f"{name}_flat1d")(y))
    model = keras.Model([image, series], outputs)
    randomize_adapters(model, np.random.default_rng(seed))
    return model


def conv_calibration_inputs(n: int = 256, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.normal(0.0, 1.0, (n, 7, 6, 2)) * rng.uniform(0.3, 2.0, (n, 1, 1, 1))
    series = rng.normal(0.0, 1.0, (n, 9, 3)) * rng.uniform(0.3, 2.0, (n, 1, 1))
    return [image.astype(np.float32), series.astype(np.float32)]


def asq_dense_reference(layer, x):
    """The fixed-point steps of the firmware, written out in NumPy float64."""
    x = np.asarray(x, np.float64)
    iq = layer.iq
    if layer.adaptive:
        c = iq.adapter_constants()
        s = x.sum(axis=1, keepdims=True)
        if iq.adapter_hidden:
            z = np.maximum(s * c["a1"] + c["d1"], 0) @ c["a2"][:, None] + c["d2"]
        else:
            z = s * c["a1"] + c["d1"]
        lo, hi = iq.beta_code_range
        codes_beta = np.clip(np.floor(z * 2**iq.beta_bits + 0.5), lo, hi)
        beta = codes_beta / 2**iq.beta_bits
        r = iq.reciprocal_table()[(codes_beta - lo).astype(int)]
    else:
        beta = r = 1.0
    m = np.clip(np.floor(x * r * 2.0 ** -iq.exponent() + 0.5), iq.q_n, iq.q_p)
    y = (m @ layer.kernel_units()) * beta * 2.0 ** layer.output_exponent() + layer.quantized_bias()
    return np.maximum(y, 0) if layer.activation.__name__ == "relu" else y
