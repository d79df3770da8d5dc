"""Layers ``convert`` accepts whose firmware arithmetic has no RTL trace yet: refused by name.

ASQDense/ASQConv1D/2D run our own shift-and-add template (``firmware_templates/nnet_asq_post.h``:
an adaptive input scale computed per sample, level tables, shifted partial sums): it is not
replayed on da4ml's arrays, so a trace would not compute what the firmware computes.
``trace_model`` raises UnsupportedLayerError for them before anything is built; ``convert``
(the HLS project) still takes them.
"""

from __future__ import annotations

from ..errors import UnsupportedLayerError
from ..layers.asq_post import ASQDense
from ..layers.asq_post_conv import ASQConv1D, ASQConv2D
from .rtl_trace_registry import traces

_WHY = {
    "ASQDense": "its shift-and-add ASQ/POST template (adaptive input scale, level tables) has no RTL trace",
    "ASQConv1D": "its shift-and-add ASQ/POST template (adaptive input scale, level tables) has no RTL trace",
    "ASQConv2D": "its shift-and-add ASQ/POST template (adaptive input scale, level tables) has no RTL trace",
}
_ADVICE = {
    "ASQDense": "use HDense (or ADense) for RTL, or `hgq_chip convert` for the HLS project",
    "ASQConv1D": "use HConv1D (or AConv1D) for RTL, or `hgq_chip convert` for the HLS project",
    "ASQConv2D": "use HConv2D (or AConv2D) for RTL, or `hgq_chip convert` for the HLS project",
}


@traces(ASQDense, ASQConv1D, ASQConv2D)
def refuse(layer, record, inputs):
    name = next(cls.__name__ for cls in type(layer).__mro__ if cls.__name__ in _WHY)
    raise UnsupportedLayerError(f"layer {layer.name!r} ({type(layer).__name__}): {_WHY[name]}; {_ADVICE[name]}")
