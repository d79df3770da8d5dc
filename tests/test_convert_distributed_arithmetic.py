"""The distributed-arithmetic strategy: bit-exact, and pruned weights generate no logic."""

import re

import keras
import numpy as np
import pytest

from hgq_chip.calibration import calibrate
from hgq_chip.conversion import convert, verify
from hgq_chip.errors import UnsupportedConfigurationError
from hgq_chip.layers import HDense, HQuantize

pytest.importorskip("da4ml", reason="the distributed_arithmetic strategy needs da4ml (pip install hgq_chip[rtl])")


def dense_model(kernel):
    inp = keras.Input((kernel.shape[0],))
    layer = HDense(kernel.shape[1], input_quantizer={"overflow": "SAT", "init_f": 3.0},
                   kernel_quantizer={"init_f": 3.0}, use_bias=False)
    model = keras.Model(inp, layer(inp))
    layer.kernel.assign(kernel)
    calibrate(model, np.random.default_rng(0).uniform(-1, 1, (64, kernel.shape[0])).astype("float32"))
    return model


def generated_code(directory) -> str:
    return (directory / "firmware" / "nnet_utils" / "nnet_code_gen.h").read_text()


@pytest.mark.slow
def test_pruned_input_generates_no_logic_and_csim_is_exact(tmp_path):
    # Input 1 meets only zero weights: with every product pruned, the firmware never reads it.
    kernel = np.array([[0.5, 0.0, -0.375], [0.0, 0.0, 0.0], [0.25, 0.625, 0.0], [-1.0, 0.125, 0.75]], "float32")
    model = dense_model(kernel)
    convert(model, tmp_path / "prj", strategy="distributed_arithmetic", log=lambda *_: None)
    code = generated_code(tmp_path / "prj")
    reads = {int(i) for i in re.findall(r"=\s*model_inp\[(\d+)\]", code)}
    assert reads == {0, 2, 3}
    x = np.random.default_rng(1).uniform(-6, 6, (200, 4)).astype("float32")
    report = verify(model, tmp_path / "prj", x, log=lambda *_: None)
    assert report.ok, report.describe()


def test_back_to_back_quantizers_are_refused_with_advice(tmp_path):
    inp = keras.Input((4,))
    model = keras.Model(inp, HDense(2)(HQuantize()(inp)))
    calibrate(model, np.ones((4, 4), "float32"))
    with pytest.raises(UnsupportedConfigurationError, match="remove 'h_quantize"):
        convert(model, tmp_path / "prj", strategy="distributed_arithmetic", log=lambda *_: None)
    assert not (tmp_path / "prj").exists()
