"""The hls4ml configuration: every type explicit, from the precision records."""

from __future__ import annotations

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


def check_strategy_reuse(strategy: str, reuse_factor: int) -> None:
    """hls4ml 1.3 builds distributed arithmetic only fully parallel: refuse another reuse factor."""
    if strategy_name(strategy) == "distributed_arithmetic" and reuse_factor != 1:
        raise UnsupportedConfigurationError(
            f"strategy distributed_arithmetic needs reuse factor 1 (hls4ml builds it fully parallel), got "
            f"{reuse_factor}; use --reuse-factor 1, or strategy latency to share multipliers"
        )


def build_hls_config(records, input_types: dict[str, FixedFormat], reuse_factor: int, strategy: str) -> dict:
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
