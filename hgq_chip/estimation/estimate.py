"""estimate(): LUT/DSP/FF/BRAM and latency of a model's firmware, without an FPGA tool.

Sources: a calibrated ``keras.Model``, a ``.keras`` file, or a directory written by
``hgq_chip convert`` (its ``estimate_inputs.json`` holds the derived formats, so no
Keras model is loaded). The numbers model hls4ml io_parallel firmware with reuse factor 1.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..conversion.facts import FACTS_FILE, facts_from_model, read_facts
from ..errors import ProjectError, UnsupportedConfigurationError
from . import constants as C
from .liveness import operation_liveness
from .ops import op_cost

STRATEGIES = ("latency", "distributed_arithmetic")


@dataclass
class LayerEstimate:
    layer: str
    layer_class: str
    lut: int
    dsp: int
    ff: int
    bram: float
    cycles: int
    delay_ns: float


@dataclass
class ModelEstimate:
    strategy: str
    clock_period: float
    layers: list[LayerEstimate] = field(default_factory=list)

    @property
    def lut(self) -> int:
        return sum(layer.lut for layer in self.layers)

    @property
    def dsp(self) -> int:
        return sum(layer.dsp for layer in self.layers)

    @property
    def ff(self) -> int:
        return sum(layer.ff for layer in self.layers)

    @property
    def bram(self) -> float:
        return sum(layer.bram for layer in self.layers)

    @property
    def cycles(self) -> int:
        # Layers of a sequential chain run one after another; for branching graphs this sum
        # over-counts parallel branches.
        return sum(layer.cycles for layer in self.layers)

    @property
    def latency_ns(self) -> float:
        return self.cycles * self.clock_period

    def to_dict(self) -> dict:
        return {
            "strategy": self.strategy,
            "clock_period_ns": self.clock_period,
            "layers": [asdict(layer) for layer in self.layers],
            "total": {"lut": self.lut, "dsp": self.dsp, "ff": self.ff, "bram": self.bram,
                      "latency_cycles": self.cycles, "latency_ns": self.latency_ns},
        }


def check_strategy(strategy: str) -> str:
    name = str(strategy).lower()
    if name not in STRATEGIES:
        raise UnsupportedConfigurationError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    return name


def load_facts(source):
    """The estimate inputs of a model, a .keras file or a converted project directory.

    Raises ProjectError (a directory without a readable ``estimate_inputs.json``),
    ModelFileError (a bad .keras file) and CalibrationError (an uncalibrated model).
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            if (path / FACTS_FILE).is_file():
                try:
                    return read_facts(path / FACTS_FILE)
                except (AttributeError, KeyError, TypeError, ValueError, IndexError) as error:
                    # valid JSON of another shape (a list, a layer without ops): not what convert wrote
                    raise ProjectError(f"{path / FACTS_FILE} is not an estimate-inputs file written by `hgq_chip "
                                       f"convert` ({type(error).__name__}: {error}); convert the model again") from None
            raise ProjectError(
                f"{path} has no {FACTS_FILE}; convert the model again with this hgq_chip version, "
                "or pass the .keras model file instead of the directory"
            )
        from ..model_file import load_model

        source = load_model(path)
    return facts_from_model(source)


def estimate_layer(facts, strategy: str, clock_period: float, dsp_min_product_bits: int, live=None) -> LayerEstimate:
    """``live``: per operation, its used output elements (liveness.py; None: all)."""
    live = live or [None] * len(facts.ops)
    costs = [op_cost(op, strategy, dsp_min_product_bits, mask) for op, mask in zip(facts.ops, live)]
    delay = sum(c.delay_ns for c in costs)
    usable = clock_period * C.USABLE_CLOCK_FRACTION
    has_logic = any(c.lut or c.dsp or c.bram for c in costs)
    cycles = max(C.MIN_CYCLES_PER_LAYER, math.ceil(delay / usable)) if has_logic else 0
    out_bits = costs[-1].out_bits if costs else 0
    return LayerEstimate(
        layer=facts.name, layer_class=facts.layer_class,
        lut=round(sum(c.lut for c in costs)), dsp=sum(c.dsp for c in costs),
        ff=cycles * out_bits, bram=sum(c.bram for c in costs), cycles=cycles, delay_ns=round(delay, 3),
    )


def estimate(source, strategy: str = "latency", clock_period: float = 5.0,
             dsp_min_product_bits: int = C.DSP_MIN_PRODUCT_BITS) -> ModelEstimate:
    """Per-layer and total LUT, DSP, FF, BRAM and latency of the model's hls4ml firmware.

    ``strategy`` is hls4ml's (``latency``: CSD constant multipliers and adder trees;
    ``distributed_arithmetic``: da4ml's optimized adder graph). ``dsp_min_product_bits``
    is the DSP mapping rule's threshold (see constants.DSP_MIN_PRODUCT_BITS).

    Units: LUTs, DSP slices, flip-flops, BRAM (in 36 Kb blocks, halves for an 18 Kb one), latency in
    clock cycles and ns (``clock_period`` in ns). Sources of every constant: ``constants.py``.
    Raises UnsupportedConfigurationError (unknown strategy, clock period <= 0) and the errors
    of :func:`load_facts`.
    """
    strategy = check_strategy(strategy)
    if not clock_period > 0:
        raise UnsupportedConfigurationError(f"the clock period must be positive, got {clock_period}")
    facts = load_facts(source)
    result = ModelEstimate(strategy, float(clock_period))
    live = operation_liveness(facts)
    result.layers = [estimate_layer(f, strategy, clock_period, dsp_min_product_bits, m) for f, m in zip(facts, live)]
    return result


def format_estimate(result: ModelEstimate) -> str:
    # The class column fits the longest class name (e.g. GlobalAveragePooling2D) plus a space.
    width = max([18] + [len(layer.layer_class) + 1 for layer in result.layers])
    header = f"{'layer':<24}{'class':<{width}}{'LUT':>9}{'DSP':>6}{'FF':>9}{'BRAM':>7}{'cycles':>8}"
    lines = [header, "-" * len(header)]
    for layer in result.layers:
        lines.append(f"{layer.layer:<24}{layer.layer_class:<{width}}{layer.lut:>9}{layer.dsp:>6}{layer.ff:>9}"
                     f"{layer.bram:>7g}{layer.cycles:>8}")
    lines.append("-" * len(header))
    lines.append(f"{'total':<{24 + width}}{result.lut:>9}{result.dsp:>6}{result.ff:>9}{result.bram:>7g}{result.cycles:>8}")
    lines.append(f"latency: {result.cycles} cycles = {result.latency_ns:g} ns at {result.clock_period:g} ns "
                 f"({result.strategy} strategy, hls4ml io_parallel, reuse factor 1)")
    return "\n".join(lines)
