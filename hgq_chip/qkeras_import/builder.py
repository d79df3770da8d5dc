"""Building the hgq_chip model from a QKeras model's plain description (Keras 3 side).

Mapping, layer by layer (a sequential chain only):

- ``QDense`` / ``QConv1D`` / ``QConv2D`` -> ``HDense`` / ``HConv1D`` / ``HConv2D`` whose kernel
  and bias are QKeras' own quantized weights and whose per-weight fractional bits equal the
  QKeras quantizer's (shifted per channel by an ``auto_po2`` scale). A following
  ``BatchNormalization`` is folded: ``H*BatchNorm``.
- The quantizer in front of a weighted layer (a ``QActivation``, or the previous layer's
  quantized activation) becomes that layer's input quantizer ``iq``: same f, rounding
  RND_CONV (QKeras rounds ties to even; the model input's quantizer excepted, see
  ``input_cast``), SAT, and a recorded range equal to the QKeras quantizer's full range,
  so sign and integer bits match. A quantized_relu also sets
  ``activation='relu'`` on the layer before it, so training sees the relu too.
- A weighted layer with no quantizer after it (linear output) hands the next layer an
  exact format: the accumulator's f and a range bounded by interval arithmetic.
- A quantizer with no weighted layer after it becomes an ``HQuantize`` (or an
  ``HActivation('relu')`` when no layer before it can take the relu).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from ..errors import CalibrationError, ModelFileError, UnsupportedLayerError
from ..fixed.minimal import fractional_bits
from ..layers import (
    HActivation, HConv1D, HConv1DBatchNorm, HConv2D, HConv2DBatchNorm, HDense, HDenseBatchNorm, HQuantize,
)
from .legacy_reader import FORMAT, VERSION
from .quantizer_formats import ActivationSpec, activation_spec, weight_fractional_bits

PASSIVE = ("Flatten", "Reshape", "Dropout")
ACTIVATIONS = ("QActivation", "Activation")
LAYER_CLASSES = {
    "QDense": (HDense, HDenseBatchNorm),
    "QConv1D": (HConv1D, HConv1DBatchNorm),
    "QConv2D": (HConv2D, HConv2DBatchNorm),
}
CONV_ARGUMENTS = ("kernel_size", "strides", "padding", "dilation_rate", "data_format", "groups")


def _is_relu(quantizer) -> bool:
    spec_relu = quantizer is not None and quantizer.get("class") == "quantized_relu"
    return spec_relu or (quantizer is not None and quantizer.get("activation") == "relu")


def _is_linear(quantizer) -> bool:
    return quantizer is None or quantizer.get("activation") == "linear"


def check_description(description: dict) -> None:
    if description.get("format") != FORMAT or description.get("version") != VERSION:
        raise ModelFileError("not a QKeras description written by this hgq_chip version; re-read the .h5 file")
    if description["n_inputs"] != 1 or description["n_outputs"] != 1:
        raise UnsupportedLayerError("only single-input, single-output QKeras models can be imported")
    if description["not_a_chain"]:
        raise UnsupportedLayerError(
            f"layers {description['not_a_chain']} do not read the layer before them; only sequential QKeras "
            "models (a chain of layers) can be imported"
        )


def plan_layers(layers: list[dict], log) -> list[dict]:
    """Drop the input layer and a final softmax, fold each BatchNormalization into its layer."""
    entries = [dict(e) for e in layers if e["class"] != "InputLayer"]
    if entries and entries[-1]["class"] in ACTIVATIONS and (entries[-1]["quantizer"] or {}).get("activation") == "softmax":
        log(f"[hgq_chip] dropped the final softmax ({entries[-1]['name']}): the imported model outputs logits")
        entries.pop()
    planned = []
    for entry in entries:
        kind = entry["class"]
        if kind == "BatchNormalization":
            previous = planned[-1] if planned else None
            if previous is None or previous["class"] not in LAYER_CLASSES or not _is_linear(previous["activation"]):
                raise UnsupportedLayerError(
                    f"{entry['name']}: a BatchNormalization must directly follow a QDense/QConv with a linear "
                    "activation to be folded into it"
                )
            if entry["axis"] not in (-1, len(previous.get("kernel_size", [])) + 1):
                raise UnsupportedLayerError(f"{entry['name']}: only BatchNormalization over the last axis is supported")
            previous["batchnorm"] = entry
        elif kind in LAYER_CLASSES or kind in ACTIVATIONS or kind in PASSIVE:
            planned.append(entry)
        else:
            raise UnsupportedLayerError(
                f"{entry['name']}: QKeras/Keras layer {kind} cannot be imported; supported: "
                f"{sorted(LAYER_CLASSES)} + BatchNormalization, QActivation, Activation, {list(PASSIVE)}"
            )
    return planned


def _relu_follows(entries: list[dict], position: int) -> bool:
    for entry in entries[position + 1 :]:
        if entry["class"] in PASSIVE:
            continue
        return entry["class"] in ACTIVATIONS and _is_relu(entry["quantizer"])
    return False


def set_range(quantizer, spec: ActivationSpec) -> None:
    quantizer.range_lo.assign(np.full(quantizer.range_lo.shape, spec.lo, np.float32))
    quantizer.range_hi.assign(np.full(quantizer.range_hi.shape, spec.hi, np.float32))
    quantizer.range_seen.assign(1.0)


def accumulator_spec(layer, input_spec: ActivationSpec, relu: bool) -> ActivationSpec:
    """An exact format for the float output of ``layer``: the accumulator's f and a safe range."""
    kernel = layer.kq.quantized(layer.fused_kernel())
    bias = layer.fused_bias()
    bias = np.zeros(kernel.shape[-1]) if bias is None else layer.bq.quantized(bias)
    f = max(input_spec.f + int(fractional_bits(kernel).max()), int(fractional_bits(bias).max()))
    taps = kernel.reshape(-1, kernel.shape[-1])
    # Including 0 in each term also covers zero padding of 'same' convolutions.
    low = np.minimum(np.minimum(taps * input_spec.lo, taps * input_spec.hi), 0.0).sum(axis=0) + bias
    high = np.maximum(np.maximum(taps * input_spec.lo, taps * input_spec.hi), 0.0).sum(axis=0) + bias
    lo, hi = float(low.min()), float(high.max())
    if relu:
        lo, hi = max(lo, 0.0), max(hi, 0.0)
    return ActivationSpec(f=f, lo=lo, hi=hi, relu=relu)


def input_cast(spec: ActivationSpec) -> ActivationSpec:
    """The model input's quantizer rounds ties up (RND), not to even.

    The firmware reads float inputs through an input type truncated one bit below the
    quantizer (conversion/inputs.py): that decides RND ties exactly but cannot tell a tie from
    a value just above it, which ties-to-even needs. Inputs representable in the QKeras
    input type have no ties, so the model still equals QKeras on them; other inputs differ
    only where x * 2**f lies exactly halfway between two integers.
    """
    return dataclasses.replace(spec, rounding="RND")


class ModelBuilder:
    """Builds the functional hgq_chip model, one planned entry at a time."""

    def __init__(self, weights: dict, granularity: str, input_f: int, x, log):
        self.weights = weights
        self.x = x
        self.granularity = granularity
        self.input_f = int(input_f)
        self.log = log

    def quantize_layer(self, spec: ActivationSpec, name: str, relu_layer: bool):
        config = spec.quantizer_config(self.granularity)
        layer = HActivation("relu", input_quantizer=config, name=name) if relu_layer else HQuantize(config, name=name)
        return layer, (layer.iq if relu_layer else layer.q)

    def weighted_layer(self, entry: dict, input_spec: ActivationSpec, relu: bool):
        name = entry["name"]
        plain, folded = LAYER_CLASSES[entry["class"]]
        kernel_q = self.weights[f"{name}/kernel_q"]
        f_kernel = weight_fractional_bits(name, entry["kernel_quantizer"], kernel_q, self.weights.get(f"{name}/kernel_scale"))
        bn = entry.get("batchnorm")
        if bn is not None:
            # The folded bias is a float of QKeras' float BatchNorm: give it the accumulator's resolution.
            f_bias = np.full(kernel_q.shape[-1], input_spec.f + int(f_kernel.max()))
        elif entry["use_bias"]:
            bias_q = self.weights[f"{name}/bias_q"]
            f_bias = weight_fractional_bits(name, entry["bias_quantizer"], bias_q, self.weights.get(f"{name}/bias_scale"))
        else:
            f_bias = None
        arguments = dict(
            use_bias=entry["use_bias"], activation="relu" if relu else None, name=name,
            input_quantizer=input_spec.quantizer_config(self.granularity),
            kernel_quantizer={"granularity": "per-element", "init_f": float(f_kernel.max())},
        )
        if f_bias is not None:
            arguments["bias_quantizer"] = {"granularity": "per-element", "init_f": float(np.max(f_bias))}
        if bn is not None:
            arguments.update(epsilon=bn["epsilon"], center=bn["center"], scale=bn["scale"])
        size = entry["units"] if entry["class"] == "QDense" else entry["filters"]
        conv = {key: entry[key] for key in CONV_ARGUMENTS if key in entry}
        layer = (folded if bn is not None else plain)(size, **conv, **arguments)
        return layer, (kernel_q, f_kernel, f_bias)

    def float_input_spec(self, inputs, tensor) -> ActivationSpec:
        """A format for the unquantized model input: input_f fractional bits, the range of ``x``."""
        if self.x is None:
            raise CalibrationError(
                "the QKeras model's input is not quantized (no QActivation(quantized_bits) before its first "
                "layer); pass x (representative inputs) to set the input's integer bits, and input_f for its "
                "fractional bits"
            )
        x = np.asarray(self.x, np.float32)
        values = x if tensor is inputs else np.asarray(keras.Model(inputs, tensor)(x, training=False))
        self.log(f"[hgq_chip] the QKeras input is float: quantizing it with {self.input_f} fractional bits "
                 f"over the range of x, [{values.min():g}, {values.max():g}] (SAT)")
        return ActivationSpec(f=self.input_f, lo=float(values.min()), hi=float(values.max()), rounding="RND")

    def load_weights(self, layer, entry: dict, kernel_q, f_kernel, f_bias) -> None:
        name = entry["name"]
        layer.kernel.assign(kernel_q)
        layer.kq.f.assign(f_kernel.astype(np.float32))
        if entry["use_bias"]:
            layer.bias.assign(self.weights[f"{name}/bias_q"])
        if f_bias is not None:
            layer.bq.f.assign(np.broadcast_to(f_bias, layer.bq.f.shape).astype(np.float32))
        bn = entry.get("batchnorm")
        if bn is not None:
            bn_name = bn["name"]
            for ours, theirs in (("bn_gamma", "gamma"), ("bn_beta", "beta"), ("moving_mean", "moving_mean"),
                                 ("moving_variance", "moving_variance")):
                variable = getattr(layer, ours)
                if variable is not None:
                    variable.assign(self.weights[f"{bn_name}/{theirs}"])
            self.log(f"[hgq_chip] {name}: folded {bn_name}; QKeras applies it in float, so this layer's outputs "
                     "are close to, not equal to, QKeras'")

    def passive_layer(self, entry: dict):
        if entry["class"] == "Flatten":
            return keras.layers.Flatten(name=entry["name"])
        if entry["class"] == "Reshape":
            return keras.layers.Reshape(tuple(entry["target_shape"]), name=entry["name"])
        return keras.layers.Dropout(float(entry.get("rate", 0.0)), name=entry["name"])

    def build(self, description: dict, entries: list[dict]) -> keras.Model:
        names = [e["name"] for e in description["layers"] if e["class"] == "InputLayer"]
        # hls4ml reserves the layer name 'input'.
        name = names[0] if names and names[0] != "input" else "model_input"
        inputs = keras.Input(shape=tuple(description["input_shape"]), name=name)
        tensor = inputs
        spec = None  # the format of ``tensor``; None while it is the float model input
        pending = None  # a QKeras quantizer not yet applied by any layer
        from_weighted = False  # tensor is a weighted layer's output (through passive layers only)
        at_input = True  # tensor is the model input (through passive layers only)
        for position, entry in enumerate(entries):
            kind, name = entry["class"], entry["name"]
            if kind in PASSIVE:
                tensor = self.passive_layer(entry)(tensor)
            elif kind in ACTIVATIONS:
                new = activation_spec(name, entry["quantizer"])
                relu = _is_relu(entry["quantizer"])
                if new is None:
                    if relu and not from_weighted:
                        raise UnsupportedLayerError(f"{name}: a float relu must directly follow a QDense/QConv")
                    if relu:
                        spec = dataclasses.replace(spec, lo=max(spec.lo, 0.0), hi=max(spec.hi, 0.0), relu=True)
                    continue
                if pending is not None:
                    tensor = self._apply_quantizer(pending, tensor, f"{name}_before", relu_layer=False)
                    at_input = False
                if at_input:
                    new = input_cast(new)
                if relu and not from_weighted:
                    tensor = self._apply_quantizer(new, tensor, name, relu_layer=True)
                    at_input = False
                    pending = None
                else:
                    pending = new
                spec, from_weighted = new, False
            else:
                input_spec = pending or spec or self.float_input_spec(inputs, tensor)
                relu = _relu_follows(entries, position) or _is_relu(entry["activation"])
                layer, loaded = self.weighted_layer(entry, input_spec, relu)
                tensor = layer(tensor)
                self.load_weights(layer, entry, *loaded)
                set_range(layer.iq, input_spec)
                fused = activation_spec(name, entry["activation"])
                spec = fused or accumulator_spec(layer, input_spec, relu)
                pending, from_weighted, at_input = fused, True, False
        if pending is not None:
            tensor = self._apply_quantizer(pending, tensor, f"{entries[-1]['name']}_output", relu_layer=False)
        return keras.Model(inputs, tensor, name=description["model_name"])

    def _apply_quantizer(self, spec: ActivationSpec, tensor, name: str, relu_layer: bool):
        layer, quantizer = self.quantize_layer(spec, name, relu_layer)
        tensor = layer(tensor)
        set_range(quantizer, spec)
        return tensor

