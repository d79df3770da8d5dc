"""PNG plots: Pareto front, per-layer bit-width histograms and heat maps, AdaQAT trajectories.

matplotlib is an optional extra (``hgq_chip[plot]``), imported only when a plot is drawn.
Figures are built with the object-oriented API (``matplotlib.figure.Figure``), never pyplot,
so plotting neither needs a display nor changes the backend of the caller's session.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import ToolMissingError
from .conversion import WeightBits, load_trajectories

DPI = 120
PRUNED_COLOUR = "#e6194b"  # red: outside viridis, so a pruned weight never looks like a narrow one
KERNEL_COLOUR = "#4363d8"
BIAS_COLOUR = "#f58231"


def _matplotlib():
    try:
        import matplotlib
    except ImportError as error:
        raise ToolMissingError("plots need matplotlib; install it with pip install 'hgq_chip[plot]'") from error
    return matplotlib


def _figure(width: float, height: float):
    _matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def _grid(n: int, max_columns: int = 3) -> tuple[int, int]:
    columns = min(n, max_columns)
    return math.ceil(n / columns), columns


def plot_pareto(entries: list[dict], path, metric_name: str = "validation metric", luts=None) -> Path:
    """The metric of each Pareto checkpoint against its exact EBOPs and, given ``luts`` (one
    per entry, or a ``luts`` key in every entry), against the estimated LUTs."""
    if not entries:
        raise ValueError("the Pareto front is empty; nothing to plot")
    entries = sorted(entries, key=lambda e: e["ebops"])
    if luts is None and all("luts" in e for e in entries):
        luts = [e["luts"] for e in entries]
    panels = [("ebops", [e["ebops"] for e in entries], "EBOPs (effective bit operations, exact)")]
    if luts is not None:
        if len(luts) != len(entries):
            raise ValueError(f"got {len(luts)} LUT values for {len(entries)} Pareto entries")
        panels.append(("luts", list(luts), "estimated LUTs"))
    figure = _figure(5.5 * len(panels), 4.2)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    metric = [e["metric"] for e in entries]
    for ax, (_, cost, label) in zip(axes, panels):
        order = np.argsort(cost, kind="stable")
        xs, ys = np.asarray(cost, float)[order], np.asarray(metric, float)[order]
        ax.step(xs, ys, where="post", color="0.6", linewidth=1, label="front")
        ax.scatter(xs, ys, color=KERNEL_COLOUR, zorder=3, label="checkpoint (epoch)")
        for x, y, e in zip(xs, ys, [entries[i] for i in order]):
            if "epoch" in e:
                ax.annotate(str(e["epoch"]), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        if xs.min() > 0 and xs.max() / xs.min() > 20:
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(metric_name)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    count = f"{len(entries)} checkpoint{'' if len(entries) == 1 else 's'}"
    figure.suptitle(f"Pareto front: {metric_name} vs cost ({count})")
    return _save(figure, path)


def _layer_groups(weights: list[WeightBits]) -> dict[str, list[WeightBits]]:
    groups: dict[str, list[WeightBits]] = {}
    for w in weights:
        groups.setdefault(w.layer, []).append(w)
    return groups


def plot_bit_histograms(weights: list[WeightBits], path) -> Path:
    """Per layer: how many weights have each bit-width; pruned weights (0 bits) in red."""
    groups = _layer_groups(weights)
    if not groups:
        raise ValueError("no weights to plot")
    rows, columns = _grid(len(groups))
    figure = _figure(4.2 * columns, 3.3 * rows)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    top = max(int(w.bits.max(initial=0)) for w in weights)
    edges = np.arange(1, max(top, 1) + 2)
    for ax, (layer, tensors) in zip(axes, groups.items()):
        bottom = np.zeros(edges.size - 1)
        for w in tensors:
            counts, _ = np.histogram(w.kept, bins=edges)
            colour = KERNEL_COLOUR if w.name == "kernel" else BIAS_COLOUR
            ax.bar(edges[:-1], counts, bottom=bottom, color=colour, width=0.8, label=w.name)
            bottom = bottom + counts
        pruned = sum(int(w.pruned.sum()) for w in tensors)
        total = sum(w.bits.size for w in tensors)
        kept = np.concatenate([w.kept for w in tensors])
        ax.bar([0], [pruned], color=PRUNED_COLOUR, width=0.8, label="pruned (0 bits)")
        ax.set_ylim(0, 1.35 * max(pruned, bottom.max(initial=0), 1))  # headroom for the legend
        mean = f"mean {kept.mean():.2f} bits" if kept.size else "all pruned"
        ax.set_title(f"{layer}: {mean}, {100 * pruned / total:.0f}% pruned", fontsize=10)
        ax.set_xlabel("bit-width (bits)")
        ax.set_ylabel("number of weights")
        ax.set_xticks(np.arange(0, edges[-1]))
        ax.legend(fontsize=8, loc="best")
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    figure.suptitle("Weight bit-widths per layer")
    return _save(figure, path)


def kernel_matrix(w: WeightBits) -> tuple[np.ndarray, np.ndarray]:
    """(bits, pruned) as 2-D (inputs x outputs): conv taps and input channels are flattened."""
    bits = w.bits.reshape(-1, w.bits.shape[-1]) if w.bits.ndim >= 2 else w.bits.reshape(1, -1)
    return bits, w.pruned.reshape(bits.shape)


def plot_bit_heatmaps(weights: list[WeightBits], path, name: str = "kernel") -> Path:
    """Per layer, each ``name`` weight's bit-width (inputs x outputs); pruned weights in red.

    The colour scale is discrete: red for pruned (0 bits), then one viridis step per bit.
    """
    _matplotlib()
    from matplotlib import colormaps
    from matplotlib.colors import BoundaryNorm, ListedColormap

    tensors = [w for w in weights if w.name == name]
    if not tensors:
        raise ValueError(f"no {name!r} weights to plot")
    top = max(1, max(int(w.bits.max(initial=0)) for w in tensors))
    cmap = ListedColormap([PRUNED_COLOUR] + list(colormaps["viridis"].resampled(top)(np.arange(top))))
    norm = BoundaryNorm(np.arange(-0.5, top + 1.5), cmap.N)
    rows, columns = _grid(len(tensors))
    figure = _figure(4.6 * columns, 4.2 * rows)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, w in zip(axes, tensors):
        bits, pruned = kernel_matrix(w)
        image = ax.imshow(np.where(pruned, 0, bits), cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
        ax.set_title(f"{w.layer} {name} {tuple(w.bits.shape)}: {100 * pruned.mean():.0f}% pruned", fontsize=10)
        ax.set_xlabel("output unit / channel")
        ax.set_ylabel("input (taps x channels)" if w.bits.ndim > 2 else "input")
        colorbar = figure.colorbar(image, ax=ax, ticks=np.arange(0, top + 1))
        colorbar.ax.set_yticklabels(["0 pruned"] + [str(b) for b in range(1, top + 1)])
        colorbar.ax.set_title("bits", fontsize=9)
    for ax in axes[len(tensors):]:
        ax.set_visible(False)
    figure.suptitle(f"Per-weight bit-widths ({name}); red = pruned")
    return _save(figure, path)


def plot_trajectories(trajectories, path, title: str = "AdaQAT bit-widths during training") -> Path:
    """Each layer's real-valued bit-width N (solid) and the ceil(N) it quantizes with (dotted).

    ``trajectories``: ``{name: [N per step]}``, ``{name: (steps, values)}`` or a CSV path
    (see :func:`~hgq_chip.report.conversion.load_trajectories`).
    """
    series = load_trajectories(trajectories)
    figure = _figure(7.5, 4.2)
    ax = figure.subplots()
    for index, (name, (steps, values)) in enumerate(series.items()):
        colour = f"C{index % 10}"
        values = np.asarray(values, dtype=float)
        ax.plot(steps, values, color=colour, linewidth=1.5, label=name)
        ax.step(steps, np.ceil(values), where="post", color=colour, linewidth=1, linestyle=":")
    ax.plot([], [], color="0.4", linestyle=":", label="ceil(N): bits used")
    ax.set_xlabel("training step")
    ax.set_ylabel("bit-width N (bits)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper right", ncol=2 if len(series) > 6 else 1)
    ax.set_title(title)
    return _save(figure, path)
