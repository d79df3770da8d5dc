"""Conformance cases of the layer families: one :class:`FamilyCase` per family, in a module here.

A family (``conversion/rules/<family>.py`` with its layers in ``layers/``) declares its test
case in ``hgq_chip/testing/families/<family>.py`` as a module-level ``CASES`` tuple; every
module of this package is found by :func:`family_cases`, so adding one needs no edit elsewhere.
The cases are read by:

- ``tests/test_families.py``: per case, the layer harness (``layer_harness.run_quantized_layer_test``:
  shapes, variable counts, NumPy reference, save/load, a short ``fit``), the registries (rule,
  handler, trace, limits, estimate operations, README row), the RTL trace (bit-exact on
  calibrated and 4x out-of-range inputs) and the fuzz step; and one compiled C simulation of all
  cases together per io type (bit-exact on calibrated and 4x out-of-range inputs);
- ``tests/test_layer_harness.py`` and ``tests/test_every_layer_trains.py`` (a class with a case
  needs no entry of its own there) and ``tests/test_registries.py``'s every-class model;
- the fuzzer: ``model_fuzz`` draws the steps of every :class:`FuzzStep` (``FUZZ_STEPS``) and
  ``fuzz_build`` builds them.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FuzzStep:
    """How the fuzzer draws and builds the family's layer.

    ``op``: the step's ``"op"`` in a spec (unique over the families); ``ranks``: the feature
    ranks it applies to (1: vectors, 2: sequences, 3: images); ``draw(d, shape) -> (step, out
    shape)`` with ``d`` the fuzzer's drawer (``d.ch`` the chooser, ``d.name(stem)``,
    ``d.act_q()``, ``d.weight_q()``, ``d.io_type``); ``build(step) -> keras layer``; ``io_types``:
    the io types it is drawn for (in the others it is drawn rarely, as an always-refused step).
    """

    op: str
    ranks: tuple[int, ...]
    draw: Callable
    build: Callable
    io_types: tuple[str, ...] = ("io_parallel", "io_stream")


@dataclass(frozen=True)
class FamilyCase:
    """One family's conformance case.

    ``name``: the case id; ``classes``: the layer classes it covers, each built as
    ``cls(*args, **kwargs)`` (:meth:`make`) on a per-sample input of ``input_shape[cls]``;
    ``counts``: (trainable variables, non-trainable variables, losses in training); ``reference(layer,
    x) -> float32 array``: the inference output from NumPy alone (None: none); ``io_types``: the io
    types it converts exactly in; ``stream_kwargs``: constructor arguments added for io_stream
    (e.g. per-layer activation quantizers: io_stream needs one type per tensor); ``fuzz``: its
    :class:`FuzzStep` (None: not fuzzed); ``bit_ranges``: ``{quantizer attribute: (lo, hi)}``, the
    fractional bits a random-bits test draws for those quantizers instead of its defaults (e.g. a
    table index that must stay narrow).
    """

    name: str
    classes: tuple[type, ...]
    args: tuple
    kwargs: dict
    input_shape: dict
    counts: tuple[int, int, int]
    reference: Callable | None = None
    io_types: tuple[str, ...] = ("io_parallel", "io_stream")
    stream_kwargs: dict = field(default_factory=dict)
    fuzz: FuzzStep | None = None
    bit_ranges: dict = field(default_factory=dict)

    def make(self, cls, **extra):
        """A layer of class ``cls`` with the case's arguments (plus ``extra`` keyword arguments)."""
        return cls(*self.args, **self.kwargs, **extra)

    def shape_of(self, cls) -> tuple[int, ...]:
        """The per-sample input shape of ``cls`` (``input_shape`` maps each class to one)."""
        return tuple(self.input_shape[cls])


def family_cases() -> list[FamilyCase]:
    """Every ``CASES`` entry of every module of this package (but ``_*`` helpers), by module name."""
    cases = []
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
        cases.extend(importlib.import_module(f"{__name__}.{module}").CASES)
    return cases


def case_of_class(cls) -> FamilyCase | None:
    """The case covering layer class ``cls`` (None: none)."""
    return next((case for case in family_cases() if cls in case.classes), None)


def fuzz_steps() -> dict[str, FuzzStep]:
    """The families' fuzz steps by op."""
    return {case.fuzz.op: case.fuzz for case in family_cases() if case.fuzz is not None}
