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


def as_functional(model: keras.Model) -> keras.Model:
    """Sequential models become functional ones over the same layers, so inputs are named layers."""
    if isinstance(model, keras.Sequential):
        return keras.Model(model.inputs, model.outputs, name=model.name)
    return model


def _as_tuple(tensors) -> tuple:
    if tensors is None:
        return ()
    return tuple(tensors) if isinstance(tensors, (list, tuple)) else (tensors,)


def call_count(layer) -> int:
    """How often ``layer`` was called on symbolic tensors, inside this model or any other.

    Keras 3 has no public API for a layer's call sites (``layer.input`` silently returns the
    first call's tensors), so this reads the private ``_inbound_nodes`` list, which is what
    Keras' own functional API and hls4ml's parser walk; kept here, in one place.
    """
    return len(getattr(layer, "_inbound_nodes", ()) or ())


def _check_called_once(layer) -> None:
    calls = call_count(layer)
    if calls > 1:
        raise UnsupportedLayerError(
            f"layer {layer.name!r} is called {calls} times (shared weights, or also called outside this "
            "model); firmware needs one instance per call: build the model with a separate layer for each "
            "call (copy the weights with set_weights if they must stay equal)"
        )


def graph_nodes(model: keras.Model) -> list[GraphNode]:
    """One node per layer call, inputs before consumers; input layers are skipped.

    Raises ``UnsupportedLayerError`` for a model without inputs, a nested model, or a layer
    called more than once (inside the model or also outside it).
    """
    if not model.built or not getattr(model, "inputs", None):
        raise UnsupportedLayerError(
            "the model has no defined inputs; build it as a functional or Sequential model with keras.Input"
        )
    nodes = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            raise UnsupportedLayerError(
                f"nested model {layer.name!r} is not supported; flatten it into one functional model "
                "(call its layers directly on the outer model's tensors)"
            )
        _check_called_once(layer)
        if isinstance(layer, keras.layers.InputLayer):
            continue
        try:
            inputs, outputs = _as_tuple(layer.input), _as_tuple(layer.output)
        except (AttributeError, ValueError) as error:
            raise UnsupportedLayerError(
                f"layer {layer.name!r} has no single call inside the model; build it with one call per layer"
            ) from error
        nodes.append(GraphNode(layer, inputs, outputs))
    return nodes
