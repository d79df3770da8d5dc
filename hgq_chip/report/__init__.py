"""Reports a person would rather look at: tables, PNG plots and one HTML/Markdown page.

Plots need the optional ``plot`` extra (matplotlib), imported only when drawing.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "Conversion": ".conversion",
    "WeightBits": ".conversion",
    "load_conversion": ".conversion",
    "load_pareto": ".conversion",
    "load_trajectories": ".conversion",
    "plot_bit_heatmaps": ".plots",
    "plot_bit_histograms": ".plots",
    "plot_pareto": ".plots",
    "plot_trajectories": ".plots",
    "write_report": ".page",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
