"""Layer options the firmware reproduces exactly, checked before anything is written.

Each family declares, next to its rule (``family.limits`` in ``rules/<family>.py``), the
constructor options (and call shapes) whose values its precision rule and hls4ml handler
reproduce bit for bit (``option.Option``); any other value is refused with a typed error
naming the layer, the option and what to use instead. Limits are looked up along each
layer's class hierarchy, so subclasses (BatchNorm-fused, AdaQAT, ASQ layers) are checked by
their Keras parent's entries plus their own. The one limit of every layer, its dtype, is here.
"""

from __future__ import annotations

import keras

from . import rules  # noqa: F401  (importing the families fills the registries of family.py)
from .family import find_rule, limits, options_of  # noqa: F401  (options_of: re-exported)
from .option import BOTH, STREAM, Option  # noqa: F401  (re-exported)

limits(keras.layers.Layer, options=[
    Option("dtype", lambda layer, node: layer.compute_dtype, lambda v: v in ("float32", "float64"),
           "keep the layer's dtype float32 (or float64): in lower precision Keras rounds values the "
           "firmware keeps exact"),
])


def check_layer_options(nodes, io_type: str) -> None:
    """Raise the option's typed error for the first layer option the firmware would not reproduce.

    ``nodes`` are ``graph.GraphNode`` s; ``io_type`` selects the io-specific limits.
    """
    for node in nodes:
        layer = node.layer
        if find_rule(layer) is None:
            continue  # precision.derive refuses it, listing the supported layers
        for option in options_of(layer):
            if io_type not in option.io_types:
                continue
            value = option.value(layer, node)
            if not option.exact(value):
                where = "" if option.io_types == BOTH else f" in {io_type}"
                raise option.error(
                    f"layer {layer.name!r} ({type(layer).__name__}): {option.name}={value!r} is not supported"
                    f"{where}; {option.advice}"
                )
