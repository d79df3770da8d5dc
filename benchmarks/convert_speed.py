"""Conversion and C-simulation compile time for a jet-tagging-sized MLP (16 -> 64 -> 32 -> 32 -> 5).

Times hgq_chip's convert (type derivation + hls4ml project writing), the g++ build of
the C simulation, and one C-simulation pass; then, only if HGQ2 is installed (it is not a
dependency of hgq_chip), the same architecture built with HGQ2 and converted by hls4ml.
The weights are random and calibration uses random inputs: conversion cost does not
depend on what the network learned, only on its size and bit-widths.

    python benchmarks/convert_speed.py [--repeat 3] [--samples 1000] [--output-dir out/bench]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

import hgq_chip
from hgq_chip.conversion.csim import CSimulation
from hgq_chip.layers import HDense, HQuantize

WIDTHS = (64, 32, 32, 5)
N_FEATURES = 16


def hgq_chip_model() -> keras.Model:
    inputs = keras.Input((N_FEATURES,))
    x = HQuantize()(inputs)
    for width in WIDTHS[:-1]:
        x = HDense(width, activation="relu")(x)
    return keras.Model(inputs, HDense(WIDTHS[-1])(x), name="jet_mlp")


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def bench_hgq_chip(x, directory: Path, repeat: int) -> dict[str, list[float]]:
    model = hgq_chip_model()
    hgq_chip.calibrate(model, x)
    times = {"convert": [], "compile": [], "csim": []}
    quiet = {"log": lambda message: None}
    for _ in range(repeat):
        _, seconds = timed(lambda: hgq_chip.convert(model, directory, force=True, **quiet))
        times["convert"].append(seconds)
        sim = CSimulation(directory)
        _, seconds = timed(sim.build)
        times["compile"].append(seconds)
        _, seconds = timed(lambda: sim.run([x], [WIDTHS[-1]]))
        times["csim"].append(seconds)
    report = hgq_chip.verify(model, directory, x, **quiet)
    print(f"hgq_chip: {report.describe()}; EBOPs {hgq_chip.ebops(model)}")
    return times


def bench_hgq2(x, directory: Path, repeat: int) -> dict[str, list[float]] | None:
    """HGQ2 (package ``hgq``) + hls4ml's own converter, when HGQ2 is installed."""
    try:
        from hgq.layers import QDense
        from hgq.utils import trace_minmax
    except ImportError:
        print("HGQ2 baseline skipped: HGQ2 (`import hgq`) is not installed; `pip install HGQ2` to compare")
        return None
    import hls4ml

    inputs = keras.Input((N_FEATURES,))
    y = inputs
    for width in WIDTHS[:-1]:
        y = QDense(width, activation="relu")(y)
    model = keras.Model(inputs, QDense(WIDTHS[-1])(y))
    trace_minmax(model, x)
    times = {"convert": [], "compile": [], "csim": []}
    for _ in range(repeat):
        shutil.rmtree(directory, ignore_errors=True)
        hls_model, seconds = timed(lambda: hls4ml.converters.convert_from_keras_model(
            model, output_dir=str(directory), backend="Vitis", io_type="io_parallel"))
        _, write_seconds = timed(hls_model.write)
        times["convert"].append(seconds + write_seconds)
        _, seconds = timed(hls_model.compile)
        times["compile"].append(seconds)
        _, seconds = timed(lambda: hls_model.predict(x))
        times["csim"].append(seconds)
    return times


def show(name: str, times: dict[str, list[float]]) -> None:
    cells = "  ".join(f"{step} {statistics.median(values):6.2f} s" for step, values in times.items())
    print(f"{name:<22}{cells}   (median of {len(times['convert'])})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--samples", type=int, default=1000, help="samples for calibration and the csim pass")
    parser.add_argument("--output-dir", default="out/bench")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(args.samples, N_FEATURES)).astype(np.float32)
    root = Path(args.output_dir)
    print(f"MLP {N_FEATURES} -> {' -> '.join(map(str, WIDTHS))}, {args.samples} samples, {args.repeat} repeats")
    results = {"hgq_chip": bench_hgq_chip(x, root / "hgq_chip", args.repeat)}
    baseline = bench_hgq2(x, root / "hgq2", args.repeat)
    if baseline is not None:
        results["HGQ2 + hls4ml"] = baseline
    for name, times in results.items():
        show(name, times)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
