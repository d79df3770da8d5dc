"""Reports a person would rather look at: tables, PNG plots and one HTML/Markdown page.

Plots need the optional ``plot`` extra (matplotlib), imported only when drawing.
"""

from .conversion import Conversion, WeightBits, load_conversion, load_pareto, load_trajectories
from .page import write_report
from .plots import plot_bit_heatmaps, plot_bit_histograms, plot_pareto, plot_trajectories

__all__ = [
    "Conversion",
    "WeightBits",
    "load_conversion",
    "load_pareto",
    "load_trajectories",
    "plot_bit_heatmaps",
    "plot_bit_histograms",
    "plot_pareto",
    "plot_trajectories",
    "write_report",
]
