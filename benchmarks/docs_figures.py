"""Draw the figures of the documentation's benchmark pages from the measured tables on those pages.

The numbers are the ones measured by the benchmark scripts and written into the pages (the
table is the record); this script only plots them, so a figure always shows the table beside it:

    python benchmarks/docs_figures.py     # rewrites docs/benchmarks/figures/*.svg (needs matplotlib)

Figures: ``large-models.svg`` (docs/benchmarks/large-models.md, from benchmarks/convert_scaling.py):
seconds against weights, log-log, for convert, estimate, the g++ compile of the C simulation and
the C simulation of 1000 samples; MLPs and CNNs marked apart.
"""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
LARGE_MODELS = DOCS / "large-models.md"
FIGURES = DOCS / "figures"


def large_model_rows(text: str) -> list[dict]:
    """The rows of the page's table: model, weights and seconds per phase (the first number of a cell)."""
    rows = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 6 or not re.match(r"^\d", cells[1]):
            continue
        first = [float(re.match(r"[\d.e+-]+", cell).group()) for cell in cells[1:]]
        rows.append({"model": cells[0], "weights": first[0], "convert": first[1], "estimate": first[2],
                     "g++ compile": first[3], "C simulation, 1000 samples": first[4]})
    if len(rows) < 3:
        raise ValueError(f"{LARGE_MODELS} has no table of measured models")
    return rows


def draw_large_models(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "hgq_chip"  # stable ids: the same table gives the same file
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    phases = ["convert", "estimate", "g++ compile", "C simulation, 1000 samples"]
    for color, phase in zip(("C0", "C1", "C2", "C3"), phases):
        for kind, marker in (("MLP", "o"), ("CNN", "s")):
            points = sorted((row["weights"], row[phase]) for row in rows if row["model"].startswith(kind))
            ax.plot([w for w, _ in points], [t for _, t in points], marker=marker, color=color,
                    linestyle="-" if kind == "MLP" else "--", label=f"{phase} ({kind})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("weights")
    ax.set_ylabel("seconds")
    ax.set_title("benchmarks/convert_scaling.py: one run, 2 shared cores")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)


def main() -> int:
    path = FIGURES / "large-models.svg"
    draw_large_models(large_model_rows(LARGE_MODELS.read_text()), path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
