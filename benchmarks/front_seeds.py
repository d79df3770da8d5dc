"""Several seeds' Pareto fronts of ``pareto_mnist16.py``, ours against HGQ2's, from the runs' JSON files.

    python benchmarks/front_seeds.py --ours s0.json s1.json s2.json [--hgq2 h0.json h1.json h2.json]

Each JSON file is what ``pareto_mnist16.py --json FILE`` wrote for one seed (``--models hgq_chip``
and, run with a Python that has HGQ2, ``--models hgq2``). For every seed the script prints our
front in HGQ2's EBOPs convention (``ebops_conventions.py``: sign bits excluded, plus a bias
term; HGQ2's front is measured only so), and for every point of the same seed's HGQ2 front our
cheapest point that is at least as accurate and no more expensive (test accuracy; ranges traced
on the training set). Then the same against HGQ2's 500-epoch reference points
(``pareto_mnist16.HGQ2_REFERENCE_500``) and, last, the seeds pooled: every HGQ2 point of any
seed against our points of all seeds. No training happens here.
"""

from __future__ import annotations

import argparse
import json

from pareto_mnist16 import HGQ2_REFERENCE_500, non_dominated, print_dominance

KEY = "ebops_hgq2"


def load(paths: list[str], name: str) -> dict[int, list[dict]]:
    """{seed: the run's measured points} for the model ``name`` ("hgq_chip" or "HGQ2")."""
    runs = {}
    for path in paths:
        with open(path) as handle:
            run = json.load(handle)
        if name not in run:
            raise SystemExit(f"{path} has no {name} points (was it run with --models {name.lower()}?)")
        runs[int(run["seed"])] = run[name]
    return runs


def print_front(label: str, points: list[dict]) -> None:
    front = non_dominated(points, KEY)
    print(f"\n{label}: {len(front)} front points (test accuracy @ EBOPs, HGQ2 convention)")
    print("  " + ", ".join(f"{p['accuracy']:.4f}@{p[KEY] / 1e3:.1f}k" for p in front))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ours", nargs="+", required=True, help="pareto_mnist16 JSON files of hgq_chip runs")
    parser.add_argument("--hgq2", nargs="*", default=[], help="pareto_mnist16 JSON files of HGQ2 runs")
    args = parser.parse_args(argv)
    ours, theirs = load(args.ours, "hgq_chip"), load(args.hgq2, "HGQ2")
    reference = [{"accuracy": a, KEY: e} for a, e in HGQ2_REFERENCE_500]
    for seed in sorted(ours):
        print(f"\n===== seed {seed}")
        print_front("hgq_chip", ours[seed])
        front = non_dominated(ours[seed], KEY)
        if seed in theirs:
            print_front("HGQ2", theirs[seed])
            print_dominance(front, non_dominated(theirs[seed], KEY), KEY, label=f"HGQ2 seed {seed}")
        print_dominance(front, reference, KEY, label="HGQ2 500-epoch reference")
    pooled = [p for points in ours.values() for p in points]
    if theirs:
        print(f"\n===== seeds pooled: every HGQ2 front point of seeds {sorted(theirs)} against our points of seeds "
              f"{sorted(ours)}")
        their_points = [p for seed in sorted(theirs) for p in non_dominated(theirs[seed], KEY)]
        print_dominance(non_dominated(pooled, KEY), their_points, KEY, label="HGQ2 (any seed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
