"""Planning a QKeras import: which layers are kept, folded or dropped, and who reads whom.

Works on the plain description written by ``legacy_reader describe`` (version 2: each layer
lists the layers it reads, ``inbound``), so a QKeras functional graph -- branches, ``Add``,
``Concatenate`` -- is planned as well as a chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ModelFileError, UnsupportedLayerError
from ..layers import (
    HConv1D, HConv1DBatchNorm, HConv2D, HConv2DBatchNorm, HDense, HDenseBatchNorm, HDepthwiseConv2D,
)
from .import_hints import import_hint
from .legacy_reader import FORMAT, VERSION

# QKeras class -> (hgq_chip layer, its BatchNorm-fused variant or None). The QKeras
# *Batchnorm layers arrive already folded (the reader applies QKeras' own folding).
LAYER_CLASSES = {
    "QDense": (HDense, HDenseBatchNorm),
    "QConv1D": (HConv1D, HConv1DBatchNorm),
    "QConv2D": (HConv2D, HConv2DBatchNorm),
    "QDepthwiseConv2D": (HDepthwiseConv2D, None),
    "QDenseBatchnorm": (HDense, None),
    "QConv2DBatchnorm": (HConv2D, None),
    "QDepthwiseConv2DBatchnorm": (HDepthwiseConv2D, None),
}
PASSIVE = ("Flatten", "Reshape", "Dropout")
# Layers that commute with any monotone quantizer and with relu (a pending cast moves past them).
MONOTONE = ("MaxPooling1D", "MaxPooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D")
AVERAGING = ("AveragePooling1D", "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D")
MERGES = ("Add", "Concatenate", "Subtract", "Maximum", "Minimum")
ACTIVATIONS = ("QActivation", "Activation")
# Layers that copy elements (or are the identity at inference): a pending cast moves past them.
MOVING = ("Permute", "Cropping1D", "Cropping2D", "UpSampling1D", "UpSampling2D", "SpatialDropout1D",
          "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity",
          "RandomBrightness", "RandomContrast", "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom")
# Layers that also write zeros: the cast is applied before them.
PADDING = ("ZeroPadding1D", "ZeroPadding2D")
SUPPORTED = sorted([*LAYER_CLASSES, "BatchNormalization", *ACTIVATIONS, *PASSIVE, *MONOTONE, *AVERAGING, *MERGES,
                    *MOVING, *PADDING])


def is_relu(quantizer) -> bool:
    spec_relu = quantizer is not None and quantizer.get("class") == "quantized_relu"
    return spec_relu or (quantizer is not None and quantizer.get("activation") == "relu")


def is_linear(quantizer) -> bool:
    return quantizer is None or quantizer.get("activation") == "linear"


def is_softmax(entry: dict) -> bool:
    return entry["class"] in ACTIVATIONS and (entry.get("quantizer") or {}).get("activation") == "softmax"


@dataclass
class Plan:
    """``entries``: kept layers in topological order (a folded BatchNormalization is in its layer's
    ``batchnorm``); ``alias``: dropped layer -> the layer whose output stands for its output;
    ``consumers``: kept layer -> names of kept layers reading it; ``output``: the output layer."""

    entries: list[dict]
    alias: dict[str, str] = field(default_factory=dict)
    consumers: dict[str, list[str]] = field(default_factory=dict)
    output: str = ""

    def resolve(self, name: str) -> str:
        while name in self.alias:
            name = self.alias[name]
        return name

    def relu_follows(self, name: str) -> bool:
        """The single reader of ``name`` (past layers that commute with relu) is a relu."""
        by_name = {e["name"]: e for e in self.entries}
        while True:
            readers = self.consumers.get(name, [])
            if len(readers) != 1:
                return False
            entry = by_name[readers[0]]
            if entry["class"] in (*PASSIVE, *MONOTONE, *MOVING, *PADDING):  # relu(0) = 0
                name = entry["name"]
                continue
            return entry["class"] in ACTIVATIONS and is_relu(entry["quantizer"])


def check_description(description: dict) -> None:
    """Raises ModelFileError for a description of another version, UnsupportedLayerError for
    several inputs/outputs or a layer used twice (shared weights)."""
    if description.get("format") != FORMAT or description.get("version") != VERSION:
        raise ModelFileError("not a QKeras description written by this hgq_chip version; re-read the .h5 file")
    if description["n_inputs"] != 1 or description["n_outputs"] != 1:
        raise UnsupportedLayerError("only single-input, single-output QKeras models can be imported")
    shared = [e["name"] for e in description["layers"] if e["class"] != "InputLayer" and e.get("inbound") is None]
    if shared:
        raise UnsupportedLayerError(
            f"layers {shared} are called more than once (shared weights); hgq_chip layers are called once: "
            "rebuild the QKeras model with one layer per call"
        )


def _fold_batchnorm(entry: dict, target: dict | None, readers: int) -> None:
    name = entry["name"]
    if target is None or target["class"] not in LAYER_CLASSES or not is_linear(target["activation"]) or readers != 1:
        raise UnsupportedLayerError(
            f"{name}: a BatchNormalization must directly follow a QDense/QConv with a linear activation "
            "(and be its only reader) to be folded into it"
        )
    if LAYER_CLASSES[target["class"]][1] is None or target.get("folded"):
        raise UnsupportedLayerError(
            f"{name}: a BatchNormalization after {target['class']} {target['name']} cannot be folded here; "
            "use QKeras' folded layer (QDepthwiseConv2DBatchnorm / QConv2DBatchnorm) instead"
        )
    if entry["axis"] not in (-1, len(target.get("kernel_size", [])) + 1):
        raise UnsupportedLayerError(f"{name}: only BatchNormalization over the last axis is supported")
    target["batchnorm"] = entry


def plan_layers(description: dict, log) -> Plan:
    """Keep, fold or drop each layer; raises UnsupportedLayerError naming a layer that cannot be imported."""
    layers = [dict(e) for e in description["layers"] if e["class"] != "InputLayer"]
    input_names = {e["name"] for e in description["layers"] if e["class"] == "InputLayer"}
    output = description["output_layer"]
    readers: dict[str, int] = {}
    for entry in layers:
        for source in entry["inbound"]:
            readers[source] = readers.get(source, 0) + 1
    plan = Plan(entries=[], output=output)
    by_name: dict[str, dict] = {}
    for entry in layers:
        kind, name = entry["class"], entry["name"]
        if kind == "BatchNormalization":
            source = entry["inbound"][0]
            _fold_batchnorm(entry, by_name.get(source), readers.get(source, 0))
            plan.alias[name] = source
        elif is_softmax(entry) and name == output:
            log(f"[hgq_chip] dropped the final softmax ({name}): the imported model outputs logits "
                "(the argmax, i.e. the predicted class, is unchanged)")
            plan.alias[name] = entry["inbound"][0]
        elif kind in SUPPORTED:
            plan.entries.append(entry)
            by_name[name] = entry
        else:
            hint = import_hint(kind)
            raise UnsupportedLayerError(
                f"{name}: QKeras/Keras layer {kind} cannot be imported; {hint or f'supported: {SUPPORTED}'}"
            )
    for entry in plan.entries:
        entry["inbound"] = [source if source in input_names else plan.resolve(source) for source in entry["inbound"]]
        for source in entry["inbound"]:
            plan.consumers.setdefault(source, []).append(entry["name"])
    plan.output = plan.resolve(output)
    return plan
