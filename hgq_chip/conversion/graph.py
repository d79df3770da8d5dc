"""Walking a Keras functional/Sequential model in topological order with tensor links."""

from __future__ import annotations

from dataclasses import dataclass

import keras

from ..errors import UnsupportedLayerError


@dataclass(frozen=True)
class GraphNode:
    layer: keras.layers.Layer
    inputs: tuple  # KerasTensors
    outputs: tuple


def _as_tuple(tensors) -> tuple:
    if tensors is None:
        return ()
    return tuple(tensors) if isinstance(tensors, (list, tuple)) else (tensors,)


def graph_nodes(model: keras.Model) -> list[GraphNode]:
    """One node per layer call, inputs before consumers; input layers are skipped."""
    if not model.built or not getattr(model, "inputs", None):
        raise UnsupportedLayerError(
            "the model has no defined inputs; build it as a functional or Sequential model with keras.Input"
        )
    nodes = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            raise UnsupportedLayerError(
                f"nested model {layer.name!r} is not supported; flatten it into one functional model"
            )
        try:
            inputs, outputs = _as_tuple(layer.input), _as_tuple(layer.output)
        except (AttributeError, ValueError) as error:
            raise UnsupportedLayerError(
                f"layer {layer.name!r} is called more than once (shared weights); "
                "firmware needs one instance per call: use separate layers"
            ) from error
        nodes.append(GraphNode(layer, inputs, outputs))
    return nodes
