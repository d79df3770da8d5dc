"""One checked layer option (:class:`Option`) and the options several families share.

A family declares its limits with ``family.limits(*classes, options=[...])`` next to its rule;
``layer_options.check_layer_options`` checks them before anything is written. Sources of the
shared limits: hls4ml 1.3's Keras 3 handlers ignore ``channels_first`` layouts; its Dense and
Conv templates apply only linear and relu activations exactly (others are tables).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import UnsupportedConfigurationError, UnsupportedLayerError

BOTH = ("io_parallel", "io_stream")
STREAM = ("io_stream",)


@dataclass(frozen=True)
class Option:
    """One checked option: how to read it from a layer call, which values are exact, the fix.

    ``value(layer, node)`` returns the option's value; ``exact(value)`` says whether the
    firmware reproduces it. ``io_types`` limits the check to those io types; ``error`` is
    the typed error raised (a layer limit, or a limit of the chosen configuration).
    """

    name: str
    value: Callable
    exact: Callable
    advice: str
    io_types: tuple = BOTH
    error: type = UnsupportedLayerError


def attr(name: str) -> Callable:
    """``value`` reading the layer attribute ``name`` (None when absent)."""
    return lambda layer, node: getattr(layer, name, None)


def tuple_attr(name: str) -> Callable:
    """``value`` reading the layer attribute ``name`` as a tuple."""
    return lambda layer, node: tuple(getattr(layer, name))


def input_shapes(layer, node) -> list:
    """The shapes (no batch axis) of the node's inputs."""
    return [tuple(t.shape[1:]) for t in node.inputs]


def all_ones(value) -> bool:
    return all(int(v) == 1 for v in value)


def io_types_option(io_types: tuple, message: str) -> Option:
    """The refusal of every io type outside ``io_types`` (a layer whose firmware exists only for
    those), with ``message`` as its advice: the one place such a refusal is built."""
    refused = tuple(io for io in BOTH if io not in io_types)
    return Option("io_type", lambda layer, node: next(iter(refused)), lambda v: False, message, io_types=refused,
                  error=UnsupportedConfigurationError)


CHANNELS_LAST = Option(
    "data_format", attr("data_format"), lambda v: v == "channels_last",
    "use data_format='channels_last' (put keras.layers.Permute before the layer if your data is channels-first)",
)


def _activation_name(layer, node):
    return getattr(layer.activation, "__name__", str(layer.activation))


FUSED_ACTIVATION = Option(
    "activation", _activation_name, lambda v: v in ("linear", "relu"),
    "use activation='relu' or None here and put an HActivation layer after it (exact tables)",
)
