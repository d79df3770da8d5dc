"""What a conversion writes beside the project: explicit config, per-weight table, summary."""

from __future__ import annotations

import csv
import json
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


def write_weight_table(path: Path, records) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["layer", "weight", "index", "value", "k", "i", "f", "bits", "pruned"])
        for record in records:
            for weight_name, table in record.weights.items():
                fmt = table.formats
                for index in np.ndindex(table.values.shape):
                    pruned = table.values[index] == 0
                    writer.writerow([
                        record.layer_name, weight_name, "/".join(map(str, index)), repr(float(table.values[index])),
                        int(fmt.k[index]), int(fmt.i[index]), int(fmt.f[index]),
                        0 if pruned else int(fmt.width[index]), int(pruned),
                    ])


def write_reports(directory: Path, records, input_types: dict, hls_config: dict) -> dict:
    with open(directory / CONFIG_FILE, "w") as handle:
        yaml.safe_dump(hls_config, handle, sort_keys=False)
    write_weight_table(directory / WEIGHTS_FILE, records)
    summary = summarize(records)
    summary["inputs"] = {name: render_ap_type(fmt) for name, fmt in input_types.items()}
    with open(directory / SUMMARY_FILE, "w") as handle:
        json.dump(summary, handle, indent=2)
    # What `hgq_chip estimate DIR` reads, so it needs no Keras model (hgq_chip/conversion/facts.py).
    from .facts import FACTS_FILE, write_facts

    write_facts(directory / FACTS_FILE, records, input_types)
    return summary
