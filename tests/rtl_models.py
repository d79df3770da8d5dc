"""Tiny calibrated models for the RTL output tests (`hgq_chip rtl` / `verify` on RTL projects)."""

from __future__ import annotations

import keras
import numpy as np

import hgq_chip
from hgq_chip.layers import HActivation, HDense, HQuantize


def calibrated(model, seed: int = 0, act_f=(1, 5), weight_f=(0, 4), calibrate: bool = True):
    """Random fractional bits per quantizer element, then calibration on normal samples."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for q in getattr(layer, "quantizers", list)():
            lo, hi = act_f if hasattr(q, "record_range") else weight_f
            q.f.assign(rng.integers(lo, hi + 1, size=q.f.shape).astype("float32"))
    if calibrate:
        shapes = [tuple(int(d) for d in t.shape[1:]) for t in model.inputs]
        data = [rng.normal(0, 1, (256, *s)).astype("float32") for s in shapes]
        hgq_chip.calibrate(model, data if len(data) > 1 else data[0])
    return model


def tiny_dense(calibrate: bool = True, seed: int = 0) -> keras.Model:
    """3 inputs -> HDense(3, relu) -> HDense(2): a handful of adders, 3-5 adder levels deep."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3,))
    x = HDense(3, activation="relu")(HQuantize()(inputs))
    return calibrated(keras.Model(inputs, HDense(2)(x)), seed, calibrate=calibrate)


def table_and_add(seed: int = 3) -> keras.Model:
    """Two branches of HDense, one through a tanh table, merged by Add (tables and merges)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    x = HQuantize()(inputs)
    a = HDense(4, activation="relu")(x)
    b = HActivation("tanh", input_quantizer={"granularity": "per-layer"},
                    output_quantizer={"granularity": "per-layer"})(HDense(4)(x))
    y = keras.layers.Add()([a, b])
    return calibrated(keras.Model(inputs, HDense(3)(y)), seed, act_f=(2, 4))


def small_cnn(seed: int = 2) -> keras.Model:
    """(6, 6, 2) -> HConv2D(3, 3x3, 'same', relu) -> MaxPooling2D(2) -> Flatten -> HDense(3)."""
    from hgq_chip.layers import HConv2D

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 6, 2))
    x = HConv2D(3, 3, padding="same", activation="relu")(HQuantize()(inputs))
    x = keras.layers.Flatten()(keras.layers.MaxPooling2D(2)(x))
    return calibrated(keras.Model(inputs, HDense(3)(x)), seed, act_f=(2, 4))


def two_in_two_out(seed: int = 5) -> keras.Model:
    """Inputs (3,) and (2, 2) -> two HDense branches, added; a second output from the first branch."""
    keras.utils.set_random_seed(seed)
    a_in, b_in = keras.Input((3,), name="a_in"), keras.Input((2, 2), name="b_in")
    a = HDense(2, activation="relu")(HQuantize()(a_in))
    b = HDense(2)(keras.layers.Flatten()(HQuantize()(b_in)))
    y = keras.layers.Add(name="sum_out")([a, b])
    return calibrated(keras.Model([a_in, b_in], [y, HDense(1, name="side_out")(a)]), seed)
