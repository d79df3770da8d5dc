"""``hgq_chip sweep SPEC.yaml --out DIR``: the CLI face of :func:`hgq_chip.sweeps.sweep`."""

from __future__ import annotations


def _run_sweep(args) -> int:
    from .run import sweep

    front = sweep(args.spec, args.out, address=args.address, workers=args.workers, synth=args.synth,
                  quiet=args.quiet)
    failed = sum(m.get("status") == "failed" for m in front["members"])
    counts = front["trials"]
    print(f"front: {len(front['members'])} members ({failed} failed in the fan-out) from {counts['done']} trials "
          f"({counts['failed']} failed): {args.out}/front.json")
    return 0


def add_sweep_command(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep", help="train many models on Ray Tune, merge their Pareto fronts, convert and verify the front",
        description="Run the trials of a sweep spec on Ray Tune (Optuna NSGA-II, grid or random), merge every "
                    "trial's Pareto checkpoints into DIR/front.json and convert, verify (random 4x out-of-range "
                    "and test set) and estimate each front member as Ray tasks. Running the same command again "
                    "resumes a killed sweep. Needs pip install 'hgq_chip[sweep]'.",
    )
    p.add_argument("spec", help="the sweep spec (YAML): model builder, data, search space, objectives, budget")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="sweep folder: new, empty, or an earlier run of the same spec (resumed)")
    p.add_argument("--address", default=None, metavar="ray://HOST:PORT|HOST:PORT|auto",
                   help="a running Ray cluster (default: start Ray in this process, on 127.0.0.1 only)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="trials at a time (default: the spec's budget.concurrent)")
    p.add_argument("--synth", default=None, choices=["yosys"], help="also synthesize each front member with yosys")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(handler=_run_sweep)
