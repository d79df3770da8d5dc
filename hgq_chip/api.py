"""The user-facing functions behind the CLI: load a model, convert it, verify the firmware.

Each accepts either a ``keras.Model`` or the path of a saved ``.keras`` file, so the
Python API and ``hgq_chip convert`` / ``hgq_chip verify`` do exactly the same thing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from .conversion.csim import project_name_of  # noqa: F401  (public: the project's top function name)
from .conversion.graph import graph_nodes
from .conversion.inputs import input_quantizers, keras_input_dtypes
from .conversion.graph import as_functional
from .conversion.project import convert as _convert_project
from .conversion.verification import VERIFY_BATCH, VerifyReport, verify_batches
from .conversion.verification import verify as _verify_project
from .errors import CalibrationError, DataError, MismatchError, UnsupportedConfigurationError
from .sampling_options import API_NAMES, check_sample_bounds, check_sampling_options
from .model_file import load_model  # noqa: F401  (public: hgq_chip.load_model)
from .progress import to_stderr

# How far outside the calibrated range ``random_inputs`` draws by default: the interval
# around each element's recorded range is this many times as wide, so saturation and
# wrap-around of the input quantizers are exercised, not only in-range rounding.
DEFAULT_RANDOM_SCALE = 4.0


def _as_model(model):
    return load_model(model) if isinstance(model, (str, os.PathLike)) else model


def _check_output_before_loading(model, output_dir, force, replace_non_project, reads: tuple, log) -> tuple:
    """For a model given as a path: the output folder's checks (``output_dir.check_output_dir``,
    the model file among what it must not replace) before the model is loaded. Returns ``reads``
    with the model's path added."""
    if not isinstance(model, (str, os.PathLike)):
        return reads
    from .conversion.output_dir import check_output_dir

    reads += (model,)
    check_output_dir(output_dir, force=force or replace_non_project, replace_non_project=replace_non_project,
                     reads=reads)
    log(f"[hgq_chip] loading {model}")
    return reads


def convert(model, output_dir, backend="Vitis", io_type="io_parallel", part=None, clock_period=5.0,
            reuse_factor=1, strategy="latency", force=False, project_name="myproject", log=to_stderr,
            replace_non_project=False, reads=()):
    """Write the hls4ml project of a calibrated model into ``output_dir`` (see ``hgq_chip convert``).

    ``model`` is a ``keras.Model`` or a ``.keras`` path. Returns the ``Conversion``
    (records, types, the hls4ml model). Nothing is left in ``output_dir`` if it fails.
    ``force`` replaces an earlier project; ``replace_non_project`` also a folder convert did
    not write (its files are deleted). Unsafe folders (the current directory, home, one holding
    the model or one of ``reads``, the files the caller read, ...) raise UnsafeOutputError
    before anything is loaded or written (rules: ``hgq_chip.conversion.output_dir``).
    """
    reads = _check_output_before_loading(model, output_dir, force, replace_non_project, tuple(reads), log)
    return _convert_project(
        _as_model(model), output_dir, backend=backend, io_type=io_type, part=part, clock_period=clock_period,
        reuse_factor=reuse_factor, strategy=strategy, force=force or replace_non_project, project_name=project_name,
        log=log, replace_non_project=replace_non_project, reads=reads,
    )


def input_ranges(model) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per model input: the (lo, hi) arrays, input-shaped, recorded by the quantizers reading it."""
    model = as_functional(model)
    nodes = graph_nodes(model)
    ranges = []
    for tensor in model.inputs:
        shape = tuple(int(d) for d in tensor.shape[1:])
        lows, highs = [], []
        for q in input_quantizers(nodes, tensor):
            if not q.calibrated:
                raise CalibrationError(
                    f"input quantizer {q.path} has no recorded range; call hgq_chip.calibrate(model, x) first"
                )
            lows.append(np.broadcast_to(np.asarray(q.range_lo.numpy(), np.float64), shape))
            highs.append(np.broadcast_to(np.asarray(q.range_hi.numpy(), np.float64), shape))
        ranges.append((np.min(lows, axis=0), np.max(highs, axis=0)))
    return ranges


def random_inputs(model, n: int, seed: int = 0, scale: float = DEFAULT_RANDOM_SCALE) -> list[np.ndarray]:
    """``n`` samples per input, uniform over each element's calibrated range widened ``scale`` times.

    The interval keeps the range's centre and is ``scale`` times as wide (elements whose
    recorded range is a single value get a half-width of 1), so ``scale > 1`` draws
    values beyond what calibration saw. Values have the dtype Keras reads each input in
    (float32, or float64 for a model computing in float64). The same as the batches of
    :func:`random_batches` put together.
    """
    check_sampling_options(n, seed, scale, 1)
    names = {**API_NAMES, "batch_size": "n (random_batches draws any number of samples a batch at a time)"}
    return next(random_batches(model, n, seed, scale, batch_size=n, names=names))


def random_batches(model, n: int, seed: int = 0, scale: float = DEFAULT_RANDOM_SCALE,
                   batch_size: int = VERIFY_BATCH, names=API_NAMES) -> Iterator[list[np.ndarray]]:
    """The samples of :func:`random_inputs` drawn ``batch_size`` at a time (the last batch may be
    shorter), so ``n`` may exceed what fits in memory: the batches put together equal
    ``random_inputs(model, n, seed, scale)`` value for value.

    Input ``j`` is drawn from NumPy's default generator seeded with ``seed`` and advanced past
    the values of inputs ``0..j-1`` (``n`` times their sizes), in sample order.
    UnsupportedConfigurationError, before the first batch is asked for, for an ``n``, ``seed``,
    ``scale`` or ``batch_size`` that :func:`~hgq_chip.sampling_options.check_sampling_options`
    refuses, a ``scale`` that would draw values beyond the input dtype's largest number
    (:func:`~hgq_chip.sampling_options.check_sample_bounds`), or a batch larger than the
    memory available (use a smaller ``batch_size``).
    """
    check_sampling_options(n, seed, scale, batch_size, names)
    model = as_functional(_as_model(model))
    dtypes = keras_input_dtypes(model, graph_nodes(model))
    intervals, generators, drawn = [], [], 0
    for (lo, hi), dtype in zip(input_ranges(model), dtypes):
        centre = (lo + hi) / 2
        unit = np.where(hi > lo, (hi - lo) / 2, 1.0)
        check_sample_bounds(len(intervals), centre, unit, dtype, scale, names)
        half = unit * scale
        generator = np.random.default_rng(seed)
        generator.bit_generator.advance(drawn)  # one 64-bit draw per float64 uniform value
        drawn += n * lo.size
        intervals.append((centre - half, centre + half, dtype))
        generators.append(generator)
    _check_batch_memory(intervals, min(n, batch_size), names)
    return _draw_batches(intervals, generators, n, batch_size)


def _check_batch_memory(intervals, size: int, names) -> None:
    """UnsupportedConfigurationError when one batch of ``size`` samples (drawn as float64, then
    cast) would need more than the memory available, instead of NumPy's MemoryError mid-way."""
    from .conversion.csim_cost import available_memory_mb

    needed_mb = sum(low.size for low, _, _ in intervals) * size * 16 / 1e6
    available = available_memory_mb()
    if available is not None and needed_mb > 0.8 * available:
        raise UnsupportedConfigurationError(
            f"a batch of {size} random samples needs about {needed_mb:,.0f} MB, more than the {available:,.0f} MB "
            f"available; pass a smaller {names['batch_size']} (verify streams batches, so any number of samples "
            "fits in memory)")


def _draw_batches(intervals, generators, n: int, batch_size: int) -> Iterator[list[np.ndarray]]:
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        yield [generator.uniform(low, high, size=(size, *low.shape)).astype(dtype)
               for (low, high, dtype), generator in zip(intervals, generators)]


def _verify_rtl(model, project_dir, x, batches, random, seed, scale, batch_size, log, allow_large):
    from .conversion.verification import array_batches, check_inputs
    from .hdl.rtl_verify import verify_rtl

    if x is None:
        log(f"[hgq_chip] drawing {random} random samples (seed {seed}) over the calibrated input range widened "
            f"{scale:g}x, {batch_size} at a time")
        return verify_rtl(model, project_dir, batches, log=log, check=False, allow_large=allow_large)
    inputs = check_inputs(as_functional(model), x)
    return verify_rtl(model, project_dir, array_batches(inputs, batch_size), log=log, check=False,
                      allow_large=allow_large)


def rtl(model, output_dir, *, stages=None, clock_period=None, strategy="latency", force=False,
        replace_non_project=False, reads=(), log=to_stderr):
    """Write the pipelined Verilog project of a calibrated model into ``output_dir`` (see ``hgq_chip rtl``).

    ``model`` is a ``keras.Model`` or a ``.keras`` path. ``stages``: exactly that many pipeline
    stages; else chosen from ``clock_period`` (ns, default 5, also written into the XDC/SDC
    constraints). Returns the ``hgq_chip.hdl.project.RTLProject``. Output folder rules, errors
    and atomicity as for :func:`convert` (everything is traced before anything is written; a
    layer without RTL tracing is an UnsupportedLayerError naming it). ``verify(model, output_dir,
    ...)`` then simulates it with Verilator.
    """
    from .hdl.project import rtl as _write_rtl

    reads = _check_output_before_loading(model, output_dir, force, replace_non_project, tuple(reads), log)
    return _write_rtl(_as_model(model), output_dir, stages=stages, clock_period=clock_period, strategy=strategy,
                      force=force or replace_non_project, replace_non_project=replace_non_project, reads=reads,
                      log=log)


def verify(model, project_dir, x=None, *, random=None, seed=0, scale=DEFAULT_RANDOM_SCALE, project_name=None,
           strict=False, log=to_stderr, batch_size=VERIFY_BATCH, allow_large=False, names=API_NAMES) -> VerifyReport:
    """Compile ``project_dir``'s C simulation and compare it with ``model`` bit for bit.

    An RTL project (written by :func:`rtl`) is compiled with Verilator instead and its samples
    clocked through the pipeline one per cycle; its report (``RTLVerifyReport``) also checks that
    every output appears exactly the pipeline's latency in cycles after its input, and is saved
    in the project's ``results/verify.json`` (``hgq_chip.hdl.results``) for ``hgq_chip report``.

    Inputs are ``x`` (an array, or a list for several inputs), or ``random`` samples from
    :func:`random_batches`. ``strict=True`` raises MismatchError on any difference.
    Keras and the firmware run ``batch_size`` samples at a time (random samples are also drawn
    batch by batch), so memory stays bounded for any number of samples. A project predicted too
    large to compile here (``hgq_chip.conversion.csim_cost``) raises SimulationTooLargeError before
    g++ runs, unless ``allow_large=True``.
    Raises UnsupportedConfigurationError (a ``random``, ``seed``, ``scale`` or ``batch_size`` that
    :func:`random_batches` refuses; ``names`` spells them in messages), DataError (inputs not
    shaped as the model's), ProjectError (the project's
    inputs/outputs differ from the model's, or it was converted from other weights or
    ranges, e.g. before retraining: checked before compiling), CompileError,
    SimulationCrashError (the firmware died in its child process; this process survives).
    """
    if (x is None) == (random is None):
        raise DataError("give verification inputs either as data (x) or as a number of random samples, not both")
    check_sampling_options(random, seed, scale, batch_size, names)
    model = _as_model(model)
    batches = None if x is not None else random_batches(model, random, seed, scale, batch_size, names)
    from .hdl.rtl_verify import is_rtl_project

    if is_rtl_project(project_dir):  # written by `hgq_chip rtl`: Verilator instead of the C simulation
        report = _verify_rtl(model, project_dir, x, batches, random, seed, scale, batch_size, log, allow_large)
        from .hdl.results import save_verify, verify_label

        save_verify(project_dir, verify_label(random, seed, scale), report)  # for `hgq_chip report`
        if strict and not report.ok:
            raise MismatchError(report.describe())
        return report
    project_name = project_name or project_name_of(project_dir)
    if x is None:
        log(f"[hgq_chip] drawing {random} random samples (seed {seed}) over the calibrated input range widened "
            f"{scale:g}x, {batch_size} at a time")
        report = verify_batches(model, project_dir, batches, project_name=project_name, log=log, check=False,
                                allow_large=allow_large)
    else:
        report = _verify_project(model, project_dir, x, project_name=project_name, log=log, batch_size=batch_size,
                                 allow_large=allow_large)
    if strict and not report.ok:
        raise MismatchError(report.describe())
    return report
