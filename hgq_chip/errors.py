"""The exceptions a user of hgq_chip can see; each message says what to do next."""


class HGQChipError(Exception):
    """Base class: the CLI prints these to stderr and exits with ``exit_code``."""

    exit_code = 1


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
    """C simulation and the Keras model disagree."""

    exit_code = 10
