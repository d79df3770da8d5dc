"""The exceptions a user of hgq_chip can see; each message says what to do next.

Exit codes of the CLI (``hgq_chip ...``): 0 success, 1 any other hgq_chip error,
2 command-line usage (argparse's own code, used by no error class), 3-19 one per class
below, 130 interrupted (Ctrl-C), 141 stdout closed. The table of docs/cli.md ("Exit codes") lists them;
``tests/test_exit_codes.py`` checks that each class has its own code, none reserved, each in
that table. Programming errors (e.g. ``hgq_chip.registry.DuplicateRegistrationError``) are not here.
"""


class HGQChipError(Exception):
    """Base class: the CLI prints these to stderr and exits with ``exit_code``."""

    exit_code = 1


class DataError(HGQChipError):
    """Input data (``--data``, calibration or verification arrays, ``.npz`` files) is missing or malformed."""

    exit_code = 11


class ModelFileError(HGQChipError):
    """A model file is missing, unreadable or not a Keras model."""

    exit_code = 3


class UnsupportedLayerError(HGQChipError):
    """A layer has no exact fixed-point conversion."""

    exit_code = 4


class UnsupportedConfigurationError(HGQChipError):
    """A backend, io_type, strategy or option combination that cannot be honoured."""

    exit_code = 5


class CalibrationError(HGQChipError):
    """Activation ranges are missing or invalid (e.g. the model was never calibrated)."""

    exit_code = 6


class NumericError(HGQChipError):
    """NaN or infinite values where fixed-point numbers are required."""

    exit_code = 7


class OutputExistsError(HGQChipError):
    """The output directory exists and overwriting was not asked for."""

    exit_code = 8


class ToolMissingError(HGQChipError):
    """An external tool (g++, yosys, verilator) is not installed."""

    exit_code = 9


class MismatchError(HGQChipError):
    """C simulation (or an RTL project's Verilator simulation) and the Keras model disagree."""

    exit_code = 10


class SimulationCrashError(HGQChipError):
    """The compiled C simulation (or Verilator model) died (abort, assert, segfault) in its child process."""

    exit_code = 12


class CompileError(HGQChipError):
    """g++ (or Verilator) could not build the project's C simulation (or RTL simulation)."""

    exit_code = 13


class UnsafeOutputError(HGQChipError):
    """An output path that a command must not write into or replace (a user folder, the input's folder, ...)."""

    exit_code = 14


class OutputLockedError(HGQChipError):
    """Another hgq_chip command is writing the same output folder."""

    exit_code = 15


class ProjectError(HGQChipError):
    """A project folder is not an hgq_chip/hls4ml project, or does not match the model given with it."""

    exit_code = 16


class SimulationTooLargeError(HGQChipError):
    """A project's C simulation (or Verilator model) is predicted to take too long or too much memory to compile here."""

    exit_code = 17


class SweepSpecError(HGQChipError):
    """A sweep spec (``hgq_chip sweep SPEC.yaml``) is unreadable, names something that cannot be imported, or
    asks for a search the sampler cannot run."""

    exit_code = 18


class ToolTimeoutError(HGQChipError):
    """An external tool run (yosys, nextpnr) did not finish within its time limit (``--time-limit``)."""

    exit_code = 20


class ClusterError(HGQChipError):
    """Ray is not installed, its cluster cannot be reached, or it would not stay on the loopback address."""

    exit_code = 19
