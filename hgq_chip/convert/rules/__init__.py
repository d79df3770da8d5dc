"""Precision rules, one module per family of layers; importing them registers them.

A new layer type gets a rule here (``@rule(LayerClass)`` from ``..precision``) and an hls4ml
handler (``@handler(LayerClass)`` from ``..hls_handlers``).
"""

from . import activation, conv, dense, structure  # noqa: F401
