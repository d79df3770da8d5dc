"""Bit-width trajectories of AdaQAT training, as in the paper's Figure 1 (matplotlib optional)."""

from __future__ import annotations

import csv
import os

from .adaqat import AdaQATController

HISTORY_PREFIX = "adaqat/"


def load_trajectories(source) -> tuple[dict[str, tuple[list, list]], str]:
    """``{"<layer>/<kind>": (x, ⌈N⌉)}`` and the x-axis name, from a controller, its
    ``trajectory`` rows, the CSV it wrote, a Keras History or a ``history.history`` dict."""
    history = getattr(source, "history", None)
    if isinstance(history, dict) and not isinstance(source, dict):
        source = history
    if isinstance(source, dict):
        series = {
            key[len(HISTORY_PREFIX):]: (list(range(1, len(values) + 1)), [int(v) for v in values])
            for key, values in source.items() if key.startswith(HISTORY_PREFIX)
        }
        return series, "epoch"
    if isinstance(source, AdaQATController):
        rows = source.trajectory
    elif isinstance(source, (str, os.PathLike)):
        with open(source, newline="") as handle:
            rows = list(csv.DictReader(handle))
    else:
        rows = list(source)
    series: dict[str, tuple[list, list]] = {}
    for row in rows:
        steps, ceils = series.setdefault(f"{row['layer']}/{row['kind']}", ([], []))
        steps.append(int(row["step"]))
        ceils.append(int(row["ceil"]))
    return series, "training step"


def plot_bitwidth_trajectories(history_or_csv, path, accuracy=None, title="AdaQAT bit-widths"):
    """Plot ⌈N_w⌉ (top) and ⌈N_a⌉ (bottom) of every layer; optionally accuracy on a second axis.

    ``accuracy``: a list of per-epoch values, or None to take ``"accuracy"`` from a History.
    Writes ``path`` (any matplotlib format) and returns it.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("plot_bitwidth_trajectories needs matplotlib: pip install matplotlib") from error
    series, x_label = load_trajectories(history_or_csv)
    if not series:
        raise ValueError("no AdaQAT bit-width trajectory found (was AdaQATController among the callbacks?)")
    history = getattr(history_or_csv, "history", history_or_csv)
    if accuracy is None and isinstance(history, dict):
        accuracy = history.get("accuracy")
    figure, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    layers = sorted({name.rsplit("/", 1)[0] for name in series})
    for axis, kind, label in ((axes[0], "w", "⌈N_w⌉ (weights)"), (axes[1], "a", "⌈N_a⌉ (activations)")):
        for index, layer in enumerate(layers):
            if f"{layer}/{kind}" in series:
                xs, ceils = series[f"{layer}/{kind}"]
                axis.step(xs, ceils, where="post", color=f"C{index}", label=layer)
        axis.set_ylabel(label)
        axis.yaxis.get_major_locator().set_params(integer=True)
    axes[0].legend(fontsize="small", ncol=min(len(layers), 4))
    axes[1].set_xlabel(x_label)
    if accuracy is not None:
        right = axes[0].twinx()
        epochs = range(1, len(accuracy) + 1)
        if x_label != "epoch":
            last = max(max(xs) for xs, _ in series.values())
            epochs = [last * e / len(accuracy) for e in epochs]
        right.plot(list(epochs), list(accuracy), color="black", alpha=0.4, linestyle=":")
        right.set_ylabel("accuracy (dotted)")
    axes[0].set_title(title)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
