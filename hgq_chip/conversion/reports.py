"""What a conversion writes beside the project: explicit config, per-weight table, summary."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from itertools import repeat
from pathlib import Path

import numpy as np
import yaml

from ..fixed.hls import render_ap_type

CONFIG_FILE = "hls_config.yml"
WEIGHTS_FILE = "weight_types.csv"
SUMMARY_FILE = "summary.json"


def layer_summary(record) -> dict:
    kept = sum(int(np.count_nonzero(~t.pruned)) for t in record.weights.values())
    pruned = sum(int(np.count_nonzero(t.pruned)) for t in record.weights.values())
    return {
        "layer": record.layer_name,
        "class": record.layer_class,
        "weights_kept": kept,
        "weights_pruned": pruned,
        "ebops": int(record.ebops),
        "accum": render_ap_type(record.accum) if record.accum is not None else None,
        "accum_width": record.accum.width if record.accum is not None else None,
        "hls_types": {h.name: {k: render_ap_type(v) for k, v in h.types.items()} for h in record.hls_layers},
        # convert refuses a model whose float_bits exceed its dtype's significand (24 or 53 bits).
        "keras_dtype": record.compute_dtype,
        "float_bits": max((v.bits for v in record.float_values), default=0),
    }


def summarize(records) -> dict:
    layers = [layer_summary(r) for r in records]
    widths = [layer["accum_width"] for layer in layers if layer["accum_width"] is not None]
    return {
        "layers": layers,
        "total_ebops": int(sum(layer["ebops"] for layer in layers)),
        "weights_kept": sum(layer["weights_kept"] for layer in layers),
        "weights_pruned": sum(layer["weights_pruned"] for layer in layers),
        "widest_accumulator": max(widths, default=None),
    }


def format_summary(summary: dict) -> str:
    # The class column fits the longest class name (e.g. GlobalAveragePooling2D) plus a space.
    width = max([18] + [len(layer["class"]) + 1 for layer in summary["layers"]])
    header = f"{'layer':<24}{'class':<{width}}{'kept':>7}{'pruned':>8}{'EBOPs':>10}  accumulator"
    lines = [header, "-" * len(header)]
    for layer in summary["layers"]:
        lines.append(
            f"{layer['layer']:<24}{layer['class']:<{width}}{layer['weights_kept']:>7}{layer['weights_pruned']:>8}"
            f"{layer['ebops']:>10}  {layer['accum'] or '-'}"
        )
    lines.append(
        f"{'total':<{24 + width}}{summary['weights_kept']:>7}{summary['weights_pruned']:>8}{summary['total_ebops']:>10}"
        f"  widest {summary['widest_accumulator']} bits"
    )
    return "\n".join(lines)


# Rows of weight_types.csv formatted and written per block, so memory stays bounded (a block of
# this many weights is a few MB of text) and the time is linear in the number of weights.
WEIGHT_ROWS_PER_BLOCK = 1 << 16
WEIGHT_COLUMNS = ("layer", "weight", "index", "value", "k", "i", "f", "bits", "pruned")
ROW_END = "\r\n"  # the csv module's (and RFC 4180's) line end


def _csv_prefix(*fields: str) -> str:
    """``fields`` as the start of a CSV row (quoted by the csv module's rules if needed)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(fields)
    return buffer.getvalue()


def weight_rows(layer_name: str, weight_name: str, table) -> Iterator[str]:
    """The rows of one weight tensor in weight_types.csv, as text blocks in C order.

    Each row: ``layer,weight,index,value,k,i,f,bits,pruned`` with ``index`` the element's
    position (``i/j/...``; empty for a scalar), ``value`` the quantized value (Python's
    shortest round-trip ``repr``), k/i/f its format and ``bits`` its width (0 when pruned,
    i.e. the value is 0). Formatting works on whole blocks (no Python loop per element).
    """
    values = np.asarray(table.values, np.float64)
    shape = values.shape
    fmt = table.formats
    flat = {key: np.broadcast_to(getattr(fmt, key), shape).reshape(-1) for key in "kif"}
    flat_values = values.reshape(-1)
    prefix = _csv_prefix(layer_name, weight_name)
    join_index = "/".join(["{}"] * len(shape)).format
    for start in range(0, flat_values.size, WEIGHT_ROWS_PER_BLOCK):
        stop = min(start + WEIGHT_ROWS_PER_BLOCK, flat_values.size)
        block = flat_values[start:stop]
        k, i, f = (flat[key][start:stop] for key in "kif")
        pruned = block == 0
        bits = np.where(pruned, 0, k + i + f)
        if shape:
            positions = np.unravel_index(np.arange(start, stop), shape)
            index = map(join_index, *(p.tolist() for p in positions))
        else:
            index = [""]
        columns = (repeat(prefix), index, map(repr, block.tolist()), *(map(str, a.tolist()) for a in (k, i, f, bits)),
                   map(str, pruned.astype(np.int8).tolist()))
        yield ROW_END.join(map(",".join, zip(*columns))) + ROW_END


def write_weight_table(path: Path, records) -> None:
    """weight_types.csv: one row per weight of every record (see :func:`weight_rows`),
    written block by block."""
    with open(path, "w", newline="") as handle:
        handle.write(",".join(WEIGHT_COLUMNS) + ROW_END)
        for record in records:
            for weight_name, table in record.weights.items():
                for block in weight_rows(record.layer_name, weight_name, table):
                    handle.write(block)


def write_reports(directory: Path, records, input_types: dict, hls_config: dict, seconds: dict | None = None) -> dict:
    """Write hls_config.yml, weight_types.csv, summary.json and estimate_inputs.json into
    ``directory``; the summary. ``seconds`` (optional) gets the time of the tables under
    "reports" and of the estimate's facts under "facts"."""
    from .facts import FACTS_FILE, write_facts

    seconds = {} if seconds is None else seconds
    start = time.perf_counter()
    with open(directory / CONFIG_FILE, "w") as handle:
        yaml.safe_dump(hls_config, handle, sort_keys=False)
    write_weight_table(directory / WEIGHTS_FILE, records)
    summary = summarize(records)
    summary["inputs"] = {name: render_ap_type(fmt) for name, fmt in input_types.items()}
    with open(directory / SUMMARY_FILE, "w") as handle:
        json.dump(summary, handle, indent=2)
    middle = time.perf_counter()
    seconds["reports"] = seconds.get("reports", 0.0) + middle - start
    # What `hgq_chip estimate DIR` reads, so it needs no Keras model (hgq_chip/conversion/facts.py).
    write_facts(directory / FACTS_FILE, records, input_types)
    seconds["facts"] = seconds.get("facts", 0.0) + time.perf_counter() - middle
    return summary
