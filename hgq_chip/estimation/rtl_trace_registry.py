"""Which function traces which layer class into da4ml logic (``estimation/rtl.py`` dispatches here).

A trace is ``trace(layer, record, inputs: list) -> output``: ``record`` is the layer's
:class:`~hgq_chip.conversion.records.LayerRecord` from ``conversion.precision.derive`` (types,
quantized weights, tables), ``inputs`` the da4ml FixedVariableArrays the layer reads (no batch
axis), the result the layer's output array. Lookup follows the MRO, as the precision rules do.
"""

from __future__ import annotations

from collections.abc import Callable

Trace = Callable[..., object]
_TRACES: dict[type, Trace] = {}


def traces(*classes):
    """Register ``fn(layer, record, inputs) -> output`` as the RTL trace of ``classes``."""

    def register(fn: Trace) -> Trace:
        for cls in classes:
            _TRACES[cls] = fn
        return fn

    return register


def find_trace(layer) -> Trace | None:
    """The trace of ``layer``'s class or its nearest registered base class (None: none)."""
    for cls in type(layer).__mro__:
        if cls in _TRACES:
            return _TRACES[cls]
    return None


def stage_types(record) -> dict:
    """The record's hls4ml stages by name: {stage name: {key: FixedFormat}}."""
    return {stage.name: stage.types for stage in record.hls_layers}
