"""The C simulation runs in a child process: a firmware that aborts, fails an assert,
segfaults or exits never ends the calling Python process; it becomes SimulationCrashError.
A project whose g++ build fails raises CompileError showing the first error lines.

The projects here are written by hand (a build_lib.sh and one C++ file, as hls4ml lays
them out), so one quick g++ run covers every kind of crash: the sample's first value picks it.
"""

from __future__ import annotations

import os
import textwrap

import numpy as np
import pytest

from hgq_chip.conversion import csim_cost
from hgq_chip.conversion.csim import CSimulation
from hgq_chip.errors import CompileError, SimulationCrashError, SimulationTooLargeError

BUILD_LIB = textwrap.dedent("""\
    #!/bin/bash
    set -e
    PROJECT=crashy
    LIB_STAMP=0badc0de
    g++ -O1 -fPIC -shared firmware/${PROJECT}.cpp -o firmware/${PROJECT}-${LIB_STAMP}.so
""")

# in[0] selects the behaviour: 0 doubles the inputs, 1 aborts, 2 fails an assert, 3 dereferences
# a null pointer, 4 calls exit(3), 5 writes to stderr and raises SIGSEGV, 6 uses a 64 MB local
# array (as hls4ml's latency Dense does for a large layer: more than an 8 MB main-thread stack).
FIRMWARE = textwrap.dedent("""\
    #include <cassert>
    #include <csignal>
    #include <cstdio>
    #include <cstdlib>
    extern "C" void crashy_double(double *in, double *out) {
        int mode = (int) in[0];
        if (mode == 1) std::abort();
        if (mode == 2) assert(in[1] < 0 && "firmware assert for the test");
        if (mode == 3) { volatile int *p = nullptr; out[0] = *p; }
        if (mode == 4) std::exit(3);
        if (mode == 5) { std::fprintf(stderr, "about to crash on purpose\\n"); std::fflush(stderr); std::raise(SIGSEGV); }
        if (mode == 6) {
            const int size = 64 << 20;
            volatile char big[size];
            big[0] = 1;
            big[size - 1] = 1;
            for (int i = 0; i < 3; i++) out[i] = 2 * in[i];
            out[3] = big[0] + big[size - 1];
            return;
        }
        for (int i = 0; i < 3; i++) out[i] = 2 * in[i];
        out[3] = in[0] + in[1] + in[2];
    }
""")


@pytest.fixture(scope="module")
def crashy(tmp_path_factory):
    directory = tmp_path_factory.mktemp("crashy")
    (directory / "firmware").mkdir()
    (directory / "build_lib.sh").write_text(BUILD_LIB)
    (directory / "firmware" / "crashy.cpp").write_text(FIRMWARE)
    sim = CSimulation(directory, "crashy")
    sim.build()
    return sim


def _samples(mode_of_crashing_sample, n=6, at=3):
    x = np.tile(np.array([[0.0, 0.25, -1.5]]), (n, 1))
    x[:, 1] += np.arange(n)
    x[at, 0] = mode_of_crashing_sample
    return x


def test_child_returns_exact_double_outputs(crashy):
    x = np.random.default_rng(0).normal(size=(50, 3)) * 1e6
    x[:, 0] = 0.0
    out, = crashy.run([x], [4])
    expected = np.concatenate([2 * x, x.sum(axis=1, keepdims=True)], axis=1)
    assert out.dtype == np.float64 and out.shape == (50, 4)
    assert np.array_equal(out, expected)


def test_firmware_with_large_local_arrays_runs_on_the_childs_large_stack(crashy):
    x = _samples(6)
    out, = crashy.run([x], [4])
    assert np.array_equal(out[3], [12.0, 6.5, -3.0, 2.0])
    assert np.array_equal(out[[0, 1, 2, 4, 5], :3], 2 * x[[0, 1, 2, 4, 5]])


@pytest.mark.parametrize("mode, signal_name", [(1, "SIGABRT"), (2, "SIGABRT"), (3, "SIGSEGV"), (5, "SIGSEGV")])
def test_firmware_crash_becomes_simulation_crash_error_and_process_survives(crashy, mode, signal_name):
    pid = os.getpid()
    with pytest.raises(SimulationCrashError) as caught:
        crashy.run([_samples(mode)], [4])
    message = str(caught.value)
    assert signal_name in message
    assert "sample 3 (0-based) of 6" in message
    if mode == 2:
        assert "firmware assert for the test" in message  # the assert's own text, from the child's stderr
    if mode == 5:
        assert "about to crash on purpose" in message
    assert caught.value.exit_code == 12
    # Still the same process, and the simulation still works after the crash.
    assert os.getpid() == pid
    assert np.array_equal(crashy.run([_samples(0)], [4])[0][:, 0], 2 * _samples(0)[:, 0])


def test_firmware_exit_becomes_simulation_crash_error(crashy):
    with pytest.raises(SimulationCrashError, match="exited with code 3"):
        crashy.run([_samples(4)], [4])


def test_missing_top_function_is_a_crash_error_not_an_attribute_error(crashy):
    wrong = CSimulation(crashy.project_dir, "crashy")
    wrong._library = crashy.build()
    wrong.project_name = "other"
    with pytest.raises(SimulationCrashError, match="other_double"):
        wrong.run([_samples(0)], [4])


def test_compile_error_shows_first_error_lines_not_the_warning_tail(tmp_path):
    (tmp_path / "firmware").mkdir()
    (tmp_path / "build_lib.sh").write_text(BUILD_LIB.replace("-O1", "-O1 -Wall -Wextra"))
    noise = "\n".join(f"int unused_{i}(int a, int b) {{ int x; return a; }}" for i in range(300))
    (tmp_path / "firmware" / "crashy.cpp").write_text(
        "int first_broken() { return undeclared_name_here; }\n" + noise + "\nint second_broken() { return also_missing; }\n"
    )
    with pytest.raises(CompileError) as caught:
        CSimulation(tmp_path, "crashy").build()
    message = str(caught.value)
    assert "undeclared_name_here" in message
    assert "unused_299" not in message  # the last warnings are not what is shown
    assert "full compiler output:" in message
    assert caught.value.exit_code == 13


def test_partial_library_of_an_interrupted_build_is_rebuilt(tmp_path):
    """A g++ killed while linking leaves a truncated library newer than every source: it is not
    taken as up to date (only a finished build marks its library), so the next run rebuilds."""
    (tmp_path / "firmware").mkdir()
    (tmp_path / "build_lib.sh").write_text(BUILD_LIB)
    (tmp_path / "firmware" / "crashy.cpp").write_text(FIRMWARE)
    library = CSimulation(tmp_path, "crashy").build()
    assert not CSimulation(tmp_path, "crashy").needs_build()
    whole = library.read_bytes()
    library.write_bytes(whole[: len(whole) // 3])  # what an interrupted link leaves
    os.utime(library)  # newer than the sources, as a library written last
    sim = CSimulation(tmp_path, "crashy")
    assert sim.needs_build()
    x = _samples(0)
    out = sim.run([x], [4])[0]
    assert np.array_equal(out[:, :3], 2 * x) and library.read_bytes() != whole[: len(whole) // 3]


def _hand_project(directory):
    (directory / "firmware").mkdir()
    (directory / "build_lib.sh").write_text(BUILD_LIB)
    (directory / "firmware" / "crashy.cpp").write_text(FIRMWARE)
    return CSimulation(directory, "crashy")


def test_project_predicted_too_large_is_refused_before_g_plus_plus_runs(tmp_path, monkeypatch):
    """SimulationTooLargeError names the predicted cost and the override; nothing is compiled.
    (The limit is lowered here: a real project over an hour of g++ would take that hour to make.)"""
    monkeypatch.setattr(csim_cost, "MAX_COMPILE_SECONDS", 1.0)
    sim = _hand_project(tmp_path)
    with pytest.raises(SimulationTooLargeError) as caught:
        sim.build()
    message = str(caught.value)
    assert str(tmp_path) in message and "allow_large=True" in message and "--allow-large" in message
    assert "of g++" in message and "GB of memory" in message
    assert not list(tmp_path.rglob("*.so"))
    library = sim.build(allow_large=True)
    out, = sim.run([np.array([[0.0, 1.0, 2.0]])], [4])
    assert library.is_file() and np.array_equal(out, [[0.0, 2.0, 4.0, 3.0]])


def test_compile_cost_counts_generated_statements_and_weights(tmp_path):
    (tmp_path / "firmware" / "nnet_utils").mkdir(parents=True)
    (tmp_path / "firmware" / "weights").mkdir()
    (tmp_path / "firmware" / "nnet_utils" / "nnet_code_gen.h").write_text("out[0] = a;\nout[1] = b;\n")
    (tmp_path / "firmware" / "weights" / "w2.h").write_text("//Numpy array shape [3, 3, 2, 4]\n//Min -1\n")
    (tmp_path / "firmware" / "weights" / "b2.h").write_text("//Numpy array shape [4]\n")
    cost = csim_cost.csim_cost(tmp_path)
    assert (cost.statements, cost.weights) == (2, 76)
    assert cost.seconds == csim_cost.COMPILE_BASE_SECONDS + 2 * csim_cost.SECONDS_PER_STATEMENT + \
        76 * csim_cost.SECONDS_PER_WEIGHT
    assert cost.fits
