"""What the resource model needs, taken from the converter's precision records.

Nothing here re-derives a type: every format comes from ``conversion.precision.derive``
(records, per-element quantizer formats, input intervals) and the model input types of
``conversion.inputs``. The facts are plain arrays, so a conversion can store them as
``estimate_inputs.json`` and ``hgq_chip estimate DIR`` reads them back without Keras.

One layer becomes a list of operations:
``cast`` (a quantizer stage), ``cmvm`` (constant matrix-vector products of a Dense or
Conv kernel, at ``positions`` output positions; a depthwise kernel as its block-diagonal
equivalent, whose zeros cost nothing), ``relu``, ``table``, ``maxpool``, ``avgpool`` (windowed
and global), ``add`` (Add, HAdd, HSubtract, Subtract), ``minmax`` (HMaximum, HMinimum, Maximum, Minimum) and ``product``
(HMultiply: two variable operands per element); layers on our own templates bring their operations
along (ASQ/POST: ``conversion/asq_post_ops.py``; HSoftmax: ``conversion/rules/softmax.py``), including
``product`` (two variable operands). Reshaping and data-movement layers (padding, cropping,
up-sampling, permute, concatenate) cost nothing and have no operations: they are wires.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import HGQChipError, ProjectError
from ..fixed.format import ArrayFormat, FixedFormat
from ..fixed.interval import Interval

FACTS_FILE = "estimate_inputs.json"
FACTS_VERSION = 1
# Merges whose quantizers read one input each (iq0, iq1, ...), in input order.
_MERGES = ("HSubtract", "HMultiply", "HMaximum", "HMinimum")


@dataclass
class LayerFacts:
    """One layer's operations for the estimate: ``ops`` are dicts (see the module docstring) whose
    formats are k/i/f arrays in bits, shaped like the tensor they type (no batch axis)."""

    name: str
    layer_class: str
    ops: list[dict] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)  # indices of the producing layers (-1: model input)


def _kif(fmt: ArrayFormat, shape) -> dict:
    return {key: np.broadcast_to(getattr(fmt, key), shape).astype(np.int64) for key in "kif"}


def _interval_kif(interval: Interval) -> dict:
    fmt = interval.to_format()
    return {"k": fmt.k, "i": fmt.i, "f": fmt.f}


def _covering_rows(kif: dict, channels: int) -> dict:
    """Per input channel (the trailing ``channels`` elements: the last axis, or the flattened
    contracted axes of an HEinsumDense), the widest format over the other axes (positions)."""
    k, i, f = (np.asarray(kif[key]).reshape(-1, channels) for key in "kif")
    live = (k + i + f) > 0
    low = np.iinfo(np.int64).min
    cover_k = np.where(live, k, 0).max(axis=0)
    cover_i = np.where(live, i, low).max(axis=0)
    cover_f = np.where(live, f, low).max(axis=0)
    dead = ~live.any(axis=0)
    return {"k": np.where(dead, 0, cover_k), "i": np.where(dead, 0, cover_i), "f": np.where(dead, 0, cover_f)}


def _cast(stage: str, source: Interval, fmt: ArrayFormat, shape) -> dict:
    source = source.broadcast_to(shape)
    return {"op": "cast", "stage": stage, "in_lo": source.lo, "in_hi": source.hi, "in_f": source.f,
            "out": _kif(fmt, shape), "rounding": fmt.rounding.value, "overflow": fmt.overflow.value}


def _source_interval(record, input_types: dict[str, FixedFormat], shape, index: int = 0) -> Interval:
    """The interval a layer reads on input ``index``; a raw model input has the converter's input type."""
    if len(record.inputs) > index and record.inputs[index] is not None:
        return record.inputs[index]
    if not input_types:
        raise HGQChipError(f"layer {record.layer_name!r} reads a model input but no input type is known")
    # With several model inputs the records do not say which one: take the widest type.
    widest = max(input_types.values(), key=lambda fmt: fmt.width)
    return Interval.of_format(widest).broadcast_to(shape)


def _cmvm(record, cast_op: dict) -> dict:
    kernel = np.asarray(record.weights["kernel"].values, np.float64)
    latency_template = False
    if record.layer_class in ("HDepthwiseConv1D", "HDepthwiseConv2D"):
        from ..layers.depthwise import block_diagonal_kernel

        # depth_multiplier 1 is hls4ml's DepthwiseConv, built as the latency strategy even under
        # distributed_arithmetic (its DA code generator takes Dense/Conv only); larger ones are a Conv.
        latency_template = kernel.shape[-1] == 1
        kernel = block_diagonal_kernel(kernel)  # the same products; its zeros cost nothing
    positions = int(record.output.lo.size // kernel.shape[-1])
    bias = record.weights["bias"].values if "bias" in record.weights else None
    op = cmvm_op(kernel, bias, cast_op["out"], positions)
    if latency_template:
        op["latency_template"] = True
    return op


def cmvm_op(kernel, bias, in_kif: dict, positions: int) -> dict:
    """A ``cmvm`` operation: ``kernel`` (``(*taps, channels, outputs)``) applied at ``positions``
    output positions to inputs typed ``in_kif`` (the cast's output; rows: per channel, the widest
    format over the positions), plus ``bias`` (None: zeros)."""
    kernel = np.asarray(kernel, np.float64)
    channels = kernel.shape[-2]
    rows = _covering_rows(in_kif, channels)
    taps = kernel.reshape(-1, kernel.shape[-1])  # (taps * channels, outputs)
    n_taps = taps.shape[0] // channels
    row_kif = {key: np.tile(rows[key], n_taps) for key in "kif"}
    bias = np.zeros(kernel.shape[-1]) if bias is None else bias
    return {"op": "cmvm", "kernel": taps, "rows": row_kif, "positions": int(positions),
            "bias": np.asarray(bias, np.float64)}


def cast_op(stage: str, source: Interval, fmt: ArrayFormat, shape) -> dict:
    """A ``cast`` operation: quantizer stage ``stage`` casting values in ``source`` to ``fmt``."""
    return _cast(stage, source, fmt, shape)


def interval_kif(interval: Interval) -> dict:
    """The k/i/f arrays of the narrowest formats holding ``interval`` (an operation's ``out``)."""
    return _interval_kif(interval)


def _layer_facts(record, input_types) -> LayerFacts:
    facts = LayerFacts(record.layer_name, record.layer_class)
    if record.estimate_ops_complete:
        facts.ops = list(record.estimate_ops)
        return facts
    stages = {h.name: h for h in record.hls_layers}
    merge = record.layer_class in _MERGES
    for position, (stage_name, fmt) in enumerate(record.quantizer_formats.items()):
        if stage_name not in stages:
            continue  # e.g. a table's output quantizer: it is part of the table
        index = position if merge else 0  # a merge's quantizers read its inputs in order
        shape = record.input_shapes[index]
        facts.ops.append(_cast(stage_name, _source_interval(record, input_types, shape, index), fmt, shape))
    cast = facts.ops[0] if facts.ops else None
    if "kernel" in record.weights:
        facts.ops.append(_cmvm(record, cast))
    facts.ops.extend(getattr(record, "estimate_ops", []))
    for name, stage in stages.items():
        if name.endswith("_relu"):
            facts.ops.append({"op": "relu", "out": _interval_kif(record.output)})
        elif name.endswith("_table"):
            facts.ops.append({"op": "table", "index_width": cast_index_width(record, stages),
                              "out_width": stage.types["table"].width, "elements": int(record.output.lo.size)})
    klass = record.layer_class
    if klass.startswith(("MaxPooling", "AveragePooling", "GlobalMaxPooling", "GlobalAveragePooling")):
        window = max(1, int(record.inputs[0].lo.size // record.output.lo.size))
        op = "maxpool" if "MaxPooling" in klass else "avgpool"
        facts.ops.append({"op": op, "out": _interval_kif(record.output), "window": window})
    elif klass in ("Add", "HAdd", "HSubtract", "Subtract"):
        facts.ops.append({"op": "add", "out": _interval_kif(record.output), "n_inputs": len(record.inputs)})
    elif klass in ("HMaximum", "HMinimum", "Maximum", "Minimum"):
        facts.ops.append({"op": "minmax", "out": _interval_kif(record.output), "n_inputs": len(record.inputs)})
    elif klass == "HMultiply":
        facts.ops.extend(_products(record, facts.ops))
    return facts


def _products(record, casts: list) -> list[dict]:
    """HMultiply: per element, a product of the running product (its width is the sum of its
    factors' widths, the full-precision ap_fixed product) and the next quantized input."""
    shape = record.output.lo.shape
    widths = [np.broadcast_to(_widths_of(cast["out"]), shape) for cast in casts]
    running, ops = widths[0], []
    for width in widths[1:]:
        ops.append({"op": "product", "a_width": np.array(running), "b_width": np.array(width),
                    "out": _interval_kif(record.output)})
        running = np.where((running > 0) & (width > 0), running + width, 0)
    return ops


def _widths_of(kif: dict) -> np.ndarray:
    return np.maximum(np.asarray(kif["k"]) + np.asarray(kif["i"]) + np.asarray(kif["f"]), 0)


def cast_index_width(record, stages) -> int:
    """A table is indexed by its input stage's result type (the first stage of the layer)."""
    first = next(h for h in record.hls_layers if not h.name.endswith("_repack"))  # io_stream repack: no cast
    return stages[first.name].types["result"].width


def facts_from_records(records, input_types: dict[str, FixedFormat]) -> list[LayerFacts]:
    """One LayerFacts per record of ``precision.derive``, in model order, with producer indices.

    ``input_types``: the model inputs' formats by name. Raises HGQChipError for a layer that
    reads a model input when no input type is known.
    """
    producer = {id(record.output): index for index, record in enumerate(records)}
    layers = []
    for record in records:
        facts = _layer_facts(record, input_types)
        # derive() hands each layer the very Interval objects its producers output.
        facts.inputs = [producer.get(id(interval), -1) for interval in record.inputs]
        layers.append(facts)
    return layers


def facts_from_model(model) -> list[LayerFacts]:
    """Derive the records exactly as ``convert`` does (no project is written).

    Raises :class:`~hgq_chip.errors.CalibrationError` for an uncalibrated model and
    UnsupportedLayerError/UnsupportedConfigurationError as ``convert`` does.
    """
    from ..calibration import uncalibrated_quantizers
    from ..errors import CalibrationError
    from .graph import graph_nodes
    from .inputs import all_input_formats
    from .precision import derive
    from .project import as_functional

    missing = uncalibrated_quantizers(model)
    if missing:
        raise CalibrationError(
            f"activation ranges were never recorded for {', '.join(missing)}; call hgq_chip.calibrate(model, x) first"
        )
    model = as_functional(model)
    nodes = graph_nodes(model)
    return facts_from_records(derive(nodes), all_input_formats(model, nodes))


# ---- storage ---------------------------------------------------------------------------------


def _encode(value):
    if isinstance(value, np.ndarray):
        return {"shape": list(value.shape), "data": value.ravel().tolist()}
    if isinstance(value, dict):
        return {key: _encode(v) for key, v in value.items()}
    return value


def _decode(value):
    if isinstance(value, dict) and set(value) == {"shape", "data"}:
        return np.asarray(value["data"]).reshape(value["shape"])
    if isinstance(value, dict):
        return {key: _decode(v) for key, v in value.items()}
    return value


def write_facts(path: Path, records, input_types: dict[str, FixedFormat]) -> None:
    """Write ``estimate_inputs.json`` (version FACTS_VERSION) for ``records``; OSError propagates."""
    layers = facts_from_records(records, input_types)
    payload = {"version": FACTS_VERSION,
               "layers": [{"name": f.name, "class": f.layer_class, "inputs": f.inputs,
                           "ops": [_encode(op) for op in f.ops]} for f in layers]}
    with open(path, "w") as handle:
        json.dump(payload, handle, separators=(",", ":"))


def read_facts(path: Path) -> list[LayerFacts]:
    """The LayerFacts stored by :func:`write_facts`; :class:`~hgq_chip.errors.ProjectError` for a
    missing, unreadable, other-version or incomplete file."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ProjectError(f"cannot read {path} ({error}); convert the model again with `hgq_chip convert`") from error
    if payload.get("version") != FACTS_VERSION:
        raise ProjectError(f"{path} was written by another hgq_chip version; convert the model again")
    try:
        return [LayerFacts(layer["name"], layer["class"], [_decode(op) for op in layer["ops"]], layer["inputs"])
                for layer in payload["layers"]]
    except (KeyError, TypeError) as error:
        raise ProjectError(f"{path} is incomplete ({error!r}); convert the model again with `hgq_chip convert`") from error
