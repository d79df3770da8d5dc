"""The model input's C++ type, chosen so the firmware's first cast loses nothing.

The bridge casts float inputs to the input type, then each input quantizer casts again.
With truncation to one more fractional bit than any quantizer uses, and a range (or
wrap period) at least as large as every quantizer's, the second cast gives exactly the
single rounding Keras applies: truncating keeps every bit that decides rounding half up.
"""

from __future__ import annotations

from ..errors import UnsupportedConfigurationError
from ..fixed.format import FixedFormat
from ..fixed.modes import Overflow, Rounding
from .records import MANTISSA_BITS


def input_format(quantizers) -> FixedFormat:
    formats = [q.fixed_format() for q in quantizers]
    if any(fmt.rounding is Rounding.RND_CONV for fmt in formats):
        # Ties-to-even needs every bit below the tie (a sticky bit), which no finite input type keeps.
        raise UnsupportedConfigurationError(
            "a quantizer reading the model input rounds ties to even (RND_CONV), which the firmware cannot "
            "reproduce for arbitrary float inputs; give the input quantizer rounding='RND' or 'TRN'"
        )
    saturating = {fmt.overflow is not Overflow.WRAP for fmt in formats}
    if len(saturating) > 1:
        raise UnsupportedConfigurationError(
            "the model input feeds quantizers with both WRAP and SAT overflow; give them the same overflow mode"
        )
    live = [(fmt.k + fmt.i)[fmt.width > 0] for fmt in formats]
    fracs = [fmt.f[fmt.width > 0] for fmt in formats]
    integer = max((int(a.max()) for a in live if a.size), default=0)
    frac = max((int(a.max()) for a in fracs if a.size), default=0)
    overflow = Overflow.SAT if saturating.pop() else Overflow.WRAP
    return FixedFormat(1, integer, max(frac + 1, -integer), Rounding.TRN, overflow)


def input_quantizers(nodes, model_input) -> list:
    """Quantizers that read ``model_input`` directly (every consumer must quantize it)."""
    found = []
    for node in nodes:
        if not any(t is model_input for t in node.inputs):
            continue
        quantizers = [q for q in getattr(node.layer, "quantizers", list)() if hasattr(q, "record_range")]
        if not quantizers:
            from ..errors import UnsupportedLayerError

            raise UnsupportedLayerError(
                f"layer {node.layer.name!r} reads the raw model input; put an HQuantize layer first "
                "so the input has a fixed-point format"
            )
        found.extend(_quantizers_at_positions(node, model_input, quantizers))
    if not found:
        raise UnsupportedConfigurationError("a model input is not used by any layer")
    return found


def _quantizers_at_positions(node, model_input, quantizers) -> list:
    """The quantizers of ``node``'s layer that read ``model_input``: per input position it is passed at.

    A layer with several inputs quantizes each with its own quantizer (HMultiHeadAttention: the
    query, value and key projections; a merge: ``iq0``, ``iq1``, ...); the first quantizer of the
    layer is right only for a layer with one input."""
    positions = [i for i, t in enumerate(node.inputs) if t is model_input]
    layer, found = node.layer, []
    for position in positions:
        if hasattr(layer, "input_quantizers_at"):
            found.extend(layer.input_quantizers_at(position, len(node.inputs)))
        elif len(getattr(layer, "input_quantizers", ())) == len(node.inputs):
            found.append(layer.input_quantizers[position])
        else:
            found.append(quantizers[0])
    return found


def all_input_formats(model, nodes) -> dict[str, FixedFormat]:
    names = {}
    for tensor in model.inputs:
        layer = _input_layer_of(model, tensor)
        names[layer.name] = input_format(input_quantizers(nodes, tensor))
    return names


def _input_layer_of(model, tensor):
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer) and layer.output is tensor:
            return layer
    raise UnsupportedConfigurationError(f"cannot find the input layer of tensor {tensor.name}")



def keras_input_dtypes(model, nodes) -> list[str]:
    """Per model input, the float dtype Keras reads it in: the narrowest of the ``keras.Input``'s
    dtype and the compute dtypes of the layers reading it (a layer casts its float inputs to its
    own). ``verify`` feeds Keras and the firmware these values, so both see the same numbers:
    float32 in a float32 model, float64 in one built after ``keras.config.set_floatx('float64')``.
    Dtypes other than float32/float64 (which ``convert`` refuses) count as float32."""
    dtypes = []
    for tensor in model.inputs:
        candidates = [str(tensor.dtype)] + [
            str(node.layer.compute_dtype) for node in nodes if any(t is tensor for t in node.inputs)
        ]
        bits = [MANTISSA_BITS.get(d, MANTISSA_BITS["float32"]) for d in candidates]
        dtypes.append("float64" if min(bits) >= MANTISSA_BITS["float64"] else "float32")
    return dtypes
