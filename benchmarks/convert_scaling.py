"""How conversion, estimate and C simulation scale with the model: 10^3 to 10^6 weights.

Models: MLPs and CNNs on 28x28 inputs (MNIST-shaped) with per-weight bits (per-element
quantizers everywhere, random fractional bits so that part of the weights round to zero, and
about a third of each kernel explicitly pruned), random weights, calibrated on random inputs:
conversion cost depends on the sizes and bit-widths, not on what the network learned.

Each model runs in its own child process (so its peak memory is its own) and reports:

- convert time split by phase (``hgq_chip.conversion.project.PHASES``): ``derive`` (checks,
  precision derivation, fingerprint, hls4ml config), ``hls4ml`` (hls4ml's conversion and
  project writing), ``reports`` (hls_config.yml, weight_types.csv, summary.json), ``facts``
  (estimate_inputs.json) and ``finish`` (manifest, atomic swap);
- ``estimate`` time (``hgq_chip.estimation.estimate`` on the project folder);
- C simulation: the compile time and the compiler's peak memory (max RSS of g++ and its
  children, from ``getrusage(RUSAGE_CHILDREN)`` of a wrapper process), the run time per
  1000 samples, and whether ``--samples`` random samples (beyond the calibrated range too)
  agree bit for bit with Keras (``np.array_equal``);
- the peak RSS of the model's process (Keras, conversion, verify).

It prints one table row per model, then the growth exponent b of each phase (least-squares
fit of log t = a + b log(weights) over the models with at least ``--fit-from`` weights, and
over those with at least 9*10^4, where fixed costs such as importing hls4ml no longer count) and
checks that every phase of ours grows at most like weights^1.2 and that convert (without
hls4ml's part, which we do not control, and without compiling) takes at most 2 s per 10^5
weights. Exit status 1 if a check fails.

    python benchmarks/convert_scaling.py [--max-weights 1e6] [--budget 3600] [--samples 1000]
        [--only mlp_1e5,cnn_1e5] [--no-compile] [--output-dir out/scaling] [--json rows.json]

Columns ``stmts``, ``pred s`` and ``pred MB`` are the generated statements and the compile time and
memory that ``hgq_chip.conversion.csim_cost`` predicts before compiling (``compile`` and ``cc MB``
are measured). Models over its limit are compiled anyway (``allow_large=True``; the benchmark
measures them on purpose) and marked in the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# name: (family, architecture). MLP: hidden widths on 784 inputs, 10 outputs. CNN: conv
# filter counts (3x3 kernels, each followed by 2x2 max pooling), then dense widths, 10 outputs.
MODELS = {
    "mlp_1e3": ("mlp", {"hidden": (1,)}),
    "mlp_3e3": ("mlp", {"hidden": (4,)}),
    "mlp_1e4": ("mlp", {"hidden": (12,)}),
    "mlp_3e4": ("mlp", {"hidden": (38,)}),
    "mlp_1e5": ("mlp", {"hidden": (128,)}),
    "mlp_3e5": ("mlp", {"hidden": (384,)}),
    "mlp_1e6": ("mlp", {"hidden": (1024, 192)}),
    "cnn_1e4": ("cnn", {"filters": (8, 16), "hidden": (24,)}),
    "cnn_1e5": ("cnn", {"filters": (16, 32), "hidden": (112,)}),
    "cnn_1e6": ("cnn", {"filters": (32, 64), "hidden": (600,)}),
}
OUR_PHASES = ("derive", "reports", "facts", "finish", "ours", "estimate")
MAX_EXPONENT = 1.2
LARGE = 9e4  # the second fit: models of about 10^5 weights and more, where fixed overheads no longer count
MAX_SECONDS_PER_1E5 = 2.0


def build_model(family: str, arch: dict, seed: int = 0):
    """The model of ``family``/``arch`` with random weights and bits, calibrated."""
    import keras
    import numpy as np

    import hgq_chip
    from hgq_chip.layers import HConv2D, HDense, HQuantize

    keras.utils.set_random_seed(seed)
    pe = {"granularity": "per-element"}
    quantizers = {"input_quantizer": pe, "kernel_quantizer": pe, "bias_quantizer": pe}
    shape = (28, 28) if family == "mlp" else (28, 28, 1)
    inputs = keras.Input(shape, name="image")
    x = HQuantize(pe)(inputs)
    if family == "mlp":
        x = keras.layers.Flatten()(x)
    for filters in arch.get("filters", ()):
        x = HConv2D(filters, 3, activation="relu", **quantizers)(x)
        x = keras.layers.MaxPooling2D(2)(x)
    if family == "cnn":
        x = keras.layers.Flatten()(x)
    for width in arch["hidden"]:
        x = HDense(width, activation="relu", **quantizers)(x)
    model = keras.Model(inputs, HDense(10, **quantizers)(x), name=f"{family}_scaling")
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            fan_in = int(np.prod(layer.kernel.shape[:-1]))
            kernel = rng.normal(0.0, 1.5 / np.sqrt(fan_in), layer.kernel.shape)
            kernel[rng.random(kernel.shape) < 0.3] = 0.0  # pruned
            layer.kernel.assign(kernel)
            layer.bias.assign(rng.normal(0.0, 0.25, layer.bias.shape))
        for q in getattr(layer, "quantizers", list)():
            lo, hi = (2, 6) if hasattr(q, "record_range") else (2, 7)
            q.f.assign(rng.integers(lo, hi + 1, size=q.f.shape).astype("float32"))
    hgq_chip.calibrate(model, rng.uniform(0.0, 1.0, (256, *shape)).astype("float32"))
    return model


def measured_build(project: Path) -> dict:
    """Compile the project's C simulation in a wrapper process; its seconds and the compiler's peak RSS."""
    code = (
        "import json, resource, sys, time\n"
        "from hgq_chip.conversion.csim import CSimulation\n"
        "start = time.perf_counter()\n"
        "CSimulation(sys.argv[1]).build(allow_large=True)\n"
        "print(json.dumps({'seconds': time.perf_counter() - start,\n"
        "                  'peak_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(project)], capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_one(name: str, directory: Path, samples: int, compile_csim: bool) -> dict:
    """Build, convert, estimate and (optionally) compile, run and check ``name``; one result row."""
    import resource

    import numpy as np

    import hgq_chip
    from hgq_chip.conversion.csim import CSimulation
    from hgq_chip.conversion.csim_cost import csim_cost
    from hgq_chip.conversion.project import convert
    from hgq_chip.estimation import estimate

    family, arch = MODELS[name]
    model = build_model(family, arch)
    row = {"model": name, "weights": int(sum(int(np.prod(w.shape)) for layer in model.layers
                                             if hasattr(layer, "kernel") for w in (layer.kernel, layer.bias)))}
    project = directory / name
    start = time.perf_counter()
    conversion = convert(model, project, force=True, replace_non_project=True, log=lambda message: None)
    row["convert"] = time.perf_counter() - start
    row.update(conversion.phase_seconds)
    row["ours"] = row["convert"] - row["hls4ml"]
    start = time.perf_counter()
    estimate(project)
    row["estimate"] = time.perf_counter() - start
    cost = csim_cost(project)
    row["statements"], row["predicted_compile"], row["predicted_mb"] = cost.statements, cost.seconds, cost.megabytes
    row["over_limit"] = not cost.fits
    if compile_csim:
        built = measured_build(project)
        if "error" in built:
            row["compile_error"] = built["error"]
        else:
            row["compile"], row["compile_mb"] = built["seconds"], built["peak_mb"]
            x = hgq_chip.random_inputs(model, samples, seed=1)[0]
            start = time.perf_counter()
            csim = CSimulation(project).run([x], [10])[0]
            row["csim_per_1000"] = (time.perf_counter() - start) * 1000 / samples
            keras_out = np.asarray(model.predict(x, batch_size=256, verbose=0), np.float64)
            row["bit_exact"] = bool(np.array_equal(keras_out, csim))
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    shutil.rmtree(project, ignore_errors=True)
    return row


def fit_exponent(rows: list[dict], key: str, fit_from: float) -> float | None:
    """Slope b of log(t) = a + b log(weights) over the rows with >= fit_from weights."""
    import numpy as np

    points = [(r["weights"], r[key]) for r in rows if r.get(key) and r["weights"] >= fit_from and r[key] > 0]
    if len({w for w, _ in points}) < 2:
        return None
    w, t = np.log(np.array(points, np.float64)).T
    return float(np.polyfit(w, t, 1)[0])


COLUMNS = [("model", "model", "{:<9}"), ("weights", "weights", "{:>9}"), ("convert", "convert", "{:>8.2f}"),
           ("derive", "derive", "{:>7.2f}"), ("hls4ml", "hls4ml", "{:>7.2f}"), ("reports", "reports", "{:>8.2f}"),
           ("facts", "facts", "{:>6.2f}"), ("ours", "ours", "{:>6.2f}"), ("estimate", "estim", "{:>6.2f}"),
           ("statements", "stmts", "{:>6}"), ("predicted_compile", "pred s", "{:>7.0f}"),
           ("compile", "compile", "{:>8.1f}"), ("predicted_mb", "pred MB", "{:>7.0f}"), ("compile_mb", "cc MB", "{:>7.0f}"),
           ("csim_per_1000", "csim/1k", "{:>8.2f}"), ("peak_rss_mb", "RSS MB", "{:>7.0f}"),
           ("bit_exact", "exact", "{!s:>6}")]


def format_row(row: dict) -> str:
    cells = []
    for key, title, fmt in COLUMNS:
        width = len(fmt.format(0 if "f}" in fmt or "0f" in fmt else "x" if key != "bit_exact" else True))
        value = row.get(key)
        cells.append(fmt.format(value) if value is not None else "-".rjust(max(width, len(title))))
    note = " (over the csim limit, compiled with allow_large)" if row.get("over_limit") and "compile" in row else ""
    note += f" compile failed: {row['compile_error']}" if "compile_error" in row else ""
    return " ".join(cells) + note


def header() -> str:
    return " ".join(title.ljust(9) if key == "model" else title.rjust(len(fmt.format(True if key == "bit_exact"
                    else 0 if key != "model" else "")))
                    for key, title, fmt in COLUMNS)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-weights", type=float, default=1.1e6, help="skip models with more weights (approx.)")
    parser.add_argument("--only", default=None, help="comma-separated model names (" + ", ".join(MODELS) + ")")
    parser.add_argument("--budget", type=float, default=3600.0,
                        help="seconds: no model starts after this, a running one is stopped at it (default 3600)")
    parser.add_argument("--samples", type=int, default=1000, help="C simulation samples per model (default 1000)")
    parser.add_argument("--no-compile", action="store_true", help="convert and estimate only")
    parser.add_argument("--fit-from", type=float, default=1e4, help="fit exponents on models with >= this many weights")
    parser.add_argument("--output-dir", default="out/scaling")
    parser.add_argument("--json", default=None, help="write the rows here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    directory = Path(args.output_dir).resolve()
    if args.child:
        row = run_one(args.child, directory, args.samples, not args.no_compile)
        print("ROW " + json.dumps(row))
        return 0

    names = args.only.split(",") if args.only else list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")
    names = [n for n in names if float(n.split("_")[1]) <= args.max_weights]
    names.sort(key=lambda n: float(n.split("_")[1]))
    directory.mkdir(parents=True, exist_ok=True)
    start, rows = time.perf_counter(), []
    print(header(), flush=True)
    for name in names:
        left = args.budget - (time.perf_counter() - start)
        if left <= 0:
            print(f"{name:<9} skipped: the time budget of {args.budget:.0f} s is spent", flush=True)
            continue
        command = [sys.executable, __file__, "--child", name, "--output-dir", str(directory),
                   "--samples", str(args.samples)] + (["--no-compile"] if args.no_compile else [])
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=left)
        except subprocess.TimeoutExpired:
            print(f"{name:<9} stopped: the time budget of {args.budget:.0f} s ran out", flush=True)
            continue
        found = [line for line in done.stdout.splitlines() if line.startswith("ROW ")]
        if done.returncode != 0 or not found:
            print(f"{name:<9} failed (exit {done.returncode}): {done.stderr.strip()[-800:]}", flush=True)
            continue
        rows.append(json.loads(found[-1][4:]))
        print(format_row(rows[-1]), flush=True)
    return report(rows, args)


def report(rows: list[dict], args) -> int:
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    print(f"\ngrowth exponent b (t ~ weights^b) over the models with >= {args.fit_from:g} weights, and over the "
          f"large ones (>= {LARGE:g}):")
    ok = True
    for key in ("convert", "derive", "hls4ml", "reports", "facts", "ours", "estimate", "compile", "compile_mb",
                "csim_per_1000", "peak_rss_mb"):
        exponents = [fit_exponent(rows, key, low) for low in (args.fit_from, LARGE)]
        mark = ""
        if key in OUR_PHASES and any(b is not None for b in exponents):
            worst = max(b for b in exponents if b is not None)
            mark = "  ok" if worst <= MAX_EXPONENT else f"  ABOVE {MAX_EXPONENT}"
            ok &= worst <= MAX_EXPONENT
        shown = ["-" if b is None else f"{b:.2f}" for b in exponents]
        print(f"  {key:<14}{shown[0]:>6}{shown[1]:>7}{mark}")
    big = [r for r in rows if r["weights"] >= 1e5]
    for r in big:
        per = r["ours"] / r["weights"] * 1e5
        flag = "ok" if per <= MAX_SECONDS_PER_1E5 else f"ABOVE {MAX_SECONDS_PER_1E5}"
        print(f"  {r['model']}: convert (ours, no hls4ml) {per:.2f} s per 10^5 weights, with hls4ml "
              f"{r['convert'] / r['weights'] * 1e5:.2f} s  {flag}")
        ok &= per <= MAX_SECONDS_PER_1E5
    inexact = [r["model"] for r in rows if r.get("bit_exact") is False]
    if inexact:
        print(f"  NOT bit-exact: {', '.join(inexact)}")
    return 0 if ok and not inexact else 1


if __name__ == "__main__":
    sys.exit(main())
