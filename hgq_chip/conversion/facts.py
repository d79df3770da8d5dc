"""What the resource model needs, taken from the converter's precision records.

Nothing here re-derives a type: every format comes from ``conversion.precision.derive``
(records, per-element quantizer formats, input intervals) and the model input types of
``conversion.inputs``. The facts are plain arrays, so a conversion can store them as
``estimate_inputs.json`` and ``hgq_chip estimate DIR`` reads them back without Keras.

One layer becomes a list of typed operations (``conversion/ops.py``: ``Cast``, ``CMVM``,
``Relu``, ``Table``, ``MaxPool``, ``AvgPool``, ``Add``, ``MinMax``, ``Product``): the quantizer
casts its record lists in ``cast_stages``, then the operations its family's rule emitted
(``estimate_ops``). Reshaping and data-movement layers (padding, cropping, up-sampling, permute,
concatenate) cost nothing and have no operations: they are wires.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import HGQChipError, ProjectError
from ..fixed.format import FixedFormat
from ..fixed.interval import Interval
from .ops import Op, cast_op, cmvm_op, interval_kif, op_from_json  # noqa: F401  (re-exported for callers of the former home)
from .ops import cast_op as _cast

FACTS_FILE = "estimate_inputs.json"
FACTS_VERSION = 2  # 2: typed operations (conversion/ops.py); CMVM.latency_only
# Version 1 (before the typed operations) is still read: the same kinds and fields, with the
# CMVM flags own_template/latency_template (both now latency_only) and reads_previous optional.
READABLE_VERSIONS = (1, FACTS_VERSION)


@dataclass
class LayerFacts:
    """One layer's operations for the estimate: ``ops`` are ``conversion/ops.Op`` s whose formats
    are k/i/f arrays in bits, shaped like the tensor they type (no batch axis)."""

    name: str
    layer_class: str
    ops: list[Op] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)  # indices of the producing layers (-1: model input)


def _source_interval(record, input_types: dict[str, FixedFormat], shape, index: int = 0) -> Interval:
    """The interval a layer reads on input ``index``; a raw model input has the converter's input type."""
    if len(record.inputs) > index and record.inputs[index] is not None:
        return record.inputs[index]
    if not input_types:
        raise HGQChipError(f"layer {record.layer_name!r} reads a model input but no input type is known")
    # With several model inputs the records do not say which one: take the widest type.
    widest = max(input_types.values(), key=lambda fmt: fmt.width)
    return Interval.of_format(widest).broadcast_to(shape)


def _layer_facts(record, input_types) -> LayerFacts:
    """The quantizer casts the record lists (``cast_stages``: the model input's type where a cast
    reads one), then the operations its rule emitted."""
    facts = LayerFacts(record.layer_name, record.layer_class)
    for stage_name, index in (record.cast_stages or {}).items():
        shape = record.input_shapes[index]
        source = _source_interval(record, input_types, shape, index)
        facts.ops.append(_cast(stage_name, source, record.quantizer_formats[stage_name], shape))
    facts.ops.extend(record.estimate_ops)
    return facts


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
    from .graph import as_functional
    from .precision import derive

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
                           "ops": [_encode(op.to_json()) for op in f.ops]} for f in layers]}
    with open(path, "w") as handle:
        json.dump(payload, handle, separators=(",", ":"))


def _from_version_1(op: dict) -> dict:
    """A version-1 operation dict in version 2's fields."""
    op = dict(op)
    flags = [op.pop(key, False) for key in ("own_template", "latency_template")]
    if op.get("op") == "cmvm":
        op["latency_only"] = any(bool(flag) for flag in flags)
    return op


def read_facts(path: Path) -> list[LayerFacts]:
    """The LayerFacts stored by :func:`write_facts` (or by a version-1 hgq_chip);
    :class:`~hgq_chip.errors.ProjectError` for a missing, unreadable, other-version or incomplete file."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ProjectError(f"cannot read {path} ({error}); convert the model again with `hgq_chip convert`") from error
    if not isinstance(payload, dict):
        raise ProjectError(f"{path} is not an estimate-inputs file written by `hgq_chip convert` (JSON "
                           f"{type(payload).__name__}, not an object); convert the model again")
    version = payload.get("version")
    if version not in READABLE_VERSIONS:
        raise ProjectError(f"{path} was written by another hgq_chip version; convert the model again")
    upgrade = _from_version_1 if version == 1 else (lambda op: op)
    try:
        return [LayerFacts(layer["name"], layer["class"], [op_from_json(upgrade(_decode(op))) for op in layer["ops"]],
                           layer["inputs"]) for layer in payload["layers"]]
    except (KeyError, TypeError) as error:
        raise ProjectError(f"{path} is incomplete ({error!r}); convert the model again with `hgq_chip convert`") from error
