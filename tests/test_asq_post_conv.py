"""ASQ/POST convolutions: bit-exact C simulation, x·c once per input element, options, round trips."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest

import hgq_chip
from asq_post_models import conv_calibration_inputs, conv_model
from exactness import assert_bit_exact
from hgq_chip.layers import ASQConv1D, ASQConv2D
from round_trip import assert_layer_round_trip


def test_post_asq_and_asq_post_convolutions_are_bit_exact(tmp_path):
    model = conv_model()
    report = assert_bit_exact(model, conv_calibration_inputs(), tmp_path / "prj")
    assert report.n_mismatches == 0 and report.n_values > 0


def test_conv_firmware_computes_codes_and_products_once_per_input_element(tmp_path):
    model = conv_model()
    hgq_chip.calibrate(model, conv_calibration_inputs())
    conversion = hgq_chip.convert(model, tmp_path / "prj", log=lambda *_: None)
    firmware = conversion.output_dir / "firmware"
    calls = (firmware / "myproject.cpp").read_text()
    parameters = (firmware / "parameters.h").read_text()
    for name in ("post_c2d", "asq_post_c2d", "asq_post_c1d"):
        layer = model.get_layer(name)
        call = re.search(rf"nnet::asq_post_conv\w*<[^>]*, (config\d+)>\([^,]+, [^,]+, (w\d+),[^\n]*// {name}\n", calls)
        assert call, name
        config = re.search(rf"struct {call.group(1)} : nnet::asq_post_config {{(.*?)\n}};", parameters, re.S).group(1)
        sizes = dict(re.findall(r"static const unsigned (\w+) = (\d+);", config))
        kernel = layer.kernel.shape
        assert int(sizes["n_in"]) == int(np.prod(kernel[:-1])) and int(sizes["n_out"]) == kernel[-1]
        n_elements = int(sizes["in_height"]) * int(sizes["in_width"]) * int(sizes["n_chan"])
        assert n_elements == layer.n_input_elements()
        assert "typedef nnet::asq_log_weights weight_kind;" in config and "sqrt2_levels = true" in config
        # Stored weights: the level codes in patch order (taps, then channels; filters last).
        text = (firmware / "weights" / f"{call.group(2)}.h").read_text()
        stored = np.array([int(v) for v in text.split("= {")[1].split("}")[0].split(",")])
        assert np.array_equal(stored, layer.kq.codes(layer.kernel.numpy()).reshape(-1, kernel[-1]).ravel())


@pytest.mark.parametrize("option", [{"padding": "same"}, {"dilation_rate": 2}, {"data_format": "channels_first"}])
def test_unsupported_conv_options_are_refused_with_advice(option):
    with pytest.raises(ValueError, match="no ASQ/POST firmware; use"):
        ASQConv2D(2, 3, **option)
    with pytest.raises(ValueError, match="no ASQ/POST firmware; use"):
        ASQConv1D(2, 3, **option)


@pytest.mark.parametrize("conv, shape", [(ASQConv2D, (7, 6, 2)), (ASQConv1D, (9, 3))])
def test_conv_layers_round_trip_through_save_and_load(tmp_path, conv, shape):
    keras.utils.set_random_seed(5)
    inputs = keras.Input(shape)
    layer = conv(3, 2, strides=2, input_quantizer={"kind": "asq", "bits": 3, "signed": True, "adapter_hidden": 2},
                 kernel_quantizer={"kind": "post", "bits": 3})
    model = keras.Model(inputs, layer(inputs))
    x = np.random.default_rng(5).normal(0, 1, (16, *shape)).astype(np.float32)
    assert_layer_round_trip(model, layer, x, tmp_path / "conv.keras")


def test_asq_conv_trains_and_keeps_one_beta_per_sample():
    keras.utils.set_random_seed(4)
    inputs = keras.Input((6, 6, 2))
    layer = ASQConv2D(3, 3, input_quantizer={"kind": "asq", "bits": 4, "signed": True}, kernel_quantizer={"kind": "post"})
    model = keras.Model(inputs, layer(inputs))
    model.compile(keras.optimizers.Adam(0.01), "mse")
    x = np.random.default_rng(4).normal(0, 1, (32, 6, 6, 2)).astype(np.float32)
    before = layer.iq.step.numpy().copy()
    model.fit(x, np.zeros((32, 4, 4, 3), np.float32), epochs=2, batch_size=8, verbose=0)
    assert not np.array_equal(before, layer.iq.step.numpy())
    _, beta = layer.iq.codes_exact(keras.ops.cast(x, "float64"))
    assert tuple(beta.shape) == (32, 1, 1, 1)
