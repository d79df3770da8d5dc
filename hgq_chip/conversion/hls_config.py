"""The hls4ml configuration: every type explicit, from the precision records."""

from __future__ import annotations

import math
import numbers
import re

from ..errors import UnsupportedConfigurationError
from ..fixed.format import FixedFormat
from ..fixed.hls import render_hls4ml_precision

BACKENDS = {"vitis": "Vitis", "vivado": "Vivado"}
IO_TYPES = ("io_parallel", "io_stream")
STRATEGIES = {"latency": "Latency", "distributed_arithmetic": "distributed_arithmetic"}

# Never applied to a tensor: every layer gets explicit types; hls4ml only requires a default.
_UNUSED_DEFAULT_PRECISION = "fixed<16,6>"


def backend_name(backend: str) -> str:
    try:
        return BACKENDS[str(backend).lower()]
    except KeyError:
        raise UnsupportedConfigurationError(
            f"unknown backend {backend!r}; hgq_chip supports {', '.join(BACKENDS.values())}"
        ) from None


def check_io_type(io_type: str) -> str:
    if io_type not in IO_TYPES:
        raise UnsupportedConfigurationError(f"unknown io_type {io_type!r}; use one of {', '.join(IO_TYPES)}")
    return io_type


def strategy_name(strategy: str) -> str:
    try:
        return STRATEGIES[str(strategy).lower()]
    except KeyError:
        raise UnsupportedConfigurationError(
            f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}"
        ) from None


def build_hls_config(records, input_types: dict[str, FixedFormat], reuse_factor: int, strategy: str) -> dict:
    """hls4ml's configuration: the model inputs' types and every stage of ``records`` with its
    types (stages include layers hls4ml inserts itself, e.g. the Repack of a streamed Reshape,
    ``stream.prepare_stream``)."""
    layers = {}
    for name, fmt in input_types.items():
        layers[name] = {"Precision": {"result": render_hls4ml_precision(fmt)}}
    for record in records:
        for hls_layer in record.hls_layers:
            config = {"Precision": {key: render_hls4ml_precision(fmt) for key, fmt in hls_layer.types.items()}}
            if "weight" in hls_layer.types:
                # The strategy is how constant multiplications are built; only weighted layers have them.
                config.update(ReuseFactor=int(reuse_factor), Strategy=strategy_name(strategy))
            layers[hls_layer.name] = config
    return {
        "Model": {
            "Precision": {"default": _UNUSED_DEFAULT_PRECISION},
            "ReuseFactor": int(reuse_factor),
            "Strategy": "Latency",
            "BitExact": False,
        },
        "LayerName": layers,
    }


# A part number as Xilinx/AMD writes them (e.g. xcu250-figd2104-2L-e): written into Tcl
# scripts and the configuration, so quotes, spaces, brackets or '$' would break them.
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*\Z")


def check_options(reuse_factor, clock_period, part, strategy="latency") -> tuple[int, float]:
    """The reuse factor (int >= 1; 1 for distributed_arithmetic) and clock period (finite
    ns > 0) as numbers, after checking the part number.

    Raises UnsupportedConfigurationError naming the option and its valid values; hls4ml
    would otherwise write a project that does not build (reuse factor 0), or a Tcl script
    that breaks.
    """
    if isinstance(reuse_factor, bool) or not isinstance(reuse_factor, numbers.Real) \
            or not float(reuse_factor).is_integer() or reuse_factor < 1:
        raise UnsupportedConfigurationError(
            f"reuse factor {reuse_factor!r} is not valid; it is a whole number >= 1 (1: every multiplication "
            "in parallel; N: each multiplier is used N times)"
        )
    if reuse_factor != 1 and strategy_name(strategy) == "distributed_arithmetic":
        raise UnsupportedConfigurationError(
            f"reuse factor {reuse_factor!r} cannot be built with strategy distributed_arithmetic (hls4ml builds "
            "those multiplications as adder trees, with reuse factor 1 only); use reuse_factor=1 or strategy='latency'"
        )
    if isinstance(clock_period, bool) or not isinstance(clock_period, numbers.Real) \
            or not math.isfinite(clock_period) or clock_period <= 0:
        raise UnsupportedConfigurationError(
            f"clock period {clock_period!r} is not valid; give a finite number of nanoseconds > 0 (e.g. 5 for 200 MHz)"
        )
    if part is not None and (not isinstance(part, str) or not _PART.match(part)):
        raise UnsupportedConfigurationError(
            f"part {part!r} is not a valid FPGA part number; give one such as 'xcu250-figd2104-2L-e' (letters, "
            "digits, '-', '_' and '.') or leave it out for the backend's default"
        )
    return int(reuse_factor), float(clock_period)


_RF_WARNING = re.compile(r'Invalid ReuseFactor=(\d+) in layer "([^"]+)".*?Valid ReuseFactor\(s\): ([\d,]+)')


def check_reuse_factors_applied(hls_model, reuse_factor: int, hls4ml_output: str) -> None:
    """UnsupportedConfigurationError if hls4ml changed the reuse factor of any layer.

    hls4ml silently replaces a reuse factor a layer cannot use (it must divide
    n_in * n_out, ...) by the closest valid one and only prints a warning; the project
    must be built with the factor asked for, so refuse and list the valid values.
    ``hls4ml_output``: what hls4ml printed while converting (its warnings name the valid values).
    """
    valid = {name: values for _, name, values in _RF_WARNING.findall(hls4ml_output)}
    changed = []
    for name, node in hls_model.graph.items():
        used = node.get_attr("reuse_factor")
        if used is not None and int(used) != reuse_factor:
            listed = valid.get(name)
            changed.append(f"{name!r} (hls4ml would use {used}" + (f"; valid: {listed}" if listed else "") + ")")
    if changed:
        raise UnsupportedConfigurationError(
            f"reuse factor {reuse_factor} cannot be built for layer(s) " + ", ".join(changed)
            + "; choose a reuse factor valid for every weighted layer (1 always is)"
        )
