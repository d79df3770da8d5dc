"""AdaQAT quantizers, layers and controller: exact grids, the finite-difference gradient on a
loss known in closed form, oscillation freezing, BitOPs, save/load, cloning and the plot."""

from __future__ import annotations

import csv

import keras
import numpy as np
import pytest

from hgq_chip import cost
from hgq_chip.layers.adaqat import AConv1D, ADense
from hgq_chip.layers.adaqat_clone import adaqat_from_model
from hgq_chip.training.adaqat import AdaQATController, history_key, oscillating, total_bitops
from hgq_chip.training.adaqat_plot import load_trajectories, plot_bitwidth_trajectories

pytestmark = pytest.mark.keras_level  # also run under JAX in CI (docs/backends.md, "Backends in CI")

MSE = keras.losses.MeanSquaredError()


def _single_weight_model(bits_a=5.0, bits_w=6.0, weight=0.5):
    """y = q_a(x) * q_w(weight): one multiplication, input unsigned with alpha = 1."""
    inp = keras.Input((1,))
    layer = ADense(1, use_bias=False, input_quantizer={"init_bits": bits_a, "init_alpha": 1.0},
                   kernel_quantizer={"init_bits": bits_w}, name="only")
    model = keras.Model(inp, layer(inp))
    layer.kernel.assign([[weight]])
    model.compile(loss=MSE)
    return model, layer


def _grid_inputs():
    return (np.arange(256, dtype=np.float32) / 256.0)[:, None]


def _reference_mse(x, bits, weight=0.5):
    """MSE of weight*pact(x) against weight*x, PACT on [0, 1) with `bits` bits (independent formula)."""
    step = 2.0**-bits
    q = np.minimum(np.floor(x / step + 0.5) * step, 1.0 - step)
    return float(np.mean((weight * q - weight * x) ** 2))


def test_quantizers_forward_equals_numpy_reference_exactly():
    rng = np.random.default_rng(0)
    for signed, bits, alpha in ((False, 3.2, 2.0), (True, 6.0, 0.5), (False, 1.0, 8.0)):
        inp = keras.Input((7,))
        layer = ADense(4, input_quantizer={"init_bits": bits, "init_alpha": alpha, "signed": signed},
                       kernel_quantizer={"init_bits": 3.7})
        keras.Model(inp, layer(inp))
        x = rng.normal(0, 2 * alpha, (300, 7)).astype(np.float32)
        x[:10] = np.round(x[:10] * 64) / 64 + 1 / 128  # ties of the rounding
        assert np.array_equal(np.asarray(layer.iq(x)), layer.iq.quantize_np(x))
        layer.kernel.assign(rng.normal(0, 0.3, layer.kernel.shape))
        assert np.array_equal(np.asarray(layer.kq(layer.kernel)), layer.kq.quantized(layer.kernel.numpy()))
        fmt = layer.iq.fixed_format()
        assert int(fmt.width.max()) == int(np.ceil(bits)) and int(fmt.k.max()) == int(signed)
        codes = np.unique(layer.kq.quantized(layer.kernel.numpy()) * 2.0 ** layer.kq.fractional_bits(layer.kernel.numpy()))
        assert np.abs(codes).max() <= 2.0**3 - 1  # 4 bits, symmetric


def test_power_of_two_weight_is_on_the_grid():
    model, layer = _single_weight_model(weight=0.5, bits_w=2.0)
    assert layer.kq.quantized(np.array([[0.5]]))[0, 0] == 0.5


def test_finite_difference_equals_closed_form_loss_difference():
    model, layer = _single_weight_model(bits_a=5.0, bits_w=6.0)
    x = _grid_inputs()
    y = 0.5 * x
    controller = AdaQATController(lam=0.0)
    controller.set_model(model)
    base = controller.task_loss(x, y)
    assert base == pytest.approx(_reference_mse(x, 5), rel=1e-5)
    g_a = controller.finite_difference(layer.iq, x, y, base)
    assert g_a == pytest.approx(_reference_mse(x, 5) - _reference_mse(x, 4), rel=1e-4)
    assert g_a < 0  # one bit fewer hurts
    # 0.5 stays exact with 5 weight bits: lowering N_w changes nothing.
    assert controller.finite_difference(layer.kq, x, y, base) == 0.0
    assert layer.iq.ceil_bits() == 5 and layer.kq.ceil_bits() == 6  # restored


def test_update_adds_bitops_derivative_using_real_n():
    model, layer = _single_weight_model(bits_a=2.6, bits_w=5.3)
    x = _grid_inputs()
    y = 0.5 * x
    lam, lr = 1e-3, 2.0
    controller = AdaQATController(lam=lam, lr=lr)
    controller.set_model(model)
    g_a = _reference_mse(x, 3) - _reference_mse(x, 2)
    assert abs(lr * g_a) > 1e-3  # the task term is well above the tolerance below
    controller.update(x, y)
    assert layer.macs() == 1
    # dBitOPs/dN_a = MACs * N_w and dBitOPs/dN_w = MACs * N_a, with the real-valued N.
    assert float(layer.iq.bits.numpy()) == pytest.approx(2.6 - lr * (g_a + lam * 5.3), abs=1e-5)
    assert float(layer.kq.bits.numpy()) == pytest.approx(5.3 - lr * lam * 2.6, abs=1e-5)
    rows = controller.trajectory
    assert [(r["layer"], r["kind"]) for r in rows] == [("only", "w"), ("only", "a")]


def test_bits_stay_within_bounds():
    model, layer = _single_weight_model(bits_a=1.5, bits_w=2.5)
    controller = AdaQATController(lam=10.0, lr=10.0)
    controller.set_model(model)
    controller.update(_grid_inputs(), 0.5 * _grid_inputs())
    assert layer.iq.ceil_bits() == 1 and layer.kq.ceil_bits() == 2


class _SyntheticLossController(AdaQATController):
    """Task loss is a function of ⌈N_a⌉ only, with its minimum at 4 bits: the downward
    difference says "lower" at 5 bits and "higher" at 4 bits, so ⌈N_a⌉ flips 5 <-> 4."""

    LOSS = {3: 1.0, 4: 0.2, 5: 0.5, 6: 0.6}

    def task_loss(self, x, y):
        return self.LOSS[self.model.get_layer("only").iq.ceil_bits()]


def test_oscillation_freezes_at_the_larger_bit_width():
    model, layer = _single_weight_model(bits_a=4.5, bits_w=6.0)
    controller = _SyntheticLossController(lam=0.0, lr=1.0, window=8, min_flips=3)
    controller.set_model(model)
    x = _grid_inputs()
    seen = []
    for _ in range(30):
        controller.update(x, x)
        seen.append(layer.iq.ceil_bits())
    assert {4, 5} <= set(seen)  # it did flip
    assert layer.iq.is_frozen and float(layer.iq.bits.numpy()) == 5.0
    assert seen[-1] == 5 and seen[-5:] == [5] * 5
    assert not layer.kq.is_frozen and layer.kq.ceil_bits() == 6  # loss ignores N_w, lam = 0
    assert controller.frozen() == {"only": {"w": False, "a": True}}


def test_oscillating_needs_two_neighbours_and_enough_flips():
    assert oscillating([5, 4, 5, 4], window=4, min_flips=3)
    assert not oscillating([8, 8, 7, 7, 6, 6], window=6, min_flips=3)  # monotone descent
    assert not oscillating([6, 4, 6, 4], window=4, min_flips=3)  # not neighbours
    assert not oscillating([5, 5, 4, 4], window=4, min_flips=3)  # one change only


def test_bitops_ebops_and_conv_macs():
    inp = keras.Input((6, 3))
    conv = AConv1D(2, 3, padding="same", input_quantizer={"init_bits": 4.0, "init_alpha": 2.0},
                   kernel_quantizer={"init_bits": 3.0})
    model = keras.Model(inp, conv(inp))
    # 'same' padding: the two edge outputs use 2 of 3 taps -> (6*3 - 2) * 3 channels * 2 filters.
    assert conv.macs() == 16 * 3 * 2
    assert conv.bitops() == conv.macs() * 3 * 4 == total_bitops(model)
    assert 0 < cost.ebops(model) <= conv.bitops()
    assert float(conv.ebops_surrogate()) == conv.bitops()


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_save_load_round_trip_keeps_bits_and_outputs(tmp_path):
    model, layer = _single_weight_model(bits_a=3.4, bits_w=4.2, weight=0.3)
    layer.iq.frozen.assign(1.0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    other = loaded.get_layer("only")
    assert other.bit_widths() == pytest.approx(layer.bit_widths()) and other.iq.is_frozen
    x = _grid_inputs()
    assert np.array_equal(np.asarray(loaded(x)), np.asarray(model(x)))


def test_from_float_model_sets_signed_alpha_and_copies_weights():
    keras.utils.set_random_seed(0)
    inp = keras.Input((5,))
    hidden = keras.layers.Dense(8, activation="relu")(inp)
    float_model = keras.Model(inp, keras.layers.Dense(3)(hidden))
    x = np.random.default_rng(0).normal(0, 1.5, (200, 5)).astype(np.float32)
    model = adaqat_from_model(float_model, x, bits_w=8, bits_a=8)
    first, second = [l for l in model.layers if isinstance(l, ADense)]
    assert first.iq.signed and not second.iq.signed
    assert 2.0 ** first.iq.alpha_exponent() >= np.abs(x).max() > 2.0 ** (first.iq.alpha_exponent() - 1)
    assert np.array_equal(first.kernel.numpy(), float_model.layers[1].kernel.numpy())
    error = np.abs(np.asarray(model(x)) - np.asarray(float_model(x))).max()
    assert error < 0.1  # 8 bits everywhere: close to the float model


def test_controller_as_callback_logs_history_csv_and_plots(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (256, 4)).astype(np.float32)
    y = (x.sum(axis=1) > 2).astype(np.int64)
    inp = keras.Input((4,))
    h = ADense(8, activation="relu", name="a1")(inp)
    model = keras.Model(inp, ADense(2, input_quantizer={"init_alpha": 4.0}, name="a2")(h))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    csv_path = tmp_path / "bits.csv"
    controller = AdaQATController((x, y), lam=1e-3, lr=1.0, every=2, batch_size=64, csv_path=str(csv_path))
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[controller])
    assert controller.updates == 8 and len(controller.trajectory) == 8 * 4
    assert history.history[history_key("a1", "w")][-1] == model.get_layer("a1").kq.ceil_bits()
    assert history.history["bitops"][-1] == total_bitops(model) < (4 * 8 + 8 * 2) * 8 * 8  # lam > 0: below 8 bits
    with open(csv_path) as handle:
        assert len(list(csv.DictReader(handle))) == 32
    series, axis = load_trajectories(str(csv_path))
    assert axis == "training step" and sorted(series) == ["a1/a", "a1/w", "a2/a", "a2/w"]
    assert load_trajectories(history)[0].keys() == series.keys()
    for source, name in ((history, "h.png"), (str(csv_path), "c.png"), (controller, "t.png")):
        out = plot_bitwidth_trajectories(source, tmp_path / name)
        assert (tmp_path / name).stat().st_size > 1000 and out == tmp_path / name


def test_from_hgq_model_keeps_named_layers_for_a_mixed_model():
    from hgq_chip.layers import HDense, HQuantize

    keras.utils.set_random_seed(0)
    inp = keras.Input((4,))
    x = HQuantize(name="q")(inp)
    x = HDense(6, activation="relu", name="h1")(x)
    hgq_model = keras.Model(inp, HDense(2, name="h2")(x))
    data = np.random.default_rng(1).uniform(-1, 1, (64, 4)).astype(np.float32)
    hgq_model(data, training=True)  # record ranges
    model = adaqat_from_model(hgq_model, data, bits_w=6, bits_a=5, keep=("h2",))
    assert type(model.get_layer("h1")) is ADense and type(model.get_layer("h2")) is HDense
    assert model.get_layer("h1").bit_widths() == {"w": 6.0, "a": 5.0}
    assert np.array_equal(model.get_layer("h1").kernel.numpy(), hgq_model.get_layer("h1").kernel.numpy())
    for old, new in zip(hgq_model.get_layer("h2").weights, model.get_layer("h2").weights):
        assert np.array_equal(old.numpy(), new.numpy())
    assert cost.ebops(model) == model.get_layer("h1").ebops_exact() + model.get_layer("h2").ebops_exact()
