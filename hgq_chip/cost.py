"""Resource cost: exact integer EBOPs of the quantized model and its differentiable surrogate."""

from __future__ import annotations

from keras import ops

from .model_walk import iter_costed_layers


def ebops(model) -> int:
    """Exact EBOPs: sum over every constant multiplication of activation bits x weight bits."""
    return int(sum(layer.ebops_exact() for layer in iter_costed_layers(model)))


def ebops_per_layer(model) -> dict[str, int]:
    return {layer.name: layer.ebops_exact() for layer in iter_costed_layers(model)}


def ebops_surrogate(model):
    """The differentiable EBOPs estimate (float bits) that training penalises."""
    terms = [layer.ebops_surrogate() for layer in iter_costed_layers(model)]
    return ops.sum(ops.stack(terms)) if terms else ops.convert_to_tensor(0.0)


def set_beta(model, beta: float) -> None:
    """Set the EBOPs weight in the loss on every quantized layer."""
    for layer in iter_costed_layers(model):
        layer.beta.assign(float(beta))
