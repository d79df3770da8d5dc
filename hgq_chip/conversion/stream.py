"""io_stream specifics: one type per tensor, and casts moved ahead of flattening.

hls4ml 1.3 streams a flattened tensor with its producer's packing but gives an activation
after the Flatten a packing of its own, so a cast right after a Flatten reads the stream
wrongly. A per-tensor cast commutes with reshaping, so instead the producer of the
reshaped tensor casts its own result; the cast after the Flatten then converts a type to
itself, which hls4ml removes.
"""

from __future__ import annotations

import keras

from ..errors import UnsupportedConfigurationError
from .records import quantizer_needs_mask

_RESHAPING = (keras.layers.Flatten, keras.layers.Reshape, keras.layers.Dropout)


def check_one_type_per_tensor(nodes) -> None:
    for node in nodes:
        for q in getattr(node.layer, "quantizers", lambda: [])():
            if not hasattr(q, "record_range"):
                continue
            fmt = q.fixed_format()
            if quantizer_needs_mask(fmt):
                dead = not bool((fmt.width > 0).any())
                reason = (
                    "outputs a constant 0 (its recorded range is [0, 0]), which io_stream cannot express"
                    if dead else "has per-element activation bits"
                )
                raise UnsupportedConfigurationError(
                    f"io_stream needs one activation type per tensor, but {q.path} {reason}; train with "
                    "granularity='per-layer' activation quantizers (per-channel is not enough), "
                    "or convert with io_type='io_parallel'"
                )


def check_stream_convolutions(nodes) -> None:
    """hls4ml 1.3's streaming Conv2D (line buffer) computes wrong outputs for a kernel one row
    high with a vertical stride > 1 (found by the fuzzer; kernels of 2+ rows, Conv1D and
    pointwise 1x1 kernels, which take another path, are exact with any stride)."""
    for node in nodes:
        layer = node.layer
        if not isinstance(layer, keras.layers.Conv2D) or all(k == 1 for k in layer.kernel_size):
            continue
        if layer.kernel_size[0] == 1 and layer.strides[0] > 1:
            raise UnsupportedConfigurationError(
                f"io_stream cannot build {layer.name!r}: a kernel {tuple(layer.kernel_size)} one row high with "
                f"vertical stride {layer.strides[0]} (hls4ml's streaming convolution then computes wrong "
                "outputs); use a kernel of 2+ rows, vertical stride 1, or io_type='io_parallel'"
            )


def check_stream_merges(nodes) -> None:
    """An Add reading a Flatten/Reshape output: hls4ml 1.3 streams the reshaped tensor in its
    producer's packing, the Add expects its own, and the C simulation aborts on an assert."""
    producer = {id(t): node.layer for node in nodes for t in node.outputs}
    for node in nodes:
        if not isinstance(node.layer, keras.layers.Add):
            continue
        for tensor in node.inputs:
            source = producer.get(id(tensor))
            while isinstance(source, keras.layers.Dropout):
                source = producer.get(id(source.input))
            if isinstance(source, (keras.layers.Flatten, keras.layers.Reshape)):
                raise UnsupportedConfigurationError(
                    f"io_stream cannot add {source.name!r}'s reshaped output in {node.layer.name!r} (hls4ml 1.3 "
                    "streams it in the wrong packing); add before the Flatten/Reshape, put a quantized layer "
                    "between them, or convert with io_type='io_parallel'"
                )


def _ends_with_cast(layer) -> bool:
    from ..layers import HActivation, HQuantize

    if isinstance(layer, HQuantize):
        return True
    return isinstance(layer, HActivation) and layer.activation.__name__ == "linear"


def move_casts_before_reshapes(nodes, records) -> None:
    """Give the producer of each flattened tensor the type of the cast that follows the Flatten."""
    producer = {id(t): i for i, node in enumerate(nodes) for t in node.outputs}
    consumers: dict[int, int] = {}
    for node in nodes:
        for t in node.inputs:
            consumers[id(t)] = consumers.get(id(t), 0) + 1
    for index, node in enumerate(nodes):
        if getattr(node.layer, "iq", None) is None:
            continue  # layers with an input quantizer list its cast first in their record
        chain, tensor = [], node.inputs[0]
        while id(tensor) in producer and isinstance(nodes[producer[id(tensor)]].layer, _RESHAPING):
            chain.append(producer[id(tensor)])
            tensor = nodes[chain[-1]].inputs[0]
        if not any(isinstance(nodes[i].layer, (keras.layers.Flatten, keras.layers.Reshape)) for i in chain):
            continue
        source = producer.get(id(tensor))
        shared = [t for i in chain for t in nodes[i].inputs] + [tensor]
        if (
            source is None
            or any(consumers.get(id(t), 0) != 1 for t in shared)
            or _ends_with_cast(nodes[source].layer)
        ):
            raise UnsupportedConfigurationError(
                f"io_stream cannot cast {node.layer.name!r}'s input right after a Flatten/Reshape (hls4ml 1.3 "
                "repacks the stream wrongly there), and the cast cannot move before it because its input is "
                "shared or is itself a quantizer; convert with io_type='io_parallel'"
            )
        cast = records[index].hls_layers[0].types["result"]
        for i in [source, *chain]:
            records[i].hls_layers[-1].types["result"] = cast
