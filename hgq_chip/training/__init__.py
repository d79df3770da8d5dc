"""Resource-aware training: beta schedules, a PID controller on beta, EBOPs logging, Pareto checkpoints.

Typical use (order matters: callbacks that read ``logs["ebops"]`` come after ``EBOPsMetric``)::

    callbacks = [ResetRanges(), LogRampBeta(1e-6, 1e-4, stop=epochs - 1), EBOPsMetric(), ParetoCheckpoint(out)]
"""

from .ebops import EBOPsMetric, ResetRanges, exact_ebops_in_logs
from .pareto import ParetoCheckpoint
from .pid import PIDBeta
from .schedules import ConstantBeta, LinearBeta, LogRampBeta, PiecewiseBeta

__all__ = [
    "ConstantBeta",
    "EBOPsMetric",
    "LinearBeta",
    "LogRampBeta",
    "PIDBeta",
    "ParetoCheckpoint",
    "PiecewiseBeta",
    "ResetRanges",
    "exact_ebops_in_logs",
]

from .adaqat import AdaQATController, total_bitops  # noqa: E402
from .adaqat_plot import plot_bitwidth_trajectories  # noqa: E402

__all__ += ["AdaQATController", "plot_bitwidth_trajectories", "total_bitops"]
