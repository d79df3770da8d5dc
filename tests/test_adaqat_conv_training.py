"""AdaQAT convolutions train under ``fit`` and their trained firmware is bit-exact.

AConv1D/AConv2D used to raise NotImplementedError on the first training step: their
cost term counted MACs by evaluating a convolution and converting it to NumPy, which a
traced graph cannot do. MACs now come from the shapes alone; the count is checked here
against the convolution of ones it replaced. Then ADense, AConv1D and AConv2D are
trained together under the AdaQATController, calibrated, converted and verified with
``strict=True`` (any differing value raises) on calibration data and on random inputs
drawn over the calibrated range widened 4x: a tiny model with random data in the default
suite, a larger one on sklearn digits under ``-m slow``.
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
from keras import ops

import hgq_chip
from hgq_chip.data import load_split
from hgq_chip.layers import AConv1D, AConv2D, ADense
from hgq_chip.layers.adaqat import taps_in_range
from hgq_chip.model_walk import adaqat_layers
from hgq_chip.training import AdaQATController

N_CLASSES = 10


def _macs_by_convolving_ones(layer) -> int:
    """The count the graph-unsafe code computed: convolve all-ones input and kernel, sum (eager only)."""
    ones_in = ops.ones((1,) + layer.input_feature_shape)
    total = ops.sum(layer.convolution_op(ones_in, ops.ones(layer.kernel.shape)))
    return int(round(float(ops.convert_to_numpy(total))))


@pytest.mark.parametrize("rank", [1, 2])
def test_conv_macs_from_shapes_equal_the_convolution_of_ones(rank):
    cls, shape = (AConv1D, (9, 2)) if rank == 1 else (AConv2D, (7, 6, 2))
    for padding, kernel, stride, dilation in itertools.product(("valid", "same"), (1, 2, 3), (1, 2, 3), (1, 2)):
        if dilation > 1 and stride > 1:
            continue  # Keras refuses strides > 1 together with dilation > 1
        layer = cls(3, kernel, strides=stride, dilation_rate=dilation, padding=padding)
        layer(np.zeros((1,) + shape, np.float32))
        case = f"{cls.__name__} padding={padding} kernel={kernel} stride={stride} dilation={dilation}"
        assert layer.macs() == _macs_by_convolving_ones(layer), case


def test_taps_in_range_counts_same_padding_edges():
    assert taps_in_range(6, 3, 1, 1, "same") == 6 * 3 - 2  # one tap missing at each edge
    assert taps_in_range(6, 3, 1, 1, "valid") == 4 * 3
    assert taps_in_range(2, 5, 1, 1, "valid") == 0  # kernel wider than the input: no output


def _branchy_adaqat_model(image: tuple[int, int], filters: int) -> keras.Model:
    """Image -> AConv2D -> rows as a sequence -> AConv1D -> ADense, plus an ADense on the
    AConv2D features; the two ADense logits are added (every AdaQAT layer class, one input)."""
    height, width = image
    inputs = keras.Input((height, width, 1))
    x = AConv2D(filters, 3, activation="relu", name="conv2d",
                input_quantizer={"init_alpha": 1.0}, kernel_quantizer={"init_bits": 6.0})(inputs)
    features = keras.layers.Flatten()(x)
    x = keras.layers.Reshape((height - 2, (width - 2) * filters))(x)
    x = AConv1D(filters, 3, padding="same", activation="relu", name="conv1d", input_quantizer={"init_alpha": 4.0})(x)
    x = keras.layers.Flatten()(x)
    head = ADense(N_CLASSES, name="dense", input_quantizer={"init_alpha": 4.0})(x)
    side = ADense(N_CLASSES, name="side", input_quantizer={"init_alpha": 4.0})(features)
    return keras.Model(inputs, hgq_chip.layers.HAdd()([head, side]))


def _train_convert_verify(model, x, y, directory, epochs: int, lam: float, jit_compile: bool):
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit_compile)
    start = {layer.name: layer.bit_widths() for layer in adaqat_layers(model)}
    controller = AdaQATController((x, y), lam=lam, lr=1.0, every=2, batch_size=64)
    history = model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=[controller])
    assert np.all(np.isfinite(history.history["loss"]))
    for layer in adaqat_layers(model):  # the controller moved every layer's N (lam > 0)
        assert layer.bit_widths() != start[layer.name], layer.name
    assert {r["layer"] for r in controller.trajectory} == {"conv2d", "conv1d", "dense", "side"}
    # At least one width the firmware uses fell: the project is not the untrained 6/8-bit one.
    assert any(layer.kq.ceil_bits() < np.ceil(start[layer.name]["w"]) or layer.iq.ceil_bits() < np.ceil(start[layer.name]["a"])
               for layer in adaqat_layers(model)), {layer.name: layer.bit_widths() for layer in adaqat_layers(model)}

    hgq_chip.calibrate(model, x)
    hgq_chip.convert(model, directory, log=lambda *_: None)
    quiet = {"strict": True, "log": lambda *_: None}
    in_range = hgq_chip.verify(model, directory, x, **quiet)
    far = hgq_chip.verify(model, directory, random=len(x), scale=4.0, seed=1, **quiet)
    for report in (in_range, far):
        assert report.n_mismatches == 0 and report.n_values == len(x) * N_CLASSES, report.describe()
    # The 4x inputs really leave the calibrated range [0, 1] of the images (saturating there).
    drawn = hgq_chip.api.random_inputs(model, len(x), seed=1, scale=4.0)[0]
    assert drawn.min() < -1.0 and drawn.max() > 2.0
    print({layer.name: (layer.kq.ceil_bits(), layer.iq.ceil_bits()) for layer in adaqat_layers(model)})
    return controller


def test_trained_adaqat_conv_model_is_bit_exact_small(tmp_path):
    keras.utils.set_random_seed(4)
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (128, 6, 6, 1)).astype(np.float32)
    y = (x.reshape(128, -1).sum(axis=1) * 10 / 36).astype(np.int64) % N_CLASSES
    model = _branchy_adaqat_model((6, 6), 2)
    _train_convert_verify(model, x, y, tmp_path / "small", epochs=4, lam=3e-4, jit_compile=False)


@pytest.mark.slow
def test_trained_adaqat_conv_model_on_digits_is_bit_exact(tmp_path):
    keras.utils.set_random_seed(5)
    data = load_split()
    x = data.x_train[:768].reshape(-1, 8, 8, 1)
    y = data.y_train[:768]
    model = _branchy_adaqat_model((8, 8), 4)
    _train_convert_verify(model, x, y, tmp_path / "digits", epochs=4, lam=1e-5, jit_compile=True)
    accuracy = float(np.mean(np.argmax(model.predict(data.x_val.reshape(-1, 8, 8, 1), verbose=0), 1) == data.y_val))
    bits = {layer.name: (layer.kq.ceil_bits(), layer.iq.ceil_bits()) for layer in adaqat_layers(model)}
    print(f"AdaQAT conv model on digits: validation accuracy {accuracy:.3f}, ceil bits (w, a) {bits}")
    assert accuracy > 0.5, accuracy  # it learned the task (chance is 0.1)
