"""HDense MLPs: the written firmware's C simulation equals Keras bit for bit.

Every comparison is np.array_equal on float64 outputs. Inputs come from the calibration
data, uniformly from the calibrated range, and from a range four times as wide (so SAT
clips and WRAP wraps). Several independent MLPs share one project where possible: one
g++ compilation then covers many configurations.
"""

from __future__ import annotations

import csv
import itertools
import re

import keras
import numpy as np
import pytest

import hgq_chip
from hgq_chip.conversion.csim import CSimulation
from mlp_models import (
    GRANULARITIES,
    OVERFLOWS,
    ROUNDINGS,
    MLPSpec,
    build_model,
    calibration_data,
    in_range_data,
    random_spec,
)

QUIET = {"log": lambda message: None}


def _convert_and_build(specs, directory, backend="Vitis", io_type="io_parallel", seed=0):
    keras.utils.set_random_seed(seed)
    model = build_model(specs)
    calibration = calibration_data(specs, 256, seed)
    hgq_chip.calibrate(model, calibration)
    conversion = hgq_chip.convert(model, directory, backend=backend, io_type=io_type, **QUIET)
    sim = CSimulation(directory)
    sim.build()
    return model, calibration, conversion, sim


def _input_sets(model, calibration, seed=1):
    return {
        "calibration": calibration,
        "uniform in range": in_range_data(calibration, 200, seed),
        "4x outside range": hgq_chip.random_inputs(model, 300, seed=seed, scale=4.0),
    }


def _assert_exact(model, sim, inputs, label):
    # Eager inference: the same ops as predict() without retracing for every batch shape.
    keras_out = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    keras_out = [np.asarray(o) for o in (keras_out if isinstance(keras_out, (list, tuple)) else [keras_out])]
    csim_out = sim.run(inputs, [int(np.prod(o.shape[1:])) for o in keras_out])
    for index, (k, c) in enumerate(zip(keras_out, csim_out)):
        k = np.asarray(k, np.float64).reshape(len(k), -1)
        differ = np.argwhere(k != c)
        assert np.array_equal(k, c), (
            f"{label}, output {index}: {len(differ)} values differ, first at {tuple(differ[0])}: "
            f"keras {k[tuple(differ[0])]} vs csim {c[tuple(differ[0])]}"
        )


def _random_specs(seed, count):
    rng = np.random.default_rng(seed)
    return [random_spec(rng, seed * 1000 + i) for i in range(count)]


# Every granularity x rounding x overflow, each as its own MLP branch of one project, plus
# a few seeded random architectures and bit-width assignments (one compilation for all).
GRID = [
    MLPSpec(n_in=6, widths=(8, 3), granularity=g, rounding=r, overflow=o, seed=i)
    for i, (g, r, o) in enumerate(itertools.product(GRANULARITIES, ROUNDINGS, OVERFLOWS))
]
RANDOM = _random_specs(2024, 5)


@pytest.fixture(scope="module")
def grid_project(tmp_path_factory):
    return _convert_and_build(GRID + RANDOM, tmp_path_factory.mktemp("grid") / "prj")


def test_grid_and_random_mlps_bit_exact_on_all_input_kinds(grid_project):
    model, calibration, _, sim = grid_project
    for kind, inputs in _input_sets(model, calibration).items():
        _assert_exact(model, sim, inputs, f"{kind} ({', '.join(s.label() for s in GRID + RANDOM)})")


def test_grid_uses_every_mode_in_the_firmware(grid_project):
    """The grid really contains RND/TRN and SAT/WRAP casts and per-element quantizers."""
    _, _, conversion, _ = grid_project
    defines = (conversion.output_dir / "firmware" / "defines.h").read_text()
    code = (conversion.output_dir / "firmware" / "myproject.cpp").read_text()
    assert "AP_RND" in defines and "AP_SAT" in defines
    assert re.search(r"ap_u?fixed<\d+,-?\d+>", defines)  # default modes: TRN, WRAP
    assert "nnet::linear<" in code  # uniform quantizers: plain casts
    assert re.search(r"nnet::b\d+_(q|d\d+_iq)<", code)  # per-element quantizers: masked casts


def test_pruned_weights_are_exact_zeros_in_the_firmware(grid_project):
    """Zero-bit weights: marked pruned, exact zeros in the weight files, counted as n_zeros.

    hls4ml's latency dense (nnet_dense_latency.h) multiplies every weight in C++; the
    zero products disappear in HLS synthesis because the weights are constants there
    (the header's __SYNTHESIS__ branch) and hls4ml lowers the multiplier limit by n_zeros.
    So what the firmware must guarantee, and this checks, is exact zeros plus the count.
    """
    _, _, conversion, _ = grid_project
    out = conversion.output_dir
    with open(out / "weight_types.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row["weight"] == "kernel"]
    assert any(row["pruned"] == "1" for row in rows), "the grid should prune some weights"
    for row in rows:
        assert (row["pruned"] == "1") == (float(row["value"]) == 0.0) == (row["bits"] == "0")
    parameters = (out / "firmware" / "parameters.h").read_text()
    for record in conversion.records:
        if "kernel" not in record.weights:
            continue
        kernel = record.weights["kernel"].values
        hls_layer = conversion.hls_model.graph[record.layer_name]
        index = hls_layer.index
        written = np.loadtxt(out / "firmware" / "weights" / f"w{index}.txt", delimiter=",", ndmin=1)
        assert np.array_equal(written, kernel.reshape(-1)), record.layer_name
        header = (out / "firmware" / "weights" / f"w{index}.h").read_text()
        synth_values = re.search(r"#else\s*\S+ w\d+\[\d+\] = \{([^}]*)\}", header).group(1)
        assert np.array_equal(np.array(synth_values.split(","), float), kernel.reshape(-1)), record.layer_name
        n_zeros = int(re.search(rf"struct config{index} .*?n_zeros = (\d+);", parameters, re.S).group(1))
        assert n_zeros == int(np.count_nonzero(kernel == 0)), record.layer_name


def test_vivado_io_stream_per_layer_bit_exact(tmp_path):
    specs = [MLPSpec(n_in=5, widths=(6, 3), granularity="per-layer", rounding="RND", overflow="SAT", seed=12)]
    model, calibration, _, sim = _convert_and_build(specs, tmp_path / "stream", backend="Vivado", io_type="io_stream")
    for kind, inputs in _input_sets(model, calibration).items():
        _assert_exact(model, sim, inputs, f"Vivado io_stream, {kind}")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 8])
def test_random_mlps_bit_exact_many(tmp_path, seed):
    """2 projects x 6 random MLPs = 12 random architectures and bit-width assignments (the model
    fuzzer draws many more; this keeps the MLP-specific random specs of mlp_models)."""
    specs = _random_specs(seed, 6)
    model, calibration, _, sim = _convert_and_build(specs, tmp_path / "random", seed=seed)
    for kind, inputs in _input_sets(model, calibration, seed=seed).items():
        _assert_exact(model, sim, inputs, f"seed {seed}, {kind}: {[s.label() for s in specs]}")


# Every granularity x rounding x overflow cell once, the backend alternating so that each backend
# meets every value of every factor (the full product with both backends was 24 compiles; the
# project-sharing grid above covers every cell on the default backend).
SINGLE_CELLS = [(g, r, o, ("Vitis", "Vivado")[(GRANULARITIES.index(g) + ROUNDINGS.index(r) + OVERFLOWS.index(o)) % 2])
                for g, r, o in itertools.product(GRANULARITIES, ROUNDINGS, OVERFLOWS)]


def test_single_cells_meet_every_value_with_both_backends():
    for factor, values in enumerate((GRANULARITIES, ROUNDINGS, OVERFLOWS)):
        assert {(cell[factor], cell[3]) for cell in SINGLE_CELLS} == set(itertools.product(values, ("Vitis", "Vivado")))


@pytest.mark.slow
@pytest.mark.parametrize("granularity,rounding,overflow,backend", SINGLE_CELLS)
def test_single_mlp_grid(tmp_path, backend, granularity, rounding, overflow):
    """Each configuration as its own single-input project (no branch sharing)."""
    specs = [MLPSpec(n_in=7, widths=(9, 5, 3), granularity=granularity, rounding=rounding, overflow=overflow, seed=3)]
    model, calibration, _, sim = _convert_and_build(specs, tmp_path / "prj", backend=backend)
    for kind, inputs in _input_sets(model, calibration).items():
        _assert_exact(model, sim, inputs, f"{backend} {specs[0].label()}, {kind}")


@pytest.mark.slow
@pytest.mark.parametrize("rounding,overflow,backend", [(r, o, ("Vitis", "Vivado")[(i + j) % 2])
                                                       for i, r in enumerate(ROUNDINGS) for j, o in enumerate(OVERFLOWS)])
def test_io_stream_grid(tmp_path, backend, rounding, overflow):
    specs = [MLPSpec(n_in=7, widths=(9, 4), granularity="per-layer", rounding=rounding, overflow=overflow, seed=4)]
    model, calibration, _, sim = _convert_and_build(specs, tmp_path / "prj", backend=backend, io_type="io_stream")
    for kind, inputs in _input_sets(model, calibration).items():
        _assert_exact(model, sim, inputs, f"io_stream {backend} {specs[0].label()}, {kind}")
