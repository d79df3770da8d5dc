"""convert(): a calibrated hgq_chip model to an hls4ml project with every type derived."""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras

from ..calibration import uncalibrated_quantizers
from ..errors import CalibrationError, HGQChipError, NumericError, UnsupportedConfigurationError
from ..progress import to_stderr
from .fingerprint import FINGERPRINT_KEY, LAYER_FINGERPRINTS_KEY, layer_fingerprints, weights_fingerprint
from .graph import as_functional, graph_nodes
from .hls_config import (
    backend_name, build_hls_config, check_io_type, check_options, check_reuse_factors_applied, strategy_name,
)
from .hls_handlers import converting
from .inputs import all_input_formats
from .manifest import model_manifest, write_manifest
from .names import (check_layer_names, check_names_kept, check_parsed_attributes, check_project_name,
                    check_quantizer_functions)
from .output_dir import check_output_dir, replace_atomically
from .precision import check_float_exact, derive
from .layer_options import check_layer_options
from .stream import check_one_type_per_tensor, prepare_stream
from .reports import write_reports


@dataclass
class Conversion:
    output_dir: Path
    records: list
    input_types: dict
    hls_config: dict
    hls_model: object
    project_name: str
    # Wall-clock seconds per phase of the conversion (see PHASES), for benchmarks and profiling.
    phase_seconds: dict = field(default_factory=dict)


# The phases convert() times: checks and type derivation (with the weights' fingerprint and the
# hls4ml configuration), hls4ml's conversion and project writing, our tables (hls_config.yml,
# weight_types.csv, summary.json), the estimate's facts (estimate_inputs.json), and the manifest
# with the atomic swap into the output folder.
PHASES = ("derive", "hls4ml", "reports", "facts", "finish")


@contextlib.contextmanager
def timed(seconds: dict, phase: str):
    """Add the wall-clock time of the block to ``seconds[phase]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - start


def _ends_with_quantizer(layer) -> bool:
    from ..layers import HActivation, HQuantize

    return isinstance(layer, HQuantize) or (
        isinstance(layer, HActivation) and layer.activation.__name__ == "linear"
    )


def _check_distributed_arithmetic(nodes):
    """hls4ml 1.3's DA code generator folds input quantizers into the DA function and emits
    duplicate declarations when two quantizers meet, so refuse that shape up front; ASQ/POST
    layers have their own template, which hls4ml's DA optimizer does not take."""
    from ..layers.asq_post import ASQPostMixin

    producers = {id(t): node.layer for node in nodes for t in node.outputs}
    for node in nodes:
        if isinstance(node.layer, ASQPostMixin):
            raise UnsupportedConfigurationError(
                f"strategy distributed_arithmetic does not apply to {type(node.layer).__name__} "
                f"{node.layer.name!r} (its shift-and-add template is already multiplier-free); use strategy='latency'"
            )
        if not hasattr(node.layer, "kq"):
            continue
        producer = producers.get(id(node.inputs[0]))
        while isinstance(producer, keras.layers.Dropout):  # hls4ml removes Dropout: the quantizers meet
            producer = producers.get(id(producer.input))
        if producer is not None and _ends_with_quantizer(producer):
            raise UnsupportedConfigurationError(
                f"strategy distributed_arithmetic cannot follow quantizer {producer.name!r} directly with "
                f"{node.layer.name!r}'s own input quantizer (hls4ml 1.3 generates conflicting code); remove "
                f"{producer.name!r} (the layer's input quantizer already quantizes its input) or use "
                "strategy='latency'"
            )


def convert(
    model: keras.Model,
    output_dir,
    backend: str = "Vitis",
    io_type: str = "io_parallel",
    part: str | None = None,
    clock_period: float = 5.0,
    reuse_factor: int = 1,
    strategy: str = "latency",
    force: bool = False,
    project_name: str = "myproject",
    log=to_stderr,
    replace_non_project: bool = False,
    reads=(),
) -> Conversion:
    """Derive exact types for every tensor and write the hls4ml project into ``output_dir``.

    ``output_dir`` follows the rules of :mod:`hgq_chip.conversion.output_dir` (checked before
    anything else; ``reads``: files the output folder must not hold, e.g. the model file):
    ``force`` replaces an earlier project, ``replace_non_project`` any other folder; the
    project is written beside it and swapped in atomically under a lock.
    """
    seconds: dict = {}
    with timed(seconds, "derive"):
        prepared = _prepare(model, output_dir, backend, io_type, part, clock_period, reuse_factor, strategy,
                            force, project_name, replace_non_project, reads)
    model, output_dir, backend, records, input_types, hls_config = (
        prepared.model, prepared.output_dir, prepared.backend, prepared.records, prepared.input_types,
        prepared.hls_config)
    finish = time.perf_counter()
    with replace_atomically(output_dir, **prepared.outputs, log=log) as staging:
        log(f"[hgq_chip] writing {backend} {io_type} project")
        with timed(seconds, "hls4ml"):
            hls_model = _write_hls4ml_project(
                model, staging, project_name, backend, io_type, part, prepared.clock_period, hls_config,
                prepared.stream_plan, records,
            )
            _point_config_at(staging, output_dir)
        write_reports(staging, records, input_types, hls_config, seconds)
        write_manifest(staging, model_manifest(
            model, project_name=project_name, backend=backend, io_type=io_type, strategy=str(strategy).lower(),
            reuse_factor=prepared.reuse_factor, clock_period=prepared.clock_period, part=part,
            fingerprints=prepared.fingerprints,
        ))
    seconds["finish"] = time.perf_counter() - finish - sum(seconds[p] for p in ("hls4ml", "reports", "facts"))
    hls_model.config.config["OutputDir"] = str(output_dir)
    log(f"[hgq_chip] project written to {output_dir}")
    return Conversion(output_dir, records, input_types, hls_config, hls_model, project_name, seconds)


@dataclass
class _Prepared:
    """What :func:`_prepare` checked and derived, for :func:`convert` to write."""

    model: keras.Model
    output_dir: Path
    backend: str
    reuse_factor: int
    clock_period: float
    records: list
    input_types: dict
    hls_config: dict
    stream_plan: dict
    fingerprints: dict
    outputs: dict


def _prepare(model, output_dir, backend, io_type, part, clock_period, reuse_factor, strategy, force, project_name,
             replace_non_project, reads):
    """Every check and the derived types of :func:`convert`, before anything is written."""
    backend = backend_name(backend)
    check_io_type(io_type)
    reuse_factor, clock_period = check_options(reuse_factor, clock_period, part, strategy)
    output_dir = Path(output_dir)
    outputs = dict(force=force, replace_non_project=replace_non_project, reads=reads)
    check_output_dir(output_dir, **outputs)
    model = as_functional(model)
    nodes = graph_nodes(model)
    check_layer_options(nodes, io_type)
    missing = uncalibrated_quantizers(model)
    if missing:
        raise CalibrationError(
            f"activation ranges were never recorded for {', '.join(missing)}; train the model or call "
            "hgq_chip.calibrate(model, x) on representative inputs before converting"
        )
    fingerprints = {FINGERPRINT_KEY: weights_fingerprint(model), LAYER_FINGERPRINTS_KEY: layer_fingerprints(model)}
    records = _derive_finite(model, nodes)
    check_layer_names(model, records)
    check_project_name(project_name, model)
    stream_plan = {}
    if io_type == "io_stream":
        check_one_type_per_tensor(nodes)
        stream_plan, records = prepare_stream(model, nodes, records)
        check_layer_names(model, records)  # the plan adds stages (repacks) no layer may be named like
    if strategy_name(strategy) == "distributed_arithmetic":
        _check_distributed_arithmetic(nodes)
    check_float_exact(records)
    input_types = all_input_formats(model, nodes)
    hls_config = build_hls_config(records, input_types, reuse_factor, strategy)
    return _Prepared(model, output_dir, backend, reuse_factor, clock_period, records, input_types, hls_config,
                     stream_plan, fingerprints, outputs)


def _derive_finite(model, nodes):
    """:func:`derive`, with a model whose variables hold NaN or infinities (e.g. trained on data with
    a NaN) refused as NumericError naming them, instead of the fixed-point search's bare ValueError."""
    try:
        return derive(nodes)
    except ValueError as error:
        if "NaN or infinite" not in str(error):
            raise
        import numpy as np

        bad = [v.path for v in model.weights if not np.all(np.isfinite(np.asarray(v.numpy(), dtype=np.float64)))]
        where = f"the variables {', '.join(bad[:4])}{' ...' if len(bad) > 4 else ''} hold" if bad else "a value holds"
        raise NumericError(f"{where} NaN or infinite values, which no fixed-point type can hold; retrain the model "
                           "(check the training data for NaN/inf) or convert a checkpoint saved before the values "
                           "diverged") from None


def _point_config_at(staging: Path, output_dir: Path) -> None:
    """hls4ml wrote the staging folder's path into hls4ml_config.yml; name the final folder instead."""
    config = staging / "hls4ml_config.yml"
    if config.is_file():
        config.write_text(config.read_text().replace(str(staging), str(output_dir)))


# Type attributes that take part in arithmetic; others (e.g. relu's unused table_t) are ignored.
_ARITHMETIC_TYPES = ("result", "accum", "weight", "bias", "table")
# hls4ml classes that copy values unchanged. io_parallel makes a Reshape's output the input
# variable itself, so it carries the producer's rounding/overflow modes; copying a value into
# a type of the same sign and bits never rounds or overflows, so only those must match.
_COPYING_CLASSES = ("Reshape",)
# hls4ml types the output of these layers with their input's precision object
# (``add_output_variable(precision=inp.type.precision)``): a copy into the same type.
_INPUT_TYPED_CLASSES = ("ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D", "Resize", "Transpose")


def _same_type(node, expected, actual) -> bool:
    if node.class_name in _COPYING_CLASSES:
        return (expected.k, expected.i, expected.f) == (actual.k, actual.i, actual.f)
    return expected == actual


def check_types_applied(hls_model, hls_config) -> None:
    """Every arithmetic type in the hls4ml graph must be one we derived; anything else is a bug.

    Checked: each layer's ``<key>_t`` attributes and the types of its output variables (what
    the firmware declares its output arrays or streams with; a Clone has one per copy). A
    layer hls4ml inserted itself must only move data (every output with its input's type).
    """
    from hls4ml.model.types import NamedType

    from ..fixed.format import parse_ap_type

    ours = hls_config["LayerName"]
    wrong = []
    for name, node in hls_model.graph.items():
        if (name not in ours or node.class_name in _INPUT_TYPED_CLASSES) and _moves_data_only(node):
            continue
        expected = ours.get(name, {}).get("Precision", {}).get("result")
        for out_name, variable in _output_variables(node):
            actual = parse_ap_type(str(variable.type.precision))
            if expected is not None and not _same_type(node, parse_ap_type(expected), actual):
                wrong.append(f"{name} output {out_name} = {variable.type.precision} (derived: {expected})")
        for key in _ARITHMETIC_TYPES:
            named = node.attributes.get(f"{key}_t")
            if not isinstance(named, NamedType) or (key == "table" and node.class_name != "UnaryLUT"):
                continue
            expected = ours.get(name, {}).get("Precision", {}).get(key)
            actual = parse_ap_type(str(named.precision))
            if expected is None or not _same_type(node, parse_ap_type(expected), actual):
                wrong.append(f"{name}.{key}_t = {named.precision} (derived: {expected})")
    if wrong:
        raise HGQChipError(
            "internal error: hls4ml holds types hgq_chip did not derive, so the firmware would not be exact: "
            + "; ".join(wrong)
        )


def _output_variables(node) -> list:
    """``[(output name, TensorVariable)]`` of an hls4ml layer, one per output."""
    try:
        return [(out, node.get_output_variable(out)) for out in node.outputs]
    except (AttributeError, KeyError):
        return []


def _moves_data_only(node) -> bool:
    """A node hls4ml inserted itself (e.g. zero padding, a repack or a clone for io_stream)
    whose outputs all have its input's sign and bits (rounding/overflow modes then never
    act), also in its ``result_t``."""
    from hls4ml.model.types import NamedType

    from ..fixed.format import parse_ap_type

    try:
        source = parse_ap_type(str(node.get_input_variable().type.precision))
        targets = [parse_ap_type(str(variable.type.precision)) for _, variable in _output_variables(node)]
        result = node.attributes.get("result_t")
        if isinstance(result, NamedType):
            targets.append(parse_ap_type(str(result.precision)))
    except (AttributeError, KeyError, IndexError, ValueError):
        return False
    return bool(targets) and all((source.k, source.i, source.f) == (t.k, t.i, t.f) for t in targets)


def _write_hls4ml_project(model, directory, project_name, backend, io_type, part, clock_period, hls_config,
                          stream_plan=None, records=()):
    import hls4ml
    from hls4ml.converters.keras_v3_to_hls import parse_keras_v3_model

    options = {"clock_period": clock_period}
    if part:
        options["part"] = part
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter), converting(stream_plan, records):
            check_parsed_attributes(parse_keras_v3_model(model, allow_da_fallback=False, allow_v2_fallback=False)[0])
            hls_model = hls4ml.converters.convert_from_keras_model(
                model,
                output_dir=str(directory),
                project_name=project_name,
                backend=backend,
                io_type=io_type,
                hls_config=hls_config,
                bit_exact=False,
                allow_da_fallback=False,
                allow_v2_fallback=False,
                **options,
            )
            check_names_kept(hls_model, hls_config)
            check_types_applied(hls_model, hls_config)
            check_reuse_factors_applied(hls_model, hls_config["Model"]["ReuseFactor"], chatter.getvalue())
            check_quantizer_functions(hls_model)
            hls_model.write()
    except HGQChipError:
        raise
    except Exception as error:
        raise HGQChipError(f"hls4ml failed to convert the model: {error}\n{chatter.getvalue()[-2000:]}") from error
    return hls_model
