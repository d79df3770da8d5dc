"""hgq_chip: Keras models to FPGA firmware with exactly as many bits as the task needs."""

from ._version import __version__

__all__ = ["__version__"]
