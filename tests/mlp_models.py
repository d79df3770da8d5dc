"""HDense MLPs for the conversion tests: fixed grids and seeded random architectures.

Several independent MLPs can share one Keras model (one input and one output each), so
one hls4ml project and one g++ compilation check many configurations at once; the C
simulation runs every branch on its own input exactly as a separate model would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np

from hgq_chip.layers import HDense, HQuantize

GRANULARITIES = ("per-element", "per-channel", "per-layer")
ROUNDINGS = ("RND", "TRN")
OVERFLOWS = ("WRAP", "SAT")


@dataclass
class MLPSpec:
    """One MLP: input width, layer widths and how every quantizer is set up."""

    n_in: int
    widths: tuple
    granularity: str = "per-element"
    rounding: str = "RND"
    overflow: str = "SAT"
    relu: tuple = ()  # per layer; default: relu on every hidden layer
    use_bias: tuple = ()
    act_f: tuple = (2, 6)  # fractional bits drawn per element in [lo, hi]
    weight_f: tuple = (1, 5)
    input_scale: float = 1.0
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def label(self) -> str:
        return f"{self.granularity}-{self.rounding}-{self.overflow}-{self.n_in}x{'x'.join(map(str, self.widths))}"


def random_spec(rng: np.random.Generator, seed: int) -> MLPSpec:
    depth = int(rng.integers(1, 4))
    widths = tuple(int(w) for w in rng.integers(1, 13, size=depth))
    return MLPSpec(
        n_in=int(rng.integers(1, 11)),
        widths=widths,
        granularity=str(rng.choice(GRANULARITIES)),
        rounding=str(rng.choice(ROUNDINGS)),
        overflow=str(rng.choice(OVERFLOWS)),
        relu=tuple(bool(r) for r in rng.integers(0, 2, size=depth - 1)) + (False,),
        use_bias=tuple(bool(b) for b in rng.integers(0, 2, size=depth)),
        act_f=(int(rng.integers(-1, 3)), int(rng.integers(3, 8))),
        weight_f=(int(rng.integers(-2, 2)), int(rng.integers(2, 7))),
        input_scale=float(2.0 ** rng.integers(-3, 5)),
        seed=seed,
    )


def _branch(inp, spec: MLPSpec, prefix: str):
    act = {"granularity": spec.granularity, "rounding": spec.rounding, "overflow": spec.overflow}
    weight = {"granularity": spec.granularity, "rounding": spec.rounding}
    x = HQuantize(act, name=f"{prefix}_q")(inp)
    layers = []
    for index, width in enumerate(spec.widths):
        last = index == len(spec.widths) - 1
        relu = spec.relu[index] if spec.relu else not last
        use_bias = spec.use_bias[index] if spec.use_bias else True
        layer = HDense(width, activation="relu" if relu else None, use_bias=use_bias, input_quantizer=act,
                       kernel_quantizer=weight, bias_quantizer=weight, name=f"{prefix}_d{index}")
        x = layer(x)
        layers.append(layer)
    return x, layers


def _randomize(model, layers, spec: MLPSpec) -> None:
    """Random weights, biases and per-element fractional bits (so some weights round to 0)."""
    rng = np.random.default_rng(spec.seed)
    for layer in layers:
        layer.kernel.assign(rng.normal(0.0, 1.0 / np.sqrt(layer.kernel.shape[0]), layer.kernel.shape))
        if layer.use_bias:
            layer.bias.assign(rng.normal(0.0, 0.5, layer.bias.shape))
    for layer in [l for l in model.layers if hasattr(l, "quantizers")]:
        for q in layer.quantizers():
            lo, hi = spec.act_f if hasattr(q, "record_range") else spec.weight_f
            q.f.assign(rng.integers(lo, hi + 1, size=q.f.shape).astype("float32"))


def build_model(specs: list[MLPSpec]) -> keras.Model:
    """One model holding every spec as an independent branch (input ``in{i}``, output ``b{i}``)."""
    inputs, outputs = [], []
    for index, spec in enumerate(specs):
        inp = keras.Input((spec.n_in,), name=f"in{index}")
        out, layers = _branch(inp, spec, f"b{index}")
        inputs.append(inp)
        outputs.append(out)
        spec.extra["layers"] = layers
    model = keras.Model(inputs, outputs)
    for spec in specs:
        _randomize(model, spec.extra.pop("layers"), spec)
    return model


def calibration_data(specs: list[MLPSpec], n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.normal(0.0, spec.input_scale, (n, spec.n_in))).astype(np.float32) for spec in specs]


def in_range_data(calibration: list[np.ndarray], n: int, seed: int) -> list[np.ndarray]:
    """Uniform over each feature's calibrated [min, max]."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(x.min(axis=0), x.max(axis=0), (n, x.shape[1])).astype(np.float32) for x in calibration]


def saved_model(path, specs: list[MLPSpec], calibrate: bool = True, seed: int = 0):
    """Build, optionally calibrate, and save the model of ``specs``; returns (model, calibration data)."""
    import hgq_chip

    keras.utils.set_random_seed(seed)
    model = build_model(specs)
    data = calibration_data(specs, 256, seed)
    if calibrate:
        hgq_chip.calibrate(model, data)
    model.save(path)
    return model, data
