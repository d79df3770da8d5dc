"""The resource estimate: signed digits, monotonicity, speed, storage in a project, CLI JSON."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hgq_chip
from hgq_chip.cli import main
from hgq_chip.errors import ProjectError, UnsupportedConfigurationError
from hgq_chip.estimation import estimate
from hgq_chip.estimation.arithmetic import csd_digits
from hgq_chip.conversion.facts import FACTS_FILE, facts_from_model, read_facts, write_facts
from hgq_chip.conversion.ops import CMVM
from hgq_chip.estimation.ops import cmvm_latency_cost
from hgq_chip.layers import HConv1D, HDense, HQuantize


def naf_weight(n: int) -> int:
    """Nonzero digits of the non-adjacent form, digit by digit (the textbook algorithm)."""
    n, count = abs(n), 0
    while n:
        if n & 1:
            digit = 2 - (n & 3)  # +1 or -1
            n -= digit
            count += 1
        n >>= 1
    return count


def test_csd_digits_match_the_non_adjacent_form():
    n = np.arange(-600, 600)
    assert np.array_equal(csd_digits(n.astype(np.float64)), [naf_weight(int(v)) for v in n])
    # Scaling by powers of two changes nothing: zero costs 0 digits, +-2**k exactly one.
    assert np.array_equal(csd_digits(np.array([0.0, 0.25, -8.0, 0.75, 3.0 / 64])), [0, 1, 1, 2, 2])


def _op(kernel, widths, bias=None):
    widths = np.asarray(widths)
    return CMVM(kernel=np.asarray(kernel, np.float64), positions=1,
                rows={"k": np.ones_like(widths), "i": np.ones_like(widths), "f": widths - 2},
                bias=np.zeros(np.shape(kernel)[1]) if bias is None else np.asarray(bias))


def test_power_of_two_and_zero_weights_cost_no_luts():
    # One power-of-two term per column: no adder at all.
    kernel = np.array([[0.5, 0.0], [0.0, -2.0], [0.0, 0.0]])
    assert cmvm_latency_cost(_op(kernel, [6, 6, 6]), 100).lut == 0
    # 0.75 = 1 - 0.25 needs one subtractor.
    assert cmvm_latency_cost(_op(np.array([[0.75], [0.0]]), [6, 6]), 100).lut > 0


kernels = st.integers(1, 6).flatmap(lambda rows: st.integers(1, 4).flatmap(lambda cols: st.tuples(
    st.lists(st.lists(st.integers(-40, 40), min_size=cols, max_size=cols), min_size=rows, max_size=rows),
    st.lists(st.integers(2, 9), min_size=rows, max_size=rows),
)))


@settings(max_examples=150, deadline=None)
@given(kernels, st.data())
def test_more_bits_or_more_nonzero_weights_never_lower_the_estimate(case, data):
    values, widths = case
    kernel = np.asarray(values, np.float64) / 8
    base = cmvm_latency_cost(_op(kernel, widths), 10**6).lut
    row = data.draw(st.integers(0, len(widths) - 1))
    wider = list(widths)
    wider[row] += data.draw(st.integers(1, 4))
    assert cmvm_latency_cost(_op(kernel, wider), 10**6).lut >= base
    zeros = np.argwhere(kernel == 0)
    if len(zeros):
        r, c = zeros[data.draw(st.integers(0, len(zeros) - 1))]
        denser = kernel.copy()
        denser[r, c] = data.draw(st.integers(1, 40)) / 8
        assert cmvm_latency_cost(_op(denser, widths), 10**6).lut >= base


def _mlp(seed=0, n_in=12, hidden=8, f_in=4):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((n_in,))
    x = HQuantize(name="q")(inputs)
    x = HDense(hidden, activation="relu", name="hidden")(x)
    model = keras.Model(inputs, HDense(3, name="out")(x))
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for q in getattr(layer, "quantizers", list)():
            q.f.assign(np.full(q.f.shape, f_in if hasattr(q, "record_range") else 3, "float32"))
        if hasattr(layer, "kernel"):
            layer.kernel.assign(rng.normal(0, 0.5, layer.kernel.shape))
    hgq_chip.calibrate(model, rng.normal(0, 1, (256, n_in)).astype("float32"))
    return model


def test_more_activation_bits_in_a_model_never_lower_the_estimate():
    model = _mlp()
    before = estimate(model)
    q = model.get_layer("hidden").iq
    f = q.f.numpy()
    f[..., 0] += 3
    q.f.assign(f)
    after = estimate(model)
    assert after.layers[1].lut > before.layers[1].lut
    assert after.lut >= before.lut


def test_estimate_of_a_small_model_is_fast_and_complete():
    model = _mlp()
    start = time.perf_counter()
    result = estimate(model, clock_period=4.0)
    assert time.perf_counter() - start < 2.0
    assert [layer.layer for layer in result.layers] == ["q", "hidden", "out"]
    assert result.lut == sum(layer.lut for layer in result.layers) > 0
    assert result.dsp == 0  # 3-bit weights never reach the default DSP threshold
    assert result.cycles >= 2 and result.latency_ns == result.cycles * 4.0
    # A DSP threshold of 1 bit sends every non-trivial product to a DSP and saves LUTs.
    dsp = estimate(model, dsp_min_product_bits=1)
    assert dsp.dsp > 0 and dsp.lut < result.lut


def _derived(model):
    """What the converter stores for the estimate: derived records and input formats."""
    from hgq_chip.conversion.graph import graph_nodes
    from hgq_chip.conversion.inputs import all_input_formats
    from hgq_chip.conversion.precision import derive

    nodes = graph_nodes(model)
    return derive(nodes), all_input_formats(model, nodes)


def test_project_directory_estimate_reads_the_stored_facts(tmp_path):
    model = keras.Model(*_conv_model_io())
    hgq_chip.calibrate(model, np.random.default_rng(0).normal(0, 1, (128, 10, 2)).astype("float32"))
    write_facts(tmp_path / FACTS_FILE, *_derived(model))
    stored = read_facts(tmp_path / FACTS_FILE)
    assert [f.name for f in stored] == [f.name for f in facts_from_model(model)]
    # The distributed-arithmetic estimate needs da4ml (the rtl extra).
    for strategy in ("latency", "distributed_arithmetic") if importlib.util.find_spec("da4ml") else ("latency",):
        assert estimate(tmp_path, strategy=strategy).to_dict() == estimate(model, strategy=strategy).to_dict()


def test_a_version_1_file_from_before_the_typed_operations_gives_the_same_estimate(tmp_path):
    """Projects converted before the typed operations (estimate_inputs.json version 1: CMVM flags
    own_template/latency_template, no reads_previous unless False) still estimate the same."""
    import json

    from hgq_chip.layers import HDepthwiseConv1D

    keras.utils.set_random_seed(1)
    inputs = keras.Input((10, 2))
    x = HDepthwiseConv1D(2, name="dw")(HQuantize(name="q")(inputs))
    model = keras.Model(inputs, HDense(2, name="out")(keras.layers.Flatten(name="flat")(x)))
    hgq_chip.calibrate(model, np.random.default_rng(0).normal(0, 1, (128, 10, 2)).astype("float32"))
    write_facts(tmp_path / FACTS_FILE, *_derived(model))
    payload = json.loads((tmp_path / FACTS_FILE).read_text())
    flagged = 0
    for layer in payload["layers"]:
        for op in layer["ops"]:
            if op.pop("reads_previous"):
                pass  # version 1 wrote the key only where it was False
            if op["op"] == "cmvm" and op.pop("latency_only"):
                op["latency_template"] = True
                flagged += 1
    assert flagged == 1  # the depthwise layer (hls4ml's latency-only DepthwiseConv)
    old = tmp_path / "old"
    old.mkdir()
    (old / FACTS_FILE).write_text(json.dumps({**payload, "version": 1}))
    for strategy in ("latency", "distributed_arithmetic") if importlib.util.find_spec("da4ml") else ("latency",):
        assert estimate(old, strategy=strategy).to_dict() == estimate(tmp_path, strategy=strategy).to_dict()


def test_estimate_command_on_a_project_never_imports_keras(tmp_path):
    # Importing Keras/TensorFlow alone takes seconds; `hgq_chip estimate DIR` must not pay for it.
    model = _mlp()
    write_facts(tmp_path / FACTS_FILE, *_derived(model))
    script = (
        "import sys\n"
        "from hgq_chip.cli import main\n"
        f"code = main(['estimate', {str(tmp_path)!r}, '--json'])\n"
        f"code = code or main(['estimate', {str(tmp_path)!r}, '--json', '--stages', '2'])\n"
        "heavy = sorted({'keras', 'tensorflow', 'hls4ml'} & set(sys.modules))\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
        "sys.exit(code or (3 if heavy else 0))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    first, second = json.JSONDecoder().raw_decode(run.stdout)[0], run.stdout[run.stdout.index("}\n{") + 2:]
    assert first == estimate(model).to_dict()
    assert json.loads(second)["pipeline"]["ff_source"] == "interpolated"  # no Keras, so no traced register count


def _conv_model_io():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((10, 2))
    x = HQuantize(name="q")(inputs)
    x = HConv1D(3, 3, activation="relu", name="conv")(x)
    x = keras.layers.MaxPooling1D(2, name="pool")(x)
    x = keras.layers.Flatten(name="flat")(x)
    return inputs, HDense(2, name="out")(x)


def test_cli_estimate_json(tmp_path, capsys):
    model = _mlp()
    path = tmp_path / "m.keras"
    model.save(path)
    assert main(["estimate", str(path), "--json", "--clock-period", "2.5"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["strategy"] == "latency" and report["clock_period_ns"] == 2.5
    assert report["total"]["lut"] == sum(layer["lut"] for layer in report["layers"])
    assert report["total"]["latency_ns"] == report["total"]["latency_cycles"] * 2.5
    assert report == estimate(model, clock_period=2.5).to_dict()


def test_cli_estimate_errors(tmp_path, capsys):
    assert main(["estimate", str(tmp_path)]) == ProjectError.exit_code  # no estimate_inputs.json
    assert FACTS_FILE in capsys.readouterr().err
    with pytest.raises(UnsupportedConfigurationError):
        estimate(_mlp(), strategy="resource")


def test_values_nobody_reads_cost_nothing():
    """Synthesis drops logic whose result is unused: a hidden unit whose outgoing weights are
    all pruned costs neither its adder tree nor its relu, nor do inputs no weight reads."""
    model = _mlp()
    full = estimate(model)
    out = model.get_layer("out")
    kernel = out.kernel.numpy()
    kernel[0] = 0.0  # hidden unit 0 feeds nothing
    out.kernel.assign(kernel)
    hidden = model.get_layer("hidden")
    first = hidden.kernel.numpy()
    first[1] = 0.0  # input 1 feeds nothing
    hidden.kernel.assign(first)
    pruned = estimate(model)
    assert pruned.layers[1].lut < full.layers[1].lut
    assert pruned.layers[0].lut <= full.layers[0].lut
    from hgq_chip.estimation.liveness import operation_liveness

    facts = facts_from_model(model)
    live = operation_liveness(facts)
    hidden_ops = [op.kind for op in facts[1].ops]
    assert not live[1][hidden_ops.index("cmvm")][0] and live[1][hidden_ops.index("cmvm")][1:].all()
    assert not live[0][0][1]  # the input quantizer's element 1 is dead
