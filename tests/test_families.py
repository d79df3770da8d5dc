"""One conformance test per layer family, over every FamilyCase of ``hgq_chip/testing/families``.

After HGQ2's ``tests/base.py`` ``LayerTestBase``: a family declares its case once (classes,
constructor arguments, input shapes, variable counts, NumPy reference, io types, fuzz step) and
this file runs, for every case: the layer harness (shapes, counts, reference, save/load, a short
``fit``), the registries (rule, handler, RTL trace, option limits, estimate operations, docs
row), the RTL trace on calibrated and 4x out-of-range inputs, one fuzzer spec showing its step;
and for all cases together one compiled C simulation per io type, bit-exact on calibrated,
uniform and 4x out-of-range inputs (``exactness.assert_bit_exact``). Cost: one g++ compile for
io_parallel (23 s on the shared 2-core box), one for io_stream and one per fuzz step (both slow).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from exactness import assert_bit_exact, randomize_bits
from poison import poisoned
from test_fuzz_converter import _check_exact_or_refused
from test_readme_layer_table import family_pages, first_column_names

import hgq_chip
from hgq_chip import layers as L
from hgq_chip.conversion import family, rules  # noqa: F401  (rules: registers every family)
from hgq_chip.conversion.facts import facts_from_model
from hgq_chip.testing.families import family_cases
from hgq_chip.testing.layer_harness import run_quantized_layer_test
from hgq_chip.testing.model_fuzz import first_spec_showing, spec_kinds

CASES = family_cases()
CLASSES = [pytest.param(case, cls, id=cls.__name__) for case in CASES for cls in case.classes]


def test_every_case_is_found_and_its_classes_exported():
    exported = {getattr(L, name) for name in L.__all__}
    assert all(set(case.classes) <= exported for case in CASES)
    fuzz_ops = [case.fuzz.op for case in CASES if case.fuzz]
    assert len(fuzz_ops) == len(set(fuzz_ops)), "two families' fuzz steps share an op"


@pytest.mark.parametrize("case, cls", CLASSES)
def test_layer_passes_the_harness(case, cls, tmp_path):
    trainable, non_trainable, losses = case.counts
    report = run_quantized_layer_test(lambda **kw: case.make(cls, **kw), case.shape_of(cls), expected_trainable=trainable,
                                      expected_non_trainable=non_trainable, expected_losses=losses,
                                      reference=case.reference, directory=tmp_path)
    assert report.layer_class == cls.__name__


@pytest.mark.parametrize("case, cls", CLASSES)
def test_the_family_fills_every_registry_and_the_readme(case, cls):
    assert family.rule_for_class(cls) is not None, "no @rule"
    assert cls in family.HANDLERS, "no @handler (hls4ml looks handlers up by exact class)"
    assert any(base in family.TRACES for base in cls.__mro__), "no @trace"
    assert any(base in family.LIMITS for base in cls.__mro__ if base.__module__.startswith("keras.src.layers")), (
        "no limits() for the Keras parent")
    listed = set().union(*(first_column_names(table) for table in family_pages().values()))
    assert cls.__name__ in listed, "no row in a layer-family page's '## Layers' table (docs/layers/)"


def _model(io_type: str, seed: int = 0):
    """Every case's classes side by side (one input each, HQuantize first), random bits; for
    io_stream with the case's ``stream_kwargs`` (one type per tensor)."""
    import keras

    keras.utils.set_random_seed(seed)
    per_layer = {"granularity": "per-layer"}
    inputs, outputs = [], []
    for case in CASES:
        if io_type not in case.io_types:
            continue
        for cls in case.classes:
            stream = case.stream_kwargs if io_type == "io_stream" else {}
            inputs.append(keras.Input(case.shape_of(cls), name=f"{cls.__name__.lower()}_in"))
            q = L.HQuantize(per_layer if io_type == "io_stream" else None, name=f"{cls.__name__.lower()}_q")(inputs[-1])
            outputs.append(case.make(cls, name=cls.__name__.lower(), **stream)(q))
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(seed)
    randomize_bits(model, rng)  # with the families' own ranges (FamilyCase.bit_ranges)
    x = [rng.normal(0, 1, (64, *t.shape[1:])).astype(np.float32) for t in inputs]
    return model, x


@pytest.mark.parametrize("io_type", ["io_parallel", pytest.param("io_stream", marks=pytest.mark.slow)])
def test_every_family_converts_bit_exact(io_type, tmp_path):
    """One project for all cases: C simulation equal to Keras on calibrated, uniform and 4x
    out-of-range inputs; every family layer priced by the estimate (EBOPs > 0)."""
    model, x = _model(io_type)
    assert_bit_exact(model, x, tmp_path / "prj", io_type=io_type)
    facts = {f.name: f for f in facts_from_model(model)}
    for case in CASES:
        if io_type not in case.io_types:
            continue  # not in this model (_model leaves it out)
        for cls in case.classes:
            assert facts[cls.__name__.lower()].ops, f"{cls.__name__} has no estimate operations"
            assert model.get_layer(cls.__name__.lower()).ebops_exact() > 0


def test_every_family_traces_to_exact_rtl(monkeypatch):
    """The traces replay the records: the model is poisoned right after derivation
    (tests/poison.py), and the traced logic still equals the restored Keras model."""
    pytest.importorskip("da4ml")
    from hgq_chip.api import random_inputs
    from hgq_chip.estimation import rtl
    from hgq_chip.estimation.rtl import check_trace

    model, x = _model("io_parallel", seed=1)
    hgq_chip.calibrate(model, x)
    derive = rtl.derive
    with contextlib.ExitStack() as stack:
        def derive_then_poison(nodes):
            records = derive(nodes)
            stack.enter_context(poisoned(model, monkeypatch))
            return records

        monkeypatch.setattr(rtl, "derive", derive_then_poison)
        _, _, comb = rtl.trace_model(model)
    monkeypatch.undo()
    assert check_trace(model, comb, n=64) == 0, "input codes"
    for scale in (1.0, 4.0):
        assert check_trace(model, comb, inputs=random_inputs(model, 64, 0, scale)) == 0, f"scale {scale}"


@pytest.mark.slow  # one compile each (measured 26 s on the shared 2-core box)
@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES if c.fuzz])
def test_the_fuzzer_draws_and_checks_the_family(case):
    spec = first_spec_showing(case.fuzz.op)
    assert case.fuzz.op in spec_kinds(spec)
    _check_exact_or_refused(spec, in_hypothesis=False)
