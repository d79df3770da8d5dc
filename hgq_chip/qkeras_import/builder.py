"""The hgq_chip layers of a QKeras model's weighted layers and quantizers (Keras 3 side).

Mapping (the graph walk is ``graph.py``):

- ``QDense`` / ``QConv1D`` / ``QConv2D`` / ``QDepthwiseConv2D`` -> ``HDense`` / ``HConv1D`` /
  ``HConv2D`` / ``HDepthwiseConv2D`` whose kernel and bias are QKeras' own quantized weights
  and whose per-weight fractional bits equal the QKeras quantizer's (shifted per channel by an
  ``auto_po2`` scale). A following ``BatchNormalization`` is folded: ``H*BatchNorm``.
- ``QConv2DBatchnorm`` / ``QDepthwiseConv2DBatchnorm`` / ``QDenseBatchnorm`` -> the plain H layer
  holding the kernel and bias QKeras computes at inference: folded by QKeras itself, then
  quantized by the layer's kernel and bias quantizers, so the import is exact.
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

from ..errors import CalibrationError
from ..fixed.minimal import fractional_bits
from ..layers import HActivation, HQuantize
from .plan import LAYER_CLASSES
from .quantizer_formats import ActivationSpec, weight_fractional_bits

CONV_ARGUMENTS = ("kernel_size", "strides", "padding", "dilation_rate", "data_format", "groups", "depth_multiplier")


def set_range(quantizer, spec: ActivationSpec) -> None:
    quantizer.range_lo.assign(np.full(quantizer.range_lo.shape, spec.lo, np.float32))
    quantizer.range_hi.assign(np.full(quantizer.range_hi.shape, spec.hi, np.float32))
    quantizer.range_seen.assign(1.0)


def accumulator_spec(layer, input_spec: ActivationSpec, relu: bool) -> ActivationSpec:
    """An exact format for the float output of ``layer``: the accumulator's f and a safe range."""
    kernel = layer.kq.quantized(layer.fused_kernel())
    bias = layer.fused_bias()
    outputs = int(np.prod(kernel.shape[-2:])) if hasattr(layer, "depth_multiplier") else kernel.shape[-1]
    bias = np.zeros(outputs) if bias is None else layer.bq.quantized(bias)
    f = max(input_spec.f + int(fractional_bits(kernel).max()), int(fractional_bits(bias).max()))
    # One column per output channel: (taps, outputs) for Dense/Conv; a depthwise kernel
    # (*kernel_size, channels, multiplier) feeds output channel c * multiplier + m.
    depthwise = hasattr(layer, "depth_multiplier")
    taps = kernel.reshape(int(np.prod(layer.kernel_size)), -1) if depthwise else kernel.reshape(-1, kernel.shape[-1])
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
        elif entry.get("folded") and entry["bias_quantizer"] is None:
            # QKeras adds its folded float32 bias unquantized: keep every bit of it.
            f_bias = fractional_bits(self.weights[f"{name}/bias_q"])
            self.log(f"[hgq_chip] {name}: QKeras adds the BatchNorm-folded bias in float (no bias_quantizer); "
                     f"it is kept exactly, with up to {int(np.max(f_bias))} fractional bits, which convert may "
                     "refuse as too wide for float32: give the layer a bias_quantizer in QKeras, or fine-tune "
                     "the import with an EBOPs penalty (beta) to drop those bits")
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
        conv = {key: entry[key] for key in CONV_ARGUMENTS if key in entry}
        if "depth_multiplier" in entry:
            conv.pop("groups", None)  # tf_keras' DepthwiseConv2D config carries Conv's groups=1
            layer = plain(**conv, **arguments)
        else:
            size = entry["units"] if "units" in entry else entry["filters"]
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
            layer.bias.assign(np.reshape(self.weights[f"{name}/bias_q"], layer.bias.shape))
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

    def apply_quantizer(self, spec: ActivationSpec, tensor, name: str, relu_layer: bool):
        """``tensor`` cast by a new HQuantize (or HActivation('relu') with that input quantizer) of ``spec``."""
        layer, quantizer = self.quantize_layer(spec, name, relu_layer)
        tensor = layer(tensor)
        set_range(quantizer, spec)
        return tensor

