"""Building the hgq_chip model of a QKeras model described by the Keras-2 child process."""

from __future__ import annotations

from ..progress import to_stderr
from .graph import GraphBuilder
from .legacy_process import describe_qkeras
from .plan import check_description, plan_layers
from .quantizer_formats import DEFAULT_INPUT_F


def model_from_description(description: dict, weights: dict, x=None, input_f: int = DEFAULT_INPUT_F,
                           granularity: str = "per-element", log=to_stderr):
    """The hgq_chip model of a description written by ``legacy_reader describe``."""
    check_description(description)
    plan = plan_layers(description, log)
    return GraphBuilder(weights, granularity, input_f, x, log).build(description, plan)


def from_qkeras(path, x=None, input_f: int = DEFAULT_INPUT_F, granularity: str = "per-element", log=to_stderr):
    """An hgq_chip ``keras.Model`` equivalent to the QKeras model saved at ``path`` (``.h5``).

    Weights are QKeras' quantized weights and each starts with QKeras' fractional bits;
    activation quantizers get QKeras' formats (ties to even, saturation) and ranges, so
    the model is already calibrated. ``x`` is needed only when the QKeras input is not
    quantized: it sets the input's range, ``input_f`` its fractional bits. ``granularity``
    is that of the activation bit-widths. QKeras runs in a child process (Keras 2), so the
    argument is the saved file, not a live QKeras model. Chains and functional graphs
    (``Add``, ``Concatenate``) import; docs/qkeras.md lists each layer and how exact it is.

    Raises ``ModelFileError`` (not a path, missing or unreadable file), ``ToolMissingError``
    (QKeras not usable), ``UnsupportedLayerError`` naming a layer or quantizer that has no exact
    equivalent and what to use instead, ``CalibrationError`` (float input and no ``x``).
    """
    description, weights = describe_qkeras(path)
    return model_from_description(description, weights, x=x, input_f=input_f, granularity=granularity, log=log)
