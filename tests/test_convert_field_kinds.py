"""Field kinds that used to convert into wrong firmware, now bit-exact (issue "Exact or refused").

- max pooling with padding='same' that really pads: hls4ml pads with the type's top bit set,
  a large positive value for an unsigned type; the converter casts the input signed first.
  Average pooling that pads divides each window by its count of valid elements (Keras and
  hls4ml alike): exact where those counts are powers of two (refused otherwise).
- io_stream quantizers and activations right after a Flatten/Reshape: they read the
  flattened stream through a Repack (Dense layers get their cast moved ahead). A stream
  max pool that pads an unsigned map reads it through a ZeroPadding layer.

Each test builds one multi-branch model (one g++ compile) and compares the C simulation
with Keras on calibration data, uniform in-range data and 4x out-of-range data.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import hgq_chip
from hgq_chip.layers import HActivation, HAdd, HConv1D, HConv2D, HDense, HQuantize
from exactness import assert_bit_exact, randomize_bits


def _q(granularity="per-layer", overflow="WRAP", rounding="RND"):
    act = {"granularity": granularity, "overflow": overflow, "rounding": rounding}
    weight = {"granularity": granularity, "rounding": rounding}
    return {"input_quantizer": act, "kernel_quantizer": weight, "bias_quantizer": weight}, act


def padded_pooling(granularity="per-layer", overflow="WRAP"):
    """Pools whose windows reach into padding, on unsigned (relu) and signed inputs, 1D and 2D."""
    q, act = _q(granularity, overflow)
    table_q = {**act, "overflow": "SAT"}
    image, series = keras.Input((7, 7, 1)), keras.Input((9, 2))
    x = HQuantize(act)(image)
    unsigned2d = HConv2D(2, 3, activation="relu", **q)(x)                       # 5x5, unsigned
    signed2d = HConv2D(2, 3, **q)(x)                                             # 5x5, signed
    outs = [
        keras.layers.MaxPooling2D(2, padding="same")(unsigned2d),
        keras.layers.MaxPooling2D(2, padding="same")(signed2d),
        keras.layers.MaxPooling2D(3, strides=2, padding="same")(HActivation("relu", input_quantizer=act)(signed2d)),
        keras.layers.MaxPooling2D((2, 3), strides=(3, 2), padding="same")(
            HActivation("sigmoid", input_quantizer=table_q)(signed2d)),             # table output, unsigned
        keras.layers.AveragePooling2D(2, padding="same")(unsigned2d),                # windows of 4, 2, 1
        keras.layers.AveragePooling2D(2, strides=1, padding="same")(signed2d),
        HConv2D(2, 3, strides=2, padding="same", **q)(x),                          # conv padding 1/1
        HConv2D(2, 2, strides=2, padding="same", **q)(x),                          # conv padding 0/1
        keras.layers.SpatialDropout2D(0.2)(unsigned2d),
        HDense(2, **q)(signed2d),                                                   # a Dense per position
        keras.layers.AveragePooling2D(pool_size=1, strides=2)(signed2d),            # pool != stride
        keras.layers.MaxPooling2D(3, strides=1)(unsigned2d),
        keras.layers.Add()([signed2d, unsigned2d, HConv2D(2, 3, **q)(x)]),         # three inputs: a chain
    ]
    y = HQuantize(act)(series)
    outs += [
        keras.layers.MaxPooling1D(2, padding="same")(HConv1D(2, 3, activation="relu", **q)(y)),   # 7 -> 4
        keras.layers.MaxPooling1D(4, strides=3, padding="same")(HConv1D(2, 2, **q)(y)),           # signed
        keras.layers.AveragePooling1D(2, padding="same")(HConv1D(2, 3, **q)(y)),
        HConv1D(2, 4, strides=3, padding="same", **q)(y),
    ]
    return keras.Model([image, series], [keras.layers.Flatten()(o) for o in outs])


def flatten_then_elementwise(granularity="per-layer", overflow="WRAP"):
    """Quantizers and activations reading a flattened stream, and a Dense after each."""
    q, act = _q(granularity, overflow)
    table_q = {**act, "overflow": "SAT"}
    inp, series = keras.Input((4, 4, 2)), keras.Input((9, 2))
    x = HQuantize(act)(inp)
    conv = lambda: HConv2D(3, 3, **q)(x)  # noqa: E731  (2x2x3: words of 3 values)
    x2 = HQuantize(act)(inp)  # a second copy: hls4ml's io_stream feeds one stream to at most 7 layers
    strided = HConv2D(2, (3, 2), strides=(2, 1), padding="same", **q)(x2)  # 2x4x2
    flat = keras.layers.Flatten
    outs = [
        HDense(3, **q)(HQuantize(act)(flat()(conv()))),
        HActivation("relu", input_quantizer=act)(flat()(conv())),
        HActivation("tanh", input_quantizer=table_q)(keras.layers.Reshape((12,))(conv())),
        HDense(2, **q)(HActivation("linear", input_quantizer=act)(flat()(strided))),
        HActivation("relu", input_quantizer=act)(keras.layers.Dropout(0.3)(flat()(conv()))),
        HDense(2, **q)(keras.layers.Dropout(0.3)(flat()(keras.layers.MaxPooling2D(2, padding="same")(x2)))),
        # a row kernel (height 1) and a row pooling in the stream, then a Dense
        HDense(2, **q)(flat()(keras.layers.MaxPooling2D((1, 2))(HConv2D(2, (1, 3), padding="same", **q)(x2)))),
        # 'valid' pooling leaving a border column and row unread (3x3 map, pool 2)
        HDense(2, **q)(flat()(keras.layers.AveragePooling2D(2)(HConv2D(2, 2, **q)(x2)))),
        HQuantize(act)(flat()(conv())),  # a model output read through the repack
        HDense(2, **q)(flat()(HQuantize(act)(conv()))),  # the Dense's cast cannot move past a quantizer
        HActivation("relu", input_quantizer=act)(keras.layers.Reshape((2, 6))(HConv2D(3, 3, **q)(x2))),  # repacked
    ]
    # a max pool that pads, on an unsigned map: zero-padded ahead of the stream pooling
    outs.append(HDense(2, **q)(flat()(keras.layers.MaxPooling2D(2, padding="same")(
        HConv2D(2, 2, activation="relu", **q)(x2)))))                              # 3x3 -> 2x2
    shared_flat = flat()(HConv2D(3, 3, **q)(x2))  # one flattened stream read by two layers
    outs += [HDense(2, **q)(shared_flat), HActivation("relu", input_quantizer=act)(shared_flat)]
    ys = keras.layers.SpatialDropout1D(0.2)(HQuantize(act)(series))
    y = keras.layers.MaxPooling1D(2)(HConv1D(2, 3, strides=2, padding="same", **q)(ys))    # 9 -> 5 -> 2
    outs.append(HAdd()([HConv1D(2, 3, **q)(ys) for _ in range(4)]))  # four inputs: a chain of three adds
    outs.append(keras.layers.MaxPooling1D(2, padding="same")(HConv1D(2, 3, activation="relu", **q)(ys)))  # 7 -> 4
    outs.append(HActivation("relu", input_quantizer=act)(flat()(y)))
    outs.append(HDense(2, **q)(y))  # a Dense per position of a 1D map
    return keras.Model([inp, series], outs)


def check_exact(build, shapes, tmp_path, seed, **convert_options):
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = build()
    x = [rng.normal(0, 2, (128,) + s).astype("float32") for s in shapes]
    randomize_bits(model, rng, act_f=(1, 4), weight_f=(1, 4))
    x = x if len(x) > 1 else x[0]
    assert_bit_exact(model, x, tmp_path / "prj", seed=seed, **convert_options)
    report = hgq_chip.verify(model, tmp_path / "prj", random=200, scale=4.0, seed=seed, strict=True,
                             log=lambda *_: None)
    assert report.ok


def test_pooling_that_pads_is_exact_signed_and_unsigned(tmp_path):
    check_exact(padded_pooling, [(7, 7, 1), (9, 2)], tmp_path, 0)


def test_io_stream_quantizer_or_activation_after_flatten_is_exact(tmp_path):
    check_exact(flatten_then_elementwise, [(4, 4, 2), (9, 2)], tmp_path, 1, io_type="io_stream")


@pytest.mark.slow
@pytest.mark.parametrize("granularity, overflow, backend", [
    ("per-element", "SAT", "Vivado"),
    ("per-channel", "WRAP", "Vitis"),
])
def test_pooling_that_pads_is_exact_grid(tmp_path, granularity, overflow, backend):
    check_exact(lambda: padded_pooling(granularity, overflow), [(7, 7, 1), (9, 2)], tmp_path, 2,
                backend=backend)


@pytest.mark.slow
def test_io_stream_after_flatten_is_exact_saturating_vivado(tmp_path):
    check_exact(lambda: flatten_then_elementwise("per-layer", "SAT"), [(4, 4, 2), (9, 2)], tmp_path, 3,
                io_type="io_stream", backend="Vivado")
