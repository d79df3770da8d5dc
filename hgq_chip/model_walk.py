"""Finding hgq_chip's quantized layers and quantizers inside any Keras model."""

from __future__ import annotations

from collections.abc import Iterator

import keras


def iter_layers(model) -> Iterator[keras.layers.Layer]:
    """Every layer of ``model``, descending into nested models, in model order."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model) or hasattr(layer, "layers"):
            yield from iter_layers(layer)


def iter_quantizers(model):
    """Every quantizer of every layer (``layer.quantizers()``), nested models included."""
    for layer in iter_layers(model):
        if hasattr(layer, "quantizers"):
            yield from layer.quantizers()


def iter_costed_layers(model):
    """Layers that contribute EBOPs (they define ``ebops_exact``)."""
    return (layer for layer in iter_layers(model) if hasattr(layer, "ebops_exact"))


def adaqat_layers(model) -> list:
    """Every AdaQAT layer of ``model`` (nested models included), in model order."""
    from .layers.adaqat import AdaQATLayerMixin

    return [layer for layer in iter_layers(model) if isinstance(layer, AdaQATLayerMixin)]
