"""The estimate options a converted project was built with, from its ``hgq_chip_project.json``.

No Keras: ``hgq_chip estimate DIR`` and ``hgq_chip report DIR`` read only JSON.
"""

from __future__ import annotations

from ..conversion.manifest import is_project, read_manifest

DEFAULTS = {"strategy": "latency", "clock_period": 5.0}
# The only reuse factor the estimate models (hls4ml io_parallel, every product unrolled).
MODELLED_REUSE_FACTOR = 1
# The only io type the estimate models: its arithmetic is the same in io_stream, but the stream
# FIFOs, line buffers and repacks of an io_stream project are not counted.
MODELLED_IO_TYPE = "io_parallel"


def stored_options(directory) -> dict | None:
    """``{"strategy", "clock_period", "reuse_factor", "io_type"}`` of the project in ``directory``; None
    without a manifest.

    Raises ProjectError for an unreadable manifest.
    """
    if not is_project(directory):
        return None
    manifest = read_manifest(directory)
    return {
        "strategy": str(manifest.get("strategy", DEFAULTS["strategy"])).lower(),
        "clock_period": float(manifest.get("clock_period_ns", DEFAULTS["clock_period"])),
        "reuse_factor": manifest.get("reuse_factor", MODELLED_REUSE_FACTOR),
        "io_type": str(manifest.get("io_type", MODELLED_IO_TYPE)),
    }
