"""ASQ/POST firmware: C simulation equals Keras bit for bit (np.array_equal).

One model with three branches (LSQ+POST, ASQ+LSQ, ASQ+POST with a two-layer adapter) is
converted once and compiled once; inputs cover the calibration set, the calibrated range
and four times beyond it (so input codes saturate and β hits its clamps).
"""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

import hgq_chip
from asq_post_models import calibration_inputs, randomize_adapters, three_branch_model
from exactness import assert_bit_exact
from hgq_chip.errors import UnsupportedConfigurationError
from hgq_chip.layers import ASQDense, HQuantize


def _codes_and_betas(model, x):
    """Per ASQDense layer: its input codes and β (None for LSQ) on x."""
    found = {}
    for layer in model.layers:
        if isinstance(layer, ASQDense):
            inputs = keras.Model(model.input, layer.input)(x)
            codes, beta = layer.iq.codes_exact(ops.cast(inputs, "float64"))
            found[layer.name] = (np.asarray(codes), None if beta is None else np.asarray(beta))
    return found


def test_post_asq_and_asq_post_models_are_bit_exact(tmp_path):
    model = three_branch_model()
    x = calibration_inputs()
    report = assert_bit_exact(model, x, tmp_path / "prj")
    assert report.n_mismatches == 0
    # The comparison is meaningful: β varies per sample and codes reach both clip limits.
    seen = _codes_and_betas(model, x * 4.0)
    assert len(np.unique(seen["asq_d0"][1])) > 3
    assert len(np.unique(seen["asq_post_d0"][1])) > 2
    for name in ("post_d0", "asq_d0", "asq_post_d0"):
        layer = model.get_layer(name)
        codes = seen[name][0]
        assert (codes == layer.iq.q_p).any() and (codes == layer.iq.q_n).any()


HEADER = Path(__file__).resolve().parents[1] / "firmware_templates" / "nnet_asq_post.h"


def _function_body(source: str, signature_marker: str) -> str:
    """The brace-delimited body of the function whose parameter list contains ``signature_marker``."""
    start = source.index("{", source.index(signature_marker))
    depth = 0
    for end in range(start, len(source)):
        depth += {"{": 1, "}": -1}.get(source[end], 0)
        if depth == 0:
            return source[start : end + 1]
    raise AssertionError("unbalanced braces")


def _products(body: str) -> list[str]:
    """Multiplications of data: array indices and anything times a CONFIG_T size are addresses,
    compile-time constants once the loops unroll."""
    code = re.sub(r"//[^\n]*", "", body)
    arithmetic = re.sub(r"\[[^\]]*\]", "[]", code)
    arithmetic = re.sub(r"\*\s*CONFIG_T::\w+", "", arithmetic)
    return re.findall(r"[\w\]\)]\s*\*\s*[\w(]", arithmetic)


def test_post_kernel_has_no_weight_multiplier():
    """POT/POST: one x·c product per input element; the weights act through shifts and adds only."""
    source = HEADER.read_text()
    accumulate = re.sub(r"//[^\n]*", "", _function_body(source, "asq_log_weights)"))
    assert _products(accumulate) == []
    assert ">> shift" in accumulate and "acc[j] -= term" in accumulate and "acc[j] += term" in accumulate
    # The weight array is read only to decode the level (sign, shift, c or not).
    assert re.findall(r"w\[[^\]]*\]", accumulate) == ["w[i * CONFIG_T::n_out + j]"]
    assert "const int code = w[i * CONFIG_T::n_out + j];" in accumulate
    assert "term = xc[i];" in accumulate and "term = m[i];" in accumulate
    shared = _function_body(source, "typename CONFIG_T::xc_t xc[N])")
    assert _products(shared) == ["] * c"] and re.search(r"xc\[i\] = m\[i\] \* c;", shared)
    # Dense and convolution layers compute x·c for every input element once, before any
    # accumulation (a conv's patches then read the shared products).
    for layer in ("asq_post_dense", "asq_post_dense_adaptive", "asq_post_conv", "asq_post_conv_adaptive"):
        body = _function_body(source, f"void {layer}(")
        calls = re.findall(r"(asq_\w+)<", body)
        accumulation = "asq_conv_positions" if "conv" in layer else "asq_accumulate"
        assert calls.count("asq_sqrt_half_products") == 1 and calls.count(accumulation) == 1, (layer, calls)
        assert calls.index("asq_sqrt_half_products") < calls.index(accumulation)
        assert _products(body) == [], (layer, _products(body))
    positions = _function_body(source, "void asq_conv_positions(")
    assert _products(positions) == [] and re.findall(r"(asq_\w+)<", positions).count("asq_accumulate") == 1


def test_generated_post_layer_stores_level_codes_and_uses_the_shift_add_kernel(tmp_path):
    model = three_branch_model()
    hgq_chip.calibrate(model, calibration_inputs())
    conversion = hgq_chip.convert(model, tmp_path / "prj", log=lambda *_: None)
    firmware = conversion.output_dir / "firmware"
    assert (firmware / "nnet_utils" / "nnet_asq_post.h").read_text() == HEADER.read_text()
    assert '#include "nnet_utils/nnet_asq_post.h"' in (firmware / "parameters.h").read_text()
    calls = (firmware / "myproject.cpp").read_text()
    for name in ("post_d0", "asq_post_d0", "asq_post_d1"):
        layer = model.get_layer(name)
        call = re.search(rf"nnet::asq_post_dense\w*<[^>]*, (config\d+)>\([^,]+, [^,]+, (w\d+),[^\n]*// {name}\n", calls)
        assert call, name
        config = re.search(rf"struct {call.group(1)} : nnet::asq_post_config {{(.*?)\n}};", (firmware / "parameters.h").read_text(), re.S)
        assert "typedef nnet::asq_log_weights weight_kind;" in config.group(1)
        assert "sqrt2_levels = true" in config.group(1)
        # The stored weights are exactly the b-bit level codes sigma*(j+1).
        text = (firmware / "weights" / f"{call.group(2)}.h").read_text()
        stored = np.array([int(v) for v in text.split("= {")[1].split("}")[0].split(",")])
        codes = layer.kq.codes(layer.kernel.numpy())
        assert np.array_equal(stored, codes.ravel())
        assert np.abs(codes).max() <= 2 ** (layer.kq.bits - 1) - 1


def test_io_stream_is_refused_with_advice(tmp_path):
    model = three_branch_model()
    hgq_chip.calibrate(model, calibration_inputs())
    with pytest.raises(UnsupportedConfigurationError, match="io_type='io_parallel'"):
        hgq_chip.convert(model, tmp_path / "prj", io_type="io_stream", log=lambda *_: None)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_asq_post_models_are_bit_exact(tmp_path, seed):
    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    n_in = int(rng.integers(3, 20))
    inp = keras.Input((n_in,))
    x = HQuantize({"granularity": "per-element", "init_f": int(rng.integers(2, 6))})(inp)
    for depth in range(int(rng.integers(1, 4))):
        bits_a, bits_w = int(rng.integers(2, 6)), int(rng.integers(2, 6))
        act = {"kind": str(rng.choice(["lsq", "asq"])), "bits": bits_a, "signed": depth == 0,
               "init_step": float(2.0 ** rng.integers(-4, 1))}
        if act["kind"] == "asq":
            act.update(adapter_hidden=int(rng.integers(0, 4)), beta_bits=int(rng.integers(3, 8)),
                       reciprocal_bits=int(rng.integers(4, 12)))
        weights = {"kind": str(rng.choice(["lsq", "pot", "post"])), "bits": bits_w}
        x = ASQDense(int(rng.integers(1, 10)), activation=str(rng.choice(["relu", "linear"])), input_quantizer=act,
                     kernel_quantizer=weights, use_bias=bool(rng.integers(0, 2)))(x)
    model = keras.Model(inp, x)
    randomize_adapters(model, rng)
    data = (rng.normal(0, 1, (256, n_in)) * rng.uniform(0.2, 3.0, (256, 1))).astype(np.float32)
    assert_bit_exact(model, data, tmp_path / "prj", seed=seed)
