"""Fuzz the converter: random models over the whole grammar, exact-or-typed-refusal on each.

Example ``i`` is drawn from ``random.Random(seed * 1_000_003 + i)`` over the full grammar
(``hgq_chip.testing.model_fuzz``, known open kinds included), built, calibrated, converted,
and on success verified in a child process on the calibration inputs and on random inputs
over the calibrated range widened 4x. Every failing example is written to
``OUT/NNNNN-KIND/`` (model.keras, inputs_*.npy, spec.json, report.txt); a summary line per
example goes to ``OUT/log.jsonl`` and the counts to ``OUT/summary.json``.

    python benchmarks/fuzz_converter.py --examples 1000 [--out out/fuzz] [--seed 0] [--start 0]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hgq_chip.testing.fuzz_check import check_spec, save_failure  # noqa: E402
from hgq_chip.testing.model_fuzz import RandomChooser, draw_spec, open_kinds_of  # noqa: E402


def example_spec(seed: int, index: int) -> dict:
    """The spec of example ``index`` of run ``seed`` (full grammar)."""
    return draw_spec(RandomChooser(seed * 1_000_003 + index), include_open_kinds=True)


def run(examples: int, out: Path, seed: int, start: int = 0) -> collections.Counter:
    out.mkdir(parents=True, exist_ok=True)
    counts: collections.Counter = collections.Counter()
    scratch = Path(tempfile.mkdtemp(prefix="hgq_chip_fuzz_"))
    t0 = time.time()
    try:
        with open(out / "log.jsonl", "a") as log:
            for index in range(start, start + examples):
                spec = example_spec(seed, index)
                work = scratch / f"{index:05d}"
                began = time.time()
                outcome = check_spec(spec, work)
                kinds = open_kinds_of(spec)
                tag = outcome.kind if outcome.ok else f"FAIL:{outcome.kind}" + ("(known)" if kinds else "")
                counts[tag] += 1
                if not outcome.ok:
                    save_failure(spec, outcome, out / f"{index:05d}-{outcome.kind}", kinds)
                log.write(json.dumps({"index": index, "seed": seed, "kind": outcome.kind, "ok": outcome.ok,
                                      "error_type": outcome.error_type, "open_kinds": kinds,
                                      "seconds": round(time.time() - began, 2),
                                      "detail": outcome.detail[:300]}) + "\n")
                log.flush()
                shutil.rmtree(work, ignore_errors=True)
                done = index - start + 1
                print(f"[{done}/{examples}] #{index} {tag} {outcome.error_type} "
                      f"({time.time() - began:.1f} s; total {time.time() - t0:.0f} s) {dict(counts)}", flush=True)
                (out / "summary.json").write_text(json.dumps(
                    {"seed": seed, "start": start, "done": done, "seconds": round(time.time() - t0), "counts": counts},
                    indent=1))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100, help="number of random models")
    parser.add_argument("--out", type=Path, default=Path("out/fuzz"), help="folder for failing models and the log")
    parser.add_argument("--seed", type=int, default=0, help="run seed (example i is reproducible from seed and i)")
    parser.add_argument("--start", type=int, default=0, help="index of the first example (to resume a run)")
    args = parser.parse_args(argv)
    counts = run(args.examples, args.out, args.seed, args.start)
    failures = sum(n for tag, n in counts.items() if tag.startswith("FAIL"))
    print(f"{sum(counts.values())} examples, {failures} failures: {dict(counts)}; failing models in {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
