"""Walking a planned QKeras graph and building the equivalent functional hgq_chip model.

Every layer output is a ``Flow``: the Keras tensor, its fixed-point format, and a QKeras
quantizer not yet applied to it (``pending``). A pending cast is deferred to the next
weighted layer, where it becomes that layer's input quantizer ``iq``; it moves past layers
that commute with it (Flatten/Reshape/Dropout, and max pooling: a quantizer is monotone, so
``q(max(x)) = max(q(x))``) and is applied as an ``HQuantize`` before anything else.

Formats of the layers without weights (each exact, so the imported model equals QKeras):

- ``MaxPooling``/``GlobalMaxPooling``: the input's format.
- ``AveragePooling``/``GlobalAveragePooling`` over n = 2**s values: the input's range, s more
  fractional bits (a sum divided by a power of two is exact; smaller 'same' border windows of
  2**t values need only t). Any other count is refused: Keras divides in floating point and
  hls4ml's firmware cannot match it (see docs/qkeras.md).
- ``Add``: f = max f, range = sum of the ranges. ``Concatenate``: f = max f, union of ranges.
  ``Subtract``: f = max f, ``[lo_a - hi_b, hi_a - lo_b]``. ``Maximum``/``Minimum``: f = max f,
  the maximum/minimum of the bounds.
- Layers that copy elements (``Permute``, ``Cropping``, nearest ``UpSampling``) or are the
  identity at inference (noise, spatial dropout, ``ActivityRegularization``, ``Identity``): the
  input's format; a pending cast moves past them (it acts per element). ``ZeroPadding``: the
  cast is applied first, then zeros join the range.
- ``QActivation(quantized_tanh(bits))`` with QKeras' default hard sigmoid is
  ``clip(round(clip(x, -1, 1) * 2**(bits-1)), ...)``: a saturating ties-to-even cast to
  ``fixed<bits, 1>``, exact when the float32 ``0.5 * x + 0.5`` of QKeras' hard sigmoid is, i.e.
  when x has at most 23 fractional bits (checked).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass

import keras
import numpy as np

from ..errors import UnsupportedLayerError
from .builder import ModelBuilder, accumulator_spec, input_cast, set_range
from .plan import ACTIVATIONS, AVERAGING, MERGES, MONOTONE, MOVING, PADDING, PASSIVE, Plan, is_relu
from .quantizer_formats import ActivationSpec, activation_spec

# Fractional bits of a float32 x for which QKeras' hard sigmoid 0.5 * x + 0.5 is exact.
HARD_SIGMOID_MAX_F = 23

POOLING_LAYERS = {
    "MaxPooling1D": keras.layers.MaxPooling1D, "MaxPooling2D": keras.layers.MaxPooling2D,
    "AveragePooling1D": keras.layers.AveragePooling1D, "AveragePooling2D": keras.layers.AveragePooling2D,
    "GlobalMaxPooling1D": keras.layers.GlobalMaxPooling1D, "GlobalMaxPooling2D": keras.layers.GlobalMaxPooling2D,
    "GlobalAveragePooling1D": keras.layers.GlobalAveragePooling1D,
    "GlobalAveragePooling2D": keras.layers.GlobalAveragePooling2D,
}


def keras_layer(kind: str, config: dict, name: str):
    """The Keras 3 layer ``kind`` with the Keras 2 ``config`` arguments its constructor takes."""
    cls = getattr(keras.layers, kind)
    accepted = inspect.signature(cls.__init__).parameters
    arguments = {key: tuple(value) if isinstance(value, list) else value
                 for key, value in config.items() if key in accepted and key not in ("name", "dtype")}
    return cls(name=name, **arguments)


@dataclass(frozen=True)
class Flow:
    """One layer output. ``spec``: its format once ``pending`` is applied (None while it is the
    float model input); ``from_weighted``: a weighted layer's output (through passive layers
    only), which can take a following relu; ``at_input``: the model input (same)."""

    tensor: object
    spec: ActivationSpec | None
    pending: ActivationSpec | None = None
    from_weighted: bool = False
    at_input: bool = False


def pooling_layer(entry: dict):
    arguments = {key: entry[key] for key in ("pool_size", "strides", "padding", "data_format", "keepdims")
                 if entry.get(key) is not None}
    return POOLING_LAYERS[entry["class"]](name=entry["name"], **arguments)


def window_counts(size: int, pool: int, stride: int, padding: str) -> set[int]:
    """How many of ``size`` positions each output window covers (Keras/TF 'same' pads
    ``max((out - 1) * stride + pool - size, 0) // 2`` before; padding is not counted)."""
    if padding != "same":
        return {pool}
    out = -(-size // stride)
    before = max((out - 1) * stride + pool - size, 0) // 2
    return {min(o * stride - before + pool, size) - max(o * stride - before, 0) for o in range(out)}


def averaged_counts(entry: dict, tensor) -> set[int]:
    """How many values each output of an average pooling averages (channels_last)."""
    spatial = [int(d) for d in tensor.shape[1:-1]]
    if entry["class"].startswith("Global"):
        return {int(np.prod(spatial))}
    counts = {1}
    for size, pool, stride in zip(spatial, entry["pool_size"], entry["strides"] or entry["pool_size"]):
        counts = {a * b for a in counts for b in window_counts(size, int(pool), int(stride), entry["padding"])}
    return counts


class GraphBuilder(ModelBuilder):
    """Builds the functional model of a ``Plan``, one entry at a time, in topological order."""

    def build(self, description: dict, plan: Plan) -> keras.Model:
        names = [e["name"] for e in description["layers"] if e["class"] == "InputLayer"]
        # hls4ml reserves the layer name 'input'.
        input_name = names[0] if names and names[0] != "input" else "model_input"
        self.inputs = keras.Input(shape=tuple(description["input_shape"]), name=input_name)
        self.plan = plan
        flows = {name: Flow(self.inputs, None, at_input=True) for name in names}
        for entry in plan.entries:
            sources = [flows[name] for name in entry["inbound"]]
            flows[entry["name"]] = self.layer_flow(entry, sources)
        out = flows[plan.output]
        tensor = out.tensor
        if out.pending is not None:
            tensor = self.apply_quantizer(out.pending, tensor, f"{plan.output}_output", relu_layer=False)
        return keras.Model(self.inputs, tensor, name=description["model_name"])

    def layer_flow(self, entry: dict, sources: list[Flow]) -> Flow:
        kind = entry["class"]
        if kind in PASSIVE:
            return dataclasses.replace(sources[0], tensor=self.passive_layer(entry)(sources[0].tensor))
        if kind in MOVING or kind in PADDING:
            return self.movement(entry, sources[0])
        if kind in MONOTONE:
            return dataclasses.replace(sources[0], tensor=pooling_layer(entry)(sources[0].tensor))
        if kind in AVERAGING:
            return self.average(entry, sources[0])
        if kind in MERGES:
            return self.merge(entry, sources)
        if kind in ACTIVATIONS:
            return self.activation(entry, sources[0])
        return self.weighted(entry, sources[0])

    def materialize(self, flow: Flow, name: str) -> tuple[object, ActivationSpec]:
        """The flow's tensor with its pending cast applied (a float model input is quantized first)."""
        if flow.pending is not None:
            return self.apply_quantizer(flow.pending, flow.tensor, name, relu_layer=False), flow.pending
        if flow.spec is None:
            spec = self.float_input_spec(self.inputs, flow.tensor)
            return self.apply_quantizer(spec, flow.tensor, name, relu_layer=False), spec
        return flow.tensor, flow.spec

    def average(self, entry: dict, source: Flow) -> Flow:
        name = entry["name"]
        tensor, spec = self.materialize(source, f"{name}_before")
        if entry.get("data_format") == "channels_first":
            raise UnsupportedLayerError(f"{name}: channels_first pooling cannot be imported; use channels_last")
        counts = averaged_counts(entry, tensor)
        odd = sorted(n for n in counts if n & (n - 1))
        if odd:
            raise UnsupportedLayerError(
                f"{name}: {entry['class']} averages {odd[0]} values, not a power of two; Keras divides in "
                "floating point and the firmware cannot match it: use a power-of-two pool without such "
                "'same' border windows (or MaxPooling) in QKeras"
            )
        averaged = dataclasses.replace(spec, f=spec.f + int(math.log2(max(counts))), rounding="RND_CONV")
        return Flow(pooling_layer(entry)(tensor), averaged)

    def merge(self, entry: dict, sources: list[Flow]) -> Flow:
        name = entry["name"]
        tensors, specs = zip(*(self.materialize(flow, f"{name}_in{i}") for i, flow in enumerate(sources)))
        f = max(spec.f for spec in specs)
        kind = entry["class"]
        relu = all(spec.relu for spec in specs)
        if kind == "Add":
            lo, hi = sum(spec.lo for spec in specs), sum(spec.hi for spec in specs)
            layer = keras.layers.Add(name=name)
        elif kind == "Subtract":
            lo, hi, relu = specs[0].lo - specs[1].hi, specs[0].hi - specs[1].lo, False
            layer = keras.layers.Subtract(name=name)
        elif kind in ("Maximum", "Minimum"):
            pick = max if kind == "Maximum" else min
            lo, hi = pick(spec.lo for spec in specs), pick(spec.hi for spec in specs)
            relu = lo >= 0 and any(spec.relu for spec in specs) if kind == "Maximum" else relu
            layer = getattr(keras.layers, kind)(name=name)
        else:
            lo, hi = min(spec.lo for spec in specs), max(spec.hi for spec in specs)
            layer = keras.layers.Concatenate(axis=entry["axis"], name=name)
        spec = ActivationSpec(f=f, lo=lo, hi=hi, relu=relu)
        return Flow(layer(list(tensors)), spec)

    def movement(self, entry: dict, source: Flow) -> Flow:
        """A weightless Keras layer rebuilt from its configuration (see the module docstring)."""
        name, kind, config = entry["name"], entry["class"], dict(entry.get("config") or {})
        if config.get("data_format", "channels_last") == "channels_first":
            raise UnsupportedLayerError(f"{name}: channels_first {kind} cannot be imported; use channels_last")
        if kind.startswith("UpSampling") and config.get("interpolation", "nearest") != "nearest":
            raise UnsupportedLayerError(
                f"{name}: UpSampling with interpolation={config['interpolation']!r} computes weighted means the "
                "firmware does not reproduce; use interpolation='nearest' in QKeras")
        layer = keras_layer(kind, config, name)
        if kind not in PADDING:
            return dataclasses.replace(source, tensor=layer(source.tensor))
        tensor, spec = self.materialize(source, f"{name}_before")
        return Flow(layer(tensor), dataclasses.replace(spec, lo=min(spec.lo, 0.0), hi=max(spec.hi, 0.0)))

    def activation(self, entry: dict, source: Flow) -> Flow:
        name, quantizer = entry["name"], entry["quantizer"]
        new = activation_spec(name, quantizer)
        relu = is_relu(quantizer)
        if new is None:
            if relu and not source.from_weighted:
                raise UnsupportedLayerError(f"{name}: a float relu must directly follow a QDense/QConv")
            if relu:
                spec = source.spec
                return dataclasses.replace(source, spec=dataclasses.replace(
                    spec, lo=max(spec.lo, 0.0), hi=max(spec.hi, 0.0), relu=True))
            return source
        if quantizer.get("class") == "quantized_tanh":
            self.check_hard_tanh_input(name, source)
        tensor, at_input = source.tensor, source.at_input
        if source.pending is not None:
            tensor = self.apply_quantizer(source.pending, tensor, f"{name}_before", relu_layer=False)
            at_input = False
        if at_input:
            new = input_cast(new)
        if relu and not source.from_weighted:
            return Flow(self.apply_quantizer(new, tensor, name, relu_layer=True), new)
        return Flow(tensor, new, pending=new, at_input=at_input)

    def check_hard_tanh_input(self, name: str, source: Flow) -> None:
        spec = source.pending or source.spec
        if spec is None or spec.f > HARD_SIGMOID_MAX_F:
            what = "the float model input" if spec is None else f"a value with {spec.f} fractional bits"
            raise UnsupportedLayerError(
                f"{name}: quantized_tanh reads {what}; QKeras' hard sigmoid (0.5 * x + 0.5 in float32) rounds "
                f"it, so the import would not be exact: quantize its input to at most {HARD_SIGMOID_MAX_F} "
                "fractional bits first (QActivation(quantized_bits(...)))"
            )

    def weighted(self, entry: dict, source: Flow) -> Flow:
        name = entry["name"]
        input_spec = source.pending or source.spec or self.float_input_spec(self.inputs, source.tensor)
        relu = self.plan.relu_follows(name) or is_relu(entry["activation"])
        layer, loaded = self.weighted_layer(entry, input_spec, relu)
        tensor = layer(source.tensor)
        self.load_weights(layer, entry, *loaded)
        set_range(layer.iq, input_spec)
        fused = activation_spec(name, entry["activation"])
        spec = fused or accumulator_spec(layer, input_spec, relu)
        return Flow(tensor, spec, pending=fused, from_weighted=True)
