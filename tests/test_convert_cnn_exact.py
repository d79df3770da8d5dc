"""Bit-exact C simulation of convolutional, residual, BatchNorm-fused and table-activation models."""

import itertools

import keras
import numpy as np
import pytest

from hgq_chip.layers import (
    HActivation,
    HAdd,
    HConv1D,
    HConv1DBatchNorm,
    HConv2D,
    HDense,
    HDenseBatchNorm,
    HQuantize,
)
from exactness import assert_bit_exact, randomize_bits


def quantizers(granularity, rounding, overflow):
    act = {"granularity": granularity, "rounding": rounding, "overflow": overflow}
    weight = {"granularity": granularity, "rounding": rounding}
    return {"input_quantizer": act, "kernel_quantizer": weight, "bias_quantizer": weight}, act


def cnn2d(granularity="per-element", rounding="RND", overflow="WRAP"):
    q, act = quantizers(granularity, rounding, overflow)
    inp = keras.Input((8, 8, 2))
    x = HQuantize(act)(inp)
    x = HConv2D(3, 3, activation="relu", **q)(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = HConv2D(4, (2, 2), padding="same", **q)(x)
    x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inp, HDense(5, **q)(x))


def residual1d(granularity="per-channel", rounding="TRN", overflow="SAT"):
    q, act = quantizers(granularity, rounding, overflow)
    table_q = {"granularity": granularity, "rounding": rounding, "overflow": "SAT"}
    inp = keras.Input((12, 3))
    x = HQuantize(act)(inp)
    x = HConv1D(4, 3, padding="same", activation="relu", **q)(x)
    y = HConv1DBatchNorm(4, 1, **q)(x)
    x = HAdd()([x, y])
    x = HActivation("tanh", input_quantizer=table_q)(x)
    x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.Reshape((24,))(x)
    x = keras.layers.Dropout(0.2)(x)
    x = HDenseBatchNorm(6, activation="relu", **q)(x)
    x = HActivation("sigmoid", input_quantizer=table_q)(x)
    return keras.Model(inp, HDense(3, **q)(x))


def trained_briefly(model, x, seed):
    """A few steps of training so BatchNorm statistics and ranges are not at their initial values."""
    model.compile("adam", "mse")
    y = np.random.default_rng(seed).normal(size=(len(x),) + tuple(model.output.shape[1:])).astype("float32")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    return model


def check(build, shape, tmp_path, seed, backend="Vitis", io_type="io_parallel", **build_args):
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = build(**build_args)
    x = rng.normal(0, 1.5, (256,) + shape).astype("float32")
    trained_briefly(model, x, seed)
    randomize_bits(model, rng)
    assert_bit_exact(model, x, tmp_path / "prj", seed=seed, backend=backend, io_type=io_type)


def test_cnn2d_per_element_vitis(tmp_path):
    check(cnn2d, (8, 8, 2), tmp_path, 0, backend="Vitis")


def test_residual_conv1d_batchnorm_tables_vivado(tmp_path):
    check(residual1d, (12, 3), tmp_path, 1, backend="Vivado")


def test_cnn2d_per_layer_io_stream(tmp_path):
    check(cnn2d, (8, 8, 2), tmp_path, 2, io_type="io_stream", granularity="per-layer", rounding="TRN",
          overflow="SAT")


GRANULARITIES = ["per-element", "per-channel", "per-layer"]
ROUNDINGS = ["RND", "TRN"]
OVERFLOWS = ["WRAP", "SAT"]
BACKENDS = ["Vitis", "Vivado"]

# The 12 granularity x rounding x overflow cells split into two halves, one per model. Each
# half holds every pair of values of any two of granularity, rounding, overflow and backend
# (a pairwise design), and together they hold every cell, at half the compilations of the
# full product per model. (The dense grid in test_convert_mlp_exact runs the full product.)
HALF_A = [
    ("per-element", "RND", "WRAP", "Vitis"),
    ("per-element", "TRN", "SAT", "Vivado"),
    ("per-channel", "RND", "SAT", "Vitis"),
    ("per-channel", "TRN", "WRAP", "Vivado"),
    ("per-layer", "RND", "WRAP", "Vivado"),
    ("per-layer", "TRN", "SAT", "Vitis"),
]
HALF_B = [
    ("per-element", "RND", "SAT", "Vitis"),
    ("per-element", "TRN", "WRAP", "Vivado"),
    ("per-channel", "RND", "WRAP", "Vitis"),
    ("per-channel", "TRN", "SAT", "Vivado"),
    ("per-layer", "RND", "SAT", "Vivado"),
    ("per-layer", "TRN", "WRAP", "Vitis"),
]


def test_the_two_halves_are_pairwise_and_cover_every_cell():
    assert {cell[:3] for cell in HALF_A + HALF_B} == set(itertools.product(GRANULARITIES, ROUNDINGS, OVERFLOWS))
    values = [GRANULARITIES, ROUNDINGS, OVERFLOWS, BACKENDS]
    for half in (HALF_A, HALF_B):
        for i, j in itertools.combinations(range(4), 2):
            assert {(cell[i], cell[j]) for cell in half} == set(itertools.product(values[i], values[j])), (i, j)


@pytest.mark.slow
@pytest.mark.parametrize("granularity,rounding,overflow,backend", HALF_A)
def test_grid_cnn2d(tmp_path, granularity, rounding, overflow, backend):
    check(cnn2d, (8, 8, 2), tmp_path, 3, backend=backend, granularity=granularity, rounding=rounding,
          overflow=overflow)


@pytest.mark.slow
@pytest.mark.parametrize("granularity,rounding,overflow,backend", HALF_B)
def test_grid_residual1d(tmp_path, granularity, rounding, overflow, backend):
    check(residual1d, (12, 3), tmp_path, 4, backend=backend, granularity=granularity, rounding=rounding,
          overflow=overflow)


@pytest.mark.slow
@pytest.mark.parametrize("build,shape", [(cnn2d, (8, 8, 2)), (residual1d, (12, 3))])
def test_io_stream_per_layer(tmp_path, build, shape):
    check(build, shape, tmp_path, 5, io_type="io_stream", granularity="per-layer")
