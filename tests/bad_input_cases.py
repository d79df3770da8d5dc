"""The table of bad CLI inputs: what the user gives, the exit code and a message excerpt.

tests/test_bad_inputs.py runs every row and checks that docs/errors.md is this table
(``HGQ_CHIP_WRITE_ERRORS_DOC=1`` rewrites the doc from it), so the doc cannot drift.
Argument templates: ``{model}`` a calibrated .keras model (one input ``in0`` of 4
values), ``{prj}`` its converted project, ``{t}`` the case's own scratch folder, where
``files`` are created first (name -> callable(path) writing it; None copies the
project's file of that name).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from hgq_chip import errors
from hgq_chip.cli_runtime import EXIT_BROKEN_PIPE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED, error_classes
from mlp_models import MLPSpec, saved_model


@dataclass
class Case:
    command: str
    given: str  # what the user did, as the doc says it
    argv: list[str]
    error: type  # the hgq_chip.errors class (its exit_code is the expected status)
    excerpt: str
    files: dict = field(default_factory=dict)


def npy(array):
    return lambda path: np.save(path, array)


def text(content: str):
    return lambda path: path.write_text(content)


def executable(content: str):
    def write(path):
        path.write_text(content)
        path.chmod(0o755)
    return write


def keras_archive(path):
    """A file import-qkeras recognises as a Keras archive (a zip) it may replace with --force."""
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")


def npz(**arrays):
    return lambda path: np.savez(path, **arrays)


# The {model} of the table (test_bad_inputs.py saves it and converts it into {prj}).
MODEL_SPECS = [MLPSpec(n_in=4, widths=(3,), granularity="per-layer", seed=2)]


def retrained_model(path):
    """{model} built again with one kernel changed, as more training would: same inputs and
    outputs as {prj}, other weights."""
    model, _ = saved_model(path, MODEL_SPECS)
    layer = next(layer for layer in model.layers if hasattr(layer, "kernel"))
    layer.kernel.assign(layer.kernel.numpy() + 0.25)
    model.save(path)


def recalibrated_model(path):
    """{model} built again and calibrated on inputs 8x wider: other recorded ranges."""
    import hgq_chip

    model, data = saved_model(path, MODEL_SPECS)
    hgq_chip.calibrate(model, [8.0 * x for x in data])
    model.save(path)


def uncalibrated_model(path):
    """{model} built again and saved without calibration: no activation ranges recorded."""
    saved_model(path, MODEL_SPECS, calibrate=False)


def softmax_model(softmax):
    """{model} with a softmax layer made by ``softmax()`` appended, calibrated and saved."""
    def write(path):
        import keras

        import hgq_chip

        model, data = saved_model(path, MODEL_SPECS)
        model = keras.Model(model.inputs, softmax()(model.outputs[0]))
        hgq_chip.calibrate(model, data)
        model.save(path)

    return write


def _keras_softmax():
    import keras

    return keras.layers.Softmax(name="probabilities")


def _hsoftmax():
    from hgq_chip.layers import HSoftmax

    return HSoftmax(name="probabilities")


X4 = np.zeros((5, 4), np.float32)
CONVERT_M = ["convert", "{t}/m.keras", "--backend", "Vitis", "--output-dir", "{t}/prj", "--quiet"]
VERIFY = ["verify", "{model}", "{prj}", "--quiet"]
REPORT = ["report", "{prj}"]
PROJECT_FILES = ("summary.json", "weight_types.csv", "hls_config.yml")

CASES = [
    Case("verify", "`--data` file missing", VERIFY + ["--data", "{t}/none.npy"], errors.DataError, "not found"),
    Case("verify", "`--data` not an array file", VERIFY + ["--data", "{t}/x.npy"], errors.DataError,
         "cannot read", {"x.npy": text("not numpy")}),
    Case("verify", "`--data` of Python objects (pickle)", VERIFY + ["--data", "{t}/x.npy"], errors.DataError,
         "cannot read", {"x.npy": lambda p: np.save(p, np.array([{}, 1], dtype=object), allow_pickle=True)}),
    Case("verify", "`--data` of strings", VERIFY + ["--data", "{t}/x.npy"], errors.DataError, "not real numbers",
         {"x.npy": npy(np.array([["a"] * 4] * 3))}),
    Case("verify", "`--data` per-sample shape differs from the model's", VERIFY + ["--data", "{t}/x.npy"],
         errors.DataError, "expects an array of shape (samples, 4), got (5, 3)", {"x.npy": npy(np.zeros((5, 3)))}),
    Case("verify", "`--data` one sample without the samples axis", VERIFY + ["--data", "{t}/x.npy"],
         errors.DataError, "use x[None]", {"x.npy": npy(np.zeros(4))}),
    Case("verify", "`--data` of the wrong rank", VERIFY + ["--data", "{t}/x.npy"], errors.DataError,
         "got (5, 4, 1)", {"x.npy": npy(np.zeros((5, 4, 1)))}),
    Case("verify", "`--data` with no samples", VERIFY + ["--data", "{t}/x.npy"], errors.DataError, "is empty",
         {"x.npy": npy(np.zeros((0, 4)))}),
    Case("verify", "`--data` holding NaN", VERIFY + ["--data", "{t}/x.npy"], errors.DataError, "NaN or infinite",
         {"x.npy": npy(np.where(np.eye(5, 4) > 0, np.nan, 0.0))}),
    Case("verify", "`--data` holding inf", VERIFY + ["--data", "{t}/x.npy"], errors.DataError, "NaN or infinite",
         {"x.npy": npy(np.full((2, 4), np.inf))}),
    Case("verify", "`--data` .npz whose keys are not the input names", VERIFY + ["--data", "{t}/x.npz"],
         errors.DataError, "the model's inputs are 'in0' (samples, 4)", {"x.npz": npz(a=X4, b=X4)}),
    Case("verify", "`--data` .npz holding no arrays", VERIFY + ["--data", "{t}/x.npz"], errors.DataError,
         "holds no arrays", {"x.npz": npz()}),
    Case("verify", "`--random 0`", VERIFY + ["--random", "0"], errors.UnsupportedConfigurationError,
         "--random must be at least 1"),
    Case("verify", "`--seed -1`", VERIFY + ["--random", "5", "--seed", "-1"], errors.UnsupportedConfigurationError,
         "--seed must be at least 0"),
    Case("verify", "`--scale 0`", VERIFY + ["--random", "5", "--scale", "0"], errors.UnsupportedConfigurationError,
         "--scale must be a positive finite"),
    Case("verify", "`--scale nan`", VERIFY + ["--random", "5", "--scale", "nan"],
         errors.UnsupportedConfigurationError, "--scale must be a positive finite"),
    Case("verify", "`--scale 1e40` (samples beyond float32's largest number)", VERIFY + ["--random", "5", "--scale",
         "1e40"], errors.UnsupportedConfigurationError, "beyond float32's largest number"),
    Case("verify", "`--scale 1e300` (advice: the largest scale that fits, not inf)",
         VERIFY + ["--random", "5", "--scale", "1e300"], errors.UnsupportedConfigurationError,
         "use a scale of at most "),
    Case("verify", "`--batch-size 0`", VERIFY + ["--random", "5", "--batch-size", "0"],
         errors.UnsupportedConfigurationError, "--batch-size must be at least 1"),
    Case("verify", "model file missing", ["verify", "{t}/none.keras", "{prj}", "--random", "5", "--quiet"],
         errors.ModelFileError, "not found"),
    Case("verify", "model file a folder", ["verify", "{t}", "{prj}", "--random", "5", "--quiet"],
         errors.ModelFileError, "(it is a folder)"),
    Case("verify", "model file corrupt", ["verify", "{t}/m.keras", "{prj}", "--random", "5", "--quiet"],
         errors.ModelFileError, "cannot load", {"m.keras": text("not a zip")}),
    Case("verify", "a model retrained after the conversion (same architecture, other weights)",
         ["verify", "{t}/m.keras", "{prj}", "--random", "5", "--quiet"], errors.ProjectError,
         "was converted from other weights or quantizer ranges", {"m.keras": retrained_model}),
    Case("verify", "a model recalibrated after the conversion (other recorded ranges)",
         ["verify", "{t}/m.keras", "{prj}", "--random", "5", "--quiet"], errors.ProjectError,
         "Convert this model again", {"m.keras": recalibrated_model}),
    Case("convert", "`--output-dir` a symbolic link to a missing folder", CONVERT_M[:5] + ["{t}/link", "--quiet"],
         errors.UnsafeOutputError, "refusing to follow it", {"link": lambda p: p.symlink_to(p.parent / "gone" / "x")}),
    Case("convert", "a model ending in `keras.layers.Softmax` (or `Activation('softmax')`)", CONVERT_M,
         errors.UnsupportedLayerError, "replace it with hgq_chip.layers.HSoftmax",
         {"m.keras": softmax_model(_keras_softmax)}),
    Case("convert", "`--io-type io_stream` with an `HSoftmax`", CONVERT_M + ["--io-type", "io_stream"],
         errors.UnsupportedConfigurationError, "exists for io_parallel only", {"m.keras": softmax_model(_hsoftmax)}),
    Case("estimate", "a folder that is not a project", ["estimate", "{t}"], errors.ProjectError,
         "estimate_inputs.json"),
    Case("estimate", "`estimate_inputs.json` of another JSON shape (a list)", ["estimate", "{t}"], errors.ProjectError,
         "is not an estimate-inputs file", {"hgq_chip_project.json": None, "estimate_inputs.json": text("[]")}),
    Case("estimate", "`--clock-period 0`", ["estimate", "{prj}", "--clock-period", "0"],
         errors.UnsupportedConfigurationError, "clock period must be positive"),
    Case("estimate", "`--strategy resource`", ["estimate", "{prj}", "--strategy", "resource"],
         errors.UnsupportedConfigurationError, "unknown strategy"),
    Case("synth", "`--yosys` a path that does not exist", ["synth", "{prj}", "--yosys", "{t}/bin/yosys"],
         errors.ToolMissingError, "no such executable file"),
    Case("synth", "`--yosys` an executable that is not yosys", ["synth", "{prj}", "--yosys", "{t}/fake-yosys"],
         errors.ToolMissingError, "is not a working yosys", {"fake-yosys": executable("#!/bin/sh\necho hello\n")}),
    Case("synth", "an uncalibrated model (checked before yosys)", ["synth", "{t}/u.keras"], errors.CalibrationError,
         "activation ranges were never recorded", {"u.keras": uncalibrated_model}),
    Case("synth", "`--time-limit 0`", ["synth", "{prj}", "--time-limit", "0"],
         errors.UnsupportedConfigurationError, "--time-limit must be a positive number of seconds"),
    Case("synth", "`--stages 0`", ["synth", "{prj}", "--stages", "0"],
         errors.UnsupportedConfigurationError, "--stages must be a whole number"),
    Case("synth", "`--rtl-dir` a folder holding files", ["synth", "{prj}", "--rtl-dir", "{t}"],
         errors.UnsafeOutputError, "choose a new or empty folder", {"mine.v": text("module mine; endmodule")}),
    Case("report", "a folder that is not a project", ["report", "{t}"], errors.ProjectError, "lacks summary.json"),
    Case("report", "corrupt summary.json", ["report", "{t}"], errors.ProjectError, "summary.json",
         {**{name: None for name in PROJECT_FILES}, "summary.json": text("{not json")}),
    Case("report", "weight_types.csv without its columns", ["report", "{t}"], errors.ProjectError,
         "lacks the columns", {**{name: None for name in PROJECT_FILES}, "weight_types.csv": text("a,b\n1,2\n")}),
    Case("report", "`--pareto` missing", REPORT + ["--pareto", "{t}/none.json", "--output", "{t}/r.html"],
         errors.DataError, "no Pareto index"),
    Case("report", "`--pareto` not JSON", REPORT + ["--pareto", "{t}/p.json", "--output", "{t}/r.html"],
         errors.DataError, "cannot read the Pareto index", {"p.json": text("[{")}),
    Case("report", "`--pareto` empty list", REPORT + ["--pareto", "{t}/p.json", "--output", "{t}/r.html"],
         errors.DataError, "is not a Pareto index", {"p.json": text("[]")}),
    Case("report", "`--pareto` entries without ebops", REPORT + ["--pareto", "{t}/p.json", "--output", "{t}/r.html"],
         errors.DataError, "is not a Pareto index", {"p.json": text(json.dumps([{"metric": 1}]))}),
    Case("report", "`--adaqat` empty CSV", REPORT + ["--adaqat", "{t}/a.csv", "--output", "{t}/r.html"],
         errors.DataError, "is empty", {"a.csv": text("")}),
    Case("report", "`--adaqat` non-numeric values", REPORT + ["--adaqat", "{t}/a.csv", "--output", "{t}/r.html"],
         errors.DataError, "non-numeric", {"a.csv": text("step,d0 N_w\n0,six\n")}),
    Case("report", "`--output` is the project's summary.json", REPORT + ["--output", "{prj}/summary.json"],
         errors.UnsafeOutputError, "which this command reads"),
    Case("report", "`--output` is the `--adaqat` CSV", REPORT + ["--adaqat", "{t}/a.csv", "--output", "{t}/a.csv"],
         errors.UnsafeOutputError, "which this command reads", {"a.csv": text("step,d0 N_w\n0,6\n")}),
    Case("report", "`--output` an existing file that is not a report", REPORT + ["--output", "{t}/notes.html"],
         errors.UnsafeOutputError, "was not written by hgq_chip", {"notes.html": text("<html>mine</html>")}),
    Case("report", "`--output` a folder", REPORT + ["--output", "{t}"], errors.UnsafeOutputError, "is a folder"),
    Case("report", "`--output` below a file", REPORT + ["--output", "{t}/f.txt/r.html"], errors.UnsafeOutputError,
         "is a file", {"f.txt": text("x")}),
    Case("import-qkeras", "QKeras model missing", ["import-qkeras", "{t}/none.h5", "{t}/o.keras"],
         errors.ModelFileError, "not found"),
    Case("import-qkeras", "output not named .keras", ["import-qkeras", "{t}/q.h5", "{t}/o.h5"],
         errors.UnsupportedConfigurationError, "NAME.keras", {"q.h5": text("x")}),
    Case("import-qkeras", "output exists, no `--force`", ["import-qkeras", "{t}/q.h5", "{t}/o.keras"],
         errors.OutputExistsError, "pass --force", {"q.h5": text("x"), "o.keras": keras_archive}),
    Case("import-qkeras", "output is the input (even with `--force`)",
         ["import-qkeras", "{t}/q.keras", "{t}/q.keras", "--force"], errors.UnsafeOutputError,
         "which this command reads", {"q.keras": text("x")}),
    Case("import-qkeras", "output a folder", ["import-qkeras", "{t}/q.h5", "{t}/d.keras", "--force"],
         errors.UnsafeOutputError, "is a folder", {"q.h5": text("x"), "d.keras/keep": text("mine")}),
    Case("import-qkeras", "`--data` missing", ["import-qkeras", "{t}/q.h5", "{t}/o.keras", "--data", "{t}/n.npy"],
         errors.DataError, "not found", {"q.h5": text("x")}),
    Case("import-qkeras", "QKeras model file corrupt", ["import-qkeras", "{t}/q.h5", "{t}/o.keras"],
         errors.ModelFileError, "QKeras could not read", {"q.h5": text("not hdf5")}),
]

# Exit statuses that are not an error class: (situation, status, source of the number).
OTHER_STATUSES = [
    ("success", 0),
    ("unexpected internal error (one line `hgq_chip: internal error: ...`; `HGQ_CHIP_DEBUG=1` shows the traceback)",
     EXIT_INTERNAL),
    ("command-line usage (argparse: unknown option, `--random abc`)", 2),
    ("interrupted with Ctrl-C (one line `hgq_chip: error: interrupted (Ctrl-C)`)", EXIT_INTERRUPTED),
    ("stopped with SIGTERM (one line `hgq_chip: error: terminated (SIGTERM)`; g++ and the simulation child are "
     "stopped too)", EXIT_TERMINATED),
    ("stdout closed early (`hgq_chip estimate DIR | head -1`): quiet, no traceback", EXIT_BROKEN_PIPE),
    ("stdout closed from the start (`hgq_chip estimate DIR >&-`): one line `hgq_chip: error: standard output is "
     "closed ...` before any work", EXIT_BROKEN_PIPE),
]


def render_doc() -> str:
    """docs/errors.md, generated from CASES, OTHER_STATUSES and hgq_chip.errors."""
    lines = [
        "# Errors and exit codes",
        "",
        "Generated from `tests/bad_input_cases.py` and checked by `tests/test_bad_inputs.py` (which runs",
        "every row); regenerate with `HGQ_CHIP_WRITE_ERRORS_DOC=1 pytest tests/test_bad_inputs.py`.",
        "",
        "Every error prints one line on stderr, `hgq_chip: error: MESSAGE`, and exits with its class's code;",
        "in Python the same classes are raised (`hgq_chip.errors`). No failing command changes a user's file.",
        "",
        "## Exit codes",
        "",
        "| exit code | class (`hgq_chip.errors`) | meaning |",
        "|---|---|---|",
    ]
    for cls in error_classes():
        doc = " ".join((cls.__doc__ or "").split())
        lines.append(f"| {cls.exit_code} | `{cls.__name__}` | {doc} |")
    lines += ["", "| exit code | situation |", "|---|---|"]
    lines += [f"| {status} | {situation.replace('|', chr(92) + '|')} |" for situation, status in OTHER_STATUSES]
    lines += ["", "## Bad inputs", "", "| command | input | exit code | message excerpt |", "|---|---|---|---|"]
    for case in CASES:
        excerpt = case.excerpt.replace("|", "\\|")
        lines.append(f"| `{case.command}` | {case.given} | {case.error.exit_code} (`{case.error.__name__}`) "
                     f"| `{excerpt}` |")
    lines += [
        "",
        "## Calibration data (`hgq_chip.calibrate`)",
        "",
        "`DataError` (11) before any range is reset, naming the input and the shape it expects, for: a wrong",
        "number of arrays or dict keys, a per-sample shape or rank that differs from the model's, a",
        "non-numeric dtype, no samples, NaN or inf, inputs with different sample counts, and (batch by batch)",
        "the same faults in a `tf.data.Dataset` or generator. Any failure, including an exception or Ctrl-C",
        "in the middle of the batch loop, restores the ranges the model had before the call",
        "(`tests/test_calibrate_inputs.py`).",
        "",
    ]
    return "\n".join(lines)
