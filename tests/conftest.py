"""Shared test setup: quiet TensorFlow, the Keras backend, and the compiled ap_fixed harness."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest

_harness_report: list[str] = []


@pytest.fixture(scope="session")
def ap_harness():
    """The default-grid ap_fixed harness, compiled once per machine and cached.

    Without g++ this raises hgq_chip.errors.ToolMissingError (an error, not a skip: the
    exactness tests are the project's main guarantee and must not pass silently).
    """
    from hgq_chip.testing.ap_harness import get_harness

    harness = get_harness()
    if harness.compile_seconds is None:
        _harness_report.append(f"ap_fixed harness: cache hit ({harness.executable})")
    else:
        _harness_report.append(
            f"ap_fixed harness: compiled {len(harness.formats)} formats in "
            f"{harness.compile_seconds:.1f} s ({harness.executable})"
        )
    return harness


@pytest.fixture(scope="session")
def summary_lines():
    """A list whose lines pytest prints in its terminal summary (e.g. enumeration counts)."""
    return _harness_report


def pytest_terminal_summary(terminalreporter):
    for line in _harness_report:
        terminalreporter.write_line(line)


def pytest_runtest_logreport(report):
    """With HGQ_CHIP_DURATIONS_FILE set, append ``seconds phase nodeid`` of every test phase as it
    ends (with xdist: in the controller), so a run cut short still tells where its time went."""
    path = os.environ.get("HGQ_CHIP_DURATIONS_FILE")
    if path and os.environ.get("PYTEST_XDIST_WORKER") is None:
        with open(path, "a") as out:
            out.write(f"{report.duration:.2f}s {report.when} {report.nodeid} {report.outcome}\n")
