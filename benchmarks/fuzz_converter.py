"""Fuzz the converter: random models over the whole grammar, exact-or-typed-refusal on each.

Example ``i`` is drawn from ``random.Random(seed * 1_000_003 + i)`` over the full grammar
(``hgq_chip.testing.model_fuzz``, the same grammar the tests draw from), built, calibrated, converted,
and on success verified in a child process on the calibration inputs and on random inputs
over the calibrated range widened 4x. Every failing example is written to
``OUT/NNNNN-KIND/`` (model.keras, inputs_*.npy, spec.json, report.txt); a summary line per
example goes to ``OUT/log.jsonl`` and the summary (exact conversions, typed refusals by
error type, failures, kinds drawn, median seconds per example) to ``OUT/summary.json``.

    python benchmarks/fuzz_converter.py --examples 1000 [--out out/fuzz] [--seed 0] [--start 0] [--kinds concat,global]

``--kinds`` runs only the drawn examples showing at least one of those ``spec_kinds`` (the others
are skipped, not counted), to fuzz one part of the grammar; each run example keeps its index.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hgq_chip.testing.fuzz_check import check_spec, save_failure  # noqa: E402
from hgq_chip.testing.model_fuzz import RandomChooser, draw_spec, spec_kinds  # noqa: E402


def example_spec(seed: int, index: int) -> dict:
    """The spec of example ``index`` of run ``seed``."""
    return draw_spec(RandomChooser(seed * 1_000_003 + index))


def summarize(records: list[dict], seed: int, start: int, seconds: float) -> dict:
    """Counts of a run: outcomes, refusals by error type, failures, kinds drawn, median seconds per example."""
    refusals = collections.Counter(r["error_type"] for r in records if r["kind"] == "refused")
    kinds = collections.Counter(k for r in records for k in r["spec_kinds"])
    return {"seed": seed, "start": start, "done": len(records), "seconds": round(seconds),
            "median_seconds_per_example": round(statistics.median(r["seconds"] for r in records), 2) if records else None,
            "exact": sum(r["kind"] == "exact" for r in records),
            "refused_by_error_type": dict(refusals.most_common()),
            "rejected_by_layer": sum(r["kind"] == "rejected-by-layer" for r in records),
            "failures": dict(collections.Counter(r["kind"] for r in records if not r["ok"])),
            "spec_kinds": dict(sorted(kinds.items()))}


def _indices(seed: int, start: int, kinds: frozenset):
    """Example indices from ``start`` whose spec shows one of ``kinds`` (every index if empty)."""
    index = start
    while True:
        if not kinds or kinds & set(spec_kinds(example_spec(seed, index))):
            yield index
        index += 1


def run(examples: int, out: Path, seed: int, start: int = 0, kinds=()) -> dict:
    """Run ``examples`` examples from index ``start`` (only those showing one of ``kinds``, if
    given); the summary (also in OUT/summary.json)."""
    out.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    scratch = Path(tempfile.mkdtemp(prefix="hgq_chip_fuzz_"))
    t0 = time.time()
    try:
        with open(out / "log.jsonl", "a") as log:
            for index, _ in zip(_indices(seed, start, frozenset(kinds)), range(examples)):
                spec = example_spec(seed, index)
                work = scratch / f"{index:05d}"
                began = time.time()
                outcome = check_spec(spec, work)
                kinds = spec_kinds(spec)
                if not outcome.ok:
                    save_failure(spec, outcome, out / f"{index:05d}-{outcome.kind}", kinds)
                record = {"index": index, "seed": seed, "kind": outcome.kind, "ok": outcome.ok,
                          "error_type": outcome.error_type, "spec_kinds": kinds,
                          "seconds": round(time.time() - began, 2), "detail": outcome.detail[:300]}
                records.append(record)
                log.write(json.dumps(record) + "\n")
                log.flush()
                shutil.rmtree(work, ignore_errors=True)
                tag = outcome.kind if outcome.ok else f"FAIL:{outcome.kind}"
                print(f"[{len(records)}/{examples}] #{index} {tag} {outcome.error_type} "
                      f"({record['seconds']:.1f} s; total {time.time() - t0:.0f} s)", flush=True)
                summary = summarize(records, seed, start, time.time() - t0)
                (out / "summary.json").write_text(json.dumps(summary, indent=1))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return summarize(records, seed, start, time.time() - t0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100, help="number of random models")
    parser.add_argument("--out", type=Path, default=Path("out/fuzz"), help="folder for failing models and the log")
    parser.add_argument("--seed", type=int, default=0, help="run seed (example i is reproducible from seed and i)")
    parser.add_argument("--start", type=int, default=0, help="index of the first example (to resume a run)")
    parser.add_argument("--kinds", default="", help="comma-separated spec kinds: run only examples showing one")
    args = parser.parse_args(argv)
    summary = run(args.examples, args.out, args.seed, args.start, [k for k in args.kinds.split(",") if k])
    failures = sum(summary["failures"].values())
    print(json.dumps({k: v for k, v in summary.items() if k != "spec_kinds"}, indent=1))
    print(f"{summary['done']} examples, {failures} failures; failing models in {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
