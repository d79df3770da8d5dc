"""Model fuzzer: for random models over the converter's grammar, convert is exact or refuses.

Each example builds a small random model (``hgq_chip.testing.model_fuzz``), calibrates it,
converts it with random options and, when convert succeeds, compares the C simulation (in
a child process) with Keras on the calibration inputs and on inputs 4x outside the
calibrated range: every value must be equal. A refusal must be a typed ``hgq_chip.errors``
subclass and leave no output folder. Every kind of the grammar may be drawn; the profiles
are derandomized, so CI always runs the same examples, and the first random spec of each
rare kind (``RARE_KINDS``) runs too. ``benchmarks/fuzz_converter.py`` runs thousands.
"""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings

from hgq_chip.testing.fuzz_check import check_spec
from hgq_chip.testing.model_fuzz import RARE_KINDS, first_spec_showing, model_specs

# An exact example costs one g++ compile (2-7 s); refusals well under 1 s. Measured on 2 cores
# with -n 2: this file and test_fuzz_found_faults.py 1.5 min (fast profile 75 s), -m slow 7.6 min. The fast
# profile took 284 s at 40 examples on 2026-12-07 (more families, other-backend children): now 30, under
# this process's backend only.
FAST_EXAMPLES = 30
SLOW_EXAMPLES = 75  # 150 took 603 s on one CI worker (2026-12-08); benchmarks/fuzz_converter.py runs many more

_COMMON = dict(
    deadline=None,
    derandomize=True,
    database=None,
    # Shrinking would recompile dozens of projects in CI; the failing spec is printed instead.
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    print_blob=True,
)
settings.register_profile("hgq_chip-fuzz-fast", max_examples=FAST_EXAMPLES, **_COMMON)
settings.register_profile("hgq_chip-fuzz-slow", max_examples=SLOW_EXAMPLES, **_COMMON)


def _check_exact_or_refused(spec, in_hypothesis=True):
    work = tempfile.mkdtemp(prefix="hgq_chip_fuzz_test_")
    try:
        outcome = check_spec(spec, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if in_hypothesis:
        event(f"{outcome.kind} {outcome.error_type}".strip())  # shown by --hypothesis-show-statistics
    assert outcome.ok, f"{outcome.describe()}\nspec: {json.dumps(spec)}"


@settings(settings.get_profile("hgq_chip-fuzz-fast"))
@given(model_specs(other_backends=False))  # other backends: test_fuzz_rare_kind and the slow tests
def test_fuzz_convert_exact_or_typed_refusal(spec):
    _check_exact_or_refused(spec)


@pytest.mark.slow
@settings(settings.get_profile("hgq_chip-fuzz-slow"))
@given(model_specs())
def test_fuzz_convert_exact_or_typed_refusal_many(spec):
    _check_exact_or_refused(spec)


@pytest.mark.parametrize("kind", RARE_KINDS)
def test_fuzz_rare_kind(kind):
    """The first random spec showing each rare kind (the profiles above may draw none of it)."""
    _check_exact_or_refused(first_spec_showing(kind), in_hypothesis=False)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_fuzz_spec_under_another_backend_runs_in_a_child(backend):
    """A spec drawn for another Keras backend is checked in a child process with KERAS_BACKEND set
    (built, calibrated, converted and verified there); measured 85-133 s each on a loaded 2-core box."""
    spec = dict(first_spec_showing("other_backend"), keras_backend=backend)
    _check_exact_or_refused(spec, in_hypothesis=False)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(1))
def test_fuzz_qkeras_twin_imports_bit_exact(index):
    """The QKeras twin of the index-th random spec that has one (about 9 % of specs): built and run by
    QKeras in the Keras 2 child, imported, equal to QKeras on its input grid (143-207 s each, loaded box)."""
    from hgq_chip.testing.fuzz_qkeras import check_twin, qkeras_twin_script
    from hgq_chip.testing.model_fuzz import RandomChooser, draw_spec

    specs = (draw_spec(RandomChooser(i)) for i in range(10_000))
    spec = [s for s in itertools.islice((s for s in specs if qkeras_twin_script(s)), index + 1)][-1]
    work = tempfile.mkdtemp(prefix="hgq_chip_fuzz_twin_")
    try:
        outcome = check_twin(spec, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert outcome.ok, f"{outcome.describe()}\nspec: {json.dumps(spec)}"


def test_benchmark_kinds_filter_runs_only_examples_of_those_kinds():
    """``benchmarks/fuzz_converter.py --kinds``: the indices it runs are exactly those whose spec shows a kind."""
    import importlib.util
    import itertools
    from pathlib import Path

    from hgq_chip.testing.model_fuzz import spec_kinds

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_converter.py"
    spec = importlib.util.spec_from_file_location("fuzz_converter_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert list(itertools.islice(bench._indices(0, 5, frozenset()), 3)) == [5, 6, 7]
    chosen = list(itertools.islice(bench._indices(0, 0, frozenset({"global"})), 3))
    assert all("global" in spec_kinds(bench.example_spec(0, i)) for i in chosen)
    skipped = set(range(chosen[-1])) - set(chosen)
    assert skipped and not any("global" in spec_kinds(bench.example_spec(0, i)) for i in skipped)
