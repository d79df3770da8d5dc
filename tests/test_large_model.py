"""A 10^6-weight model (MLP 784-1024-192-10, per-weight bits, a third of each kernel pruned) converts,
is predicted compilable here, compiles and runs bit-exact (about a minute of g++ and 0.5 GB;
benchmarks/convert_scaling.py measures this model and a 10^6-weight CNN with timings)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import hgq_chip
from hgq_chip.conversion.csim import CSimulation
from hgq_chip.conversion.csim_cost import csim_cost
from hgq_chip.conversion.project import PHASES
from hgq_chip.layers import HDense, HQuantize


def million_weight_mlp() -> keras.Model:
    keras.utils.set_random_seed(0)
    pe = {"granularity": "per-element"}
    quantizers = {"input_quantizer": pe, "kernel_quantizer": pe, "bias_quantizer": pe}
    inputs = keras.Input((784,))
    x = HQuantize(pe)(inputs)
    x = HDense(1024, activation="relu", **quantizers)(x)
    x = HDense(192, activation="relu", **quantizers)(x)
    model = keras.Model(inputs, HDense(10, **quantizers)(x))
    rng = np.random.default_rng(0)
    for layer in model.layers[2:]:
        kernel = rng.normal(0.0, 1.5 / np.sqrt(layer.kernel.shape[0]), layer.kernel.shape)
        kernel[rng.random(kernel.shape) < 0.3] = 0.0
        layer.kernel.assign(kernel)
        layer.bias.assign(rng.normal(0.0, 0.25, layer.bias.shape))
    for layer in model.layers[1:]:
        for q in layer.quantizers():
            q.f.assign(rng.integers(2, 7, size=q.f.shape).astype("float32"))
    hgq_chip.calibrate(model, rng.uniform(0.0, 1.0, (256, 784)).astype("float32"))
    return model


@pytest.mark.slow
def test_million_weight_mlp_converts_compiles_and_is_bit_exact(tmp_path):
    model = million_weight_mlp()
    weights = sum(int(np.prod(w.shape)) for layer in model.layers[2:] for w in (layer.kernel, layer.bias))
    assert weights > 10**6
    conversion = hgq_chip.convert(model, tmp_path / "prj", log=lambda message: None)
    assert set(conversion.phase_seconds) == set(PHASES)
    cost = csim_cost(tmp_path / "prj")
    assert cost.fits and cost.weights == weights, cost.describe()
    x = hgq_chip.random_inputs(model, 40, seed=1)[0]
    csim, = CSimulation(tmp_path / "prj").run([x], [10])
    assert np.array_equal(np.asarray(model.predict(x, verbose=0), np.float64), csim)
    report = hgq_chip.verify(model, tmp_path / "prj", random=20, seed=2, log=lambda message: None)
    assert report.ok and report.n_samples == 20, report.describe()
