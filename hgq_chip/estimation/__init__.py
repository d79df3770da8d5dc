"""Resource estimates from the converter's derived formats, and real synthesis through yosys."""

from .estimate import LayerEstimate, ModelEstimate, estimate, format_estimate

__all__ = ["LayerEstimate", "ModelEstimate", "estimate", "format_estimate"]
