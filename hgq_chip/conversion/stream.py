"""io_stream specifics: one type per tensor, and reading flattened streams with the right packing.

hls4ml 1.3 packs a streamed tensor by its last axis (one stream word holds the channels of
one position). A Flatten (or a Reshape to one axis) that is not a model output becomes an
in-place view (``InplaceStreamFlatten``): its stream keeps the producer's packing, but a
layer reading it is generated for the flat packing, so an elementwise layer right after it
reads wrong values or past its word (a segfault for tables). A Dense reads any packing. So:

- a Dense's input cast right after a flattening moves ahead of it (a per-tensor cast
  commutes with reshaping): the producer casts its own result (unless hls4ml types the
  producer with its input's type: padding, cropping, up-sampling, permute; the Dense then
  reads through a repack), and the cast after the
  Flatten converts a type to itself, which hls4ml removes;
- every other quantizer or activation of ours (HQuantize, HActivation: relu, tables,
  linear), and each flattened input of a Concatenate, reads the flattened stream through a
  ``Repack`` layer (hls4ml's own stream
  repacker, from the producer's word to the flat word), emitted by the handlers;
- a Dropout or in-place Flatten keeps its input's type (hls4ml then removes the Dropout);
- any other Flatten/Reshape becomes hls4ml's ``repack_<layer>`` node, typed like the layer;
- a max pool that pads reads its input through a ZeroPadding layer (hls4ml's stream pooling
  cannot pad), exact for unsigned inputs; signed ones are refused;
- any other layer reading a flattened stream, and a Reshape whose word sizes do not divide
  each other (``repack_stream`` would drop or invent values), is refused up front.
"""

from __future__ import annotations

import dataclasses
import math

import keras

from ..errors import UnsupportedConfigurationError
from ..layers.pooling import pooling_pads
from .records import HLSLayerTypes, format_of, quantizer_needs_mask
from .rules._stages import (
    concat_repack_name,
    repack_name,
    reshape_repack_name,
    signed_cast_name,
)

_RESHAPING = (keras.layers.Flatten, keras.layers.Reshape, keras.layers.Dropout)
# Layers hls4ml types with their input's type whatever the configuration says (rules/movement.py):
# a cast cannot move onto them.
INPUT_TYPED = (keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D, keras.layers.Cropping1D, keras.layers.Cropping2D,
               keras.layers.UpSampling1D, keras.layers.UpSampling2D, keras.layers.Permute)


def check_one_type_per_tensor(nodes) -> None:
    for node in nodes:
        for q in getattr(node.layer, "quantizers", list)():
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


def _ends_with_cast(layer) -> bool:
    from ..layers import HActivation, HQuantize

    if isinstance(layer, HQuantize):
        return True
    return isinstance(layer, HActivation) and layer.activation.__name__ == "linear"


def _reads_through_repack(layer) -> bool:
    """Our layers whose handler can put a Repack before their input quantizer."""
    from ..layers import HActivation, HQuantize

    return isinstance(layer, (HActivation, HQuantize))


def _size(tensor) -> int:
    return int(math.prod(int(d) for d in tensor.shape[1:]))


def _word(tensor) -> int:
    return int(tensor.shape[-1])


class _Streams:
    """Producers, consumers and the stream word size of every tensor of the model."""

    def __init__(self, model, nodes):
        self.nodes = nodes
        self.producer = {id(t): i for i, node in enumerate(nodes) for t in node.outputs}
        self.consumers: dict[int, int] = {}
        for node in nodes:
            for t in node.inputs:
                self.consumers[id(t)] = self.consumers.get(id(t), 0) + 1
        self.model_outputs = {id(t) for t in model.outputs}
        self.word: dict[int, int] = {id(t): _word(t) for t in model.inputs}

    def in_place(self, node) -> bool:
        """Whether hls4ml streams this node's output as a view of its input (same word)."""
        out = node.outputs[0]
        if isinstance(node.layer, keras.layers.Dropout):
            return True  # removed by hls4ml (its type is its input's, see _pass_in_place_types)
        return (
            isinstance(node.layer, (keras.layers.Flatten, keras.layers.Reshape))
            and len(out.shape) == 2 and id(out) not in self.model_outputs
        )


def _move_dense_cast(streams: _Streams, index: int, records) -> bool:
    """Give the producer ahead of the flattening the cast of the Dense at ``index``; False when
    the cast cannot move (a shared tensor, or a producer that is itself a quantizer)."""
    nodes = streams.nodes
    chain, tensor = [], nodes[index].inputs[0]
    while id(tensor) in streams.producer and isinstance(nodes[streams.producer[id(tensor)]].layer, _RESHAPING):
        chain.append(streams.producer[id(tensor)])
        tensor = nodes[chain[-1]].inputs[0]
    source = streams.producer.get(id(tensor))
    # Every tensor from the producer to the Dense must feed only the next step: a cast moved
    # ahead of a tensor another layer also reads would change that layer's input too.
    shared = [nodes[index].inputs[0]] + [t for i in chain for t in nodes[i].inputs]
    if (source is None or any(streams.consumers.get(id(t), 0) != 1 for t in shared) or _ends_with_cast(nodes[source].layer)
            or isinstance(nodes[source].layer, INPUT_TYPED)):
        return False
    cast = records[index].hls_layers[0].types["result"]
    for i in [source, *chain]:
        records[i] = _with_last_result(records[i], cast)
    return True


def _with_stages(record, stages):
    """A copy of ``record`` with the hls4ml stages ``stages`` (the record itself is not changed)."""
    return dataclasses.replace(record, hls_layers=list(stages))


def _with_last_result(record, fmt):
    """A copy of ``record`` whose last stage's result type is ``fmt``."""
    last = record.hls_layers[-1]
    return _with_stages(record, [*record.hls_layers[:-1], HLSLayerTypes(last.name, {**last.types, "result": fmt})])


def _refuse(layer, why: str):
    raise UnsupportedConfigurationError(
        f"io_stream cannot convert layer {layer.name!r} ({type(layer).__name__}) exactly: {why}; convert with "
        "io_type='io_parallel'"
    )


def _check_repack(node, word_in: int) -> None:
    """hls4ml repacks a Reshape's stream word by word: exact only when the words divide."""
    word_out = _word(node.outputs[0])
    if word_in % word_out and word_out % word_in:
        _refuse(node.layer, f"hls4ml repacks the stream from words of {word_in} to words of {word_out} values, "
                            "which only works when one divides the other; choose a target shape whose last axis "
                            "divides (or is a multiple of) the input's last axis")


# nnet_stream.h's clone_stream copies one stream into at most 7 (hls4ml's CloneOutput pass).
MAX_STREAM_READERS = 7


def _check_readers(streams: _Streams) -> None:
    """Every stream is read by at most 7 layers (model outputs count; hls4ml removes Dropouts, so
    their readers read the Dropout's input)."""
    readers: dict[int, list] = {}
    for node in streams.nodes:
        for t in node.inputs:
            readers.setdefault(id(t), []).append(node)
    for node in streams.nodes:
        out = node.outputs[0]
        pending, count = list(readers.get(id(out), [])), int(id(out) in streams.model_outputs)
        while pending:
            reader = pending.pop()
            if isinstance(reader.layer, keras.layers.Dropout):
                pending += readers.get(id(reader.outputs[0]), [])
                count += int(id(reader.outputs[0]) in streams.model_outputs)
            else:
                count += 1
        if count > MAX_STREAM_READERS:
            _refuse(node.layer, f"its output is read by {count} layers (model outputs included) and hls4ml "
                                f"copies a stream into at most {MAX_STREAM_READERS}; put an HQuantize after the "
                                "layer for some of the readers (each copy then feeds fewer layers)")


def _pass_in_place_types(streams: _Streams, records) -> None:
    """A stream view (in-place Flatten, removed Dropout) has its input's type, as hls4ml gives it."""
    for index, node in enumerate(streams.nodes):
        source = streams.producer.get(id(node.inputs[0])) if node.inputs else None
        if streams.in_place(node) and source is not None:
            records[index] = _with_last_result(records[index], records[source].hls_layers[-1].types["result"])


def _type_reshape_repacks(streams: _Streams, records) -> None:
    """Give hls4ml's ``repack_<layer>`` (which replaces a Flatten/Reshape that is no stream view)
    the layer's own type: hls4ml sets only its output variable's type, and a Clone of its stream
    (two readers) copies the node's result_t, otherwise the unused default type."""
    for index, node in enumerate(streams.nodes):
        if isinstance(node.layer, (keras.layers.Flatten, keras.layers.Reshape)) and not streams.in_place(node):
            types = dict(records[index].hls_layers[-1].types)
            records[index] = _with_stages(records[index], [*records[index].hls_layers,
                                                           HLSLayerTypes(reshape_repack_name(node.layer), types)])


def prepare_stream(model, nodes, records) -> tuple[dict[str, dict], list]:
    """Plan how every flattened stream is read and every padded max pool is padded (see the
    module docstring). ``records`` are not changed: the records io_stream converts (moved casts,
    repack stages, in-place types) are returned as new ones.

    Returns (plan, records). The plan is {"repacks": {layer name: flat size} of the layers whose handler repacks their
    input first, "concat_repacks": {Concatenate name: [flat size or None per input]} of the
    inputs a Concatenate reads through a Repack, "zero_padded": {layer name: padding per axis}
    of max pools padded ahead}.
    Raises ``UnsupportedConfigurationError`` for a layer that would read a stream wrongly.
    """
    from ..layers import HDense

    streams = _Streams(model, nodes)
    _check_readers(streams)
    records = list(records)
    repacks: dict[str, int] = {}
    concat_repacks: dict[str, list] = {}
    for index, node in enumerate(nodes):
        layer = node.layer
        words = [streams.word.get(id(t), _word(t)) for t in node.inputs]
        # A flat tensor whose stream words are not the whole vector (an in-place Flatten's view).
        misread = [len(t.shape) == 2 and w != _size(t) for w, t in zip(words, node.inputs)]
        out = node.outputs[0]
        if streams.in_place(node):
            if isinstance(layer, keras.layers.Dropout) and misread[0] and id(out) in streams.model_outputs:
                _refuse(layer, "a Dropout right after a Flatten cannot be a model output; remove the Dropout")
            streams.word[id(out)] = words[0]
            continue
        streams.word[id(out)] = _word(out)
        if isinstance(layer, (keras.layers.Flatten, keras.layers.Reshape)):
            _check_repack(node, words[0])
        elif not any(misread) or isinstance(layer, HDense) and _move_dense_cast(streams, index, records):
            continue
        elif isinstance(layer, keras.layers.Concatenate):
            sizes = [_size(t) if bad else None for t, bad in zip(node.inputs, misread)]
            concat_repacks[layer.name] = sizes
            records[index] = _with_stages(records[index], [
                *(HLSLayerTypes(concat_repack_name(layer, i), {"result": format_of(records[index].inputs[i])})
                  for i, size in enumerate(sizes) if size is not None),
                *records[index].hls_layers])
        elif _reads_through_repack(layer) or isinstance(layer, HDense):
            repacks[layer.name] = _size(node.inputs[0])
            repack = HLSLayerTypes(repack_name(layer), {"result": format_of(records[index].inputs[0])})
            records[index] = _with_stages(records[index], [repack, *records[index].hls_layers])
        else:
            _refuse(layer, "it reads a flattened stream, which hls4ml 1.3 streams with the packing of the "
                           "tensor before the Flatten; put the layer before the Flatten/Reshape")
    _pass_in_place_types(streams, records)
    _type_reshape_repacks(streams, records)
    zero_padded = _zero_pad_max_pools(streams, records)
    return {"repacks": repacks, "concat_repacks": concat_repacks, "zero_padded": zero_padded}, records


def _zero_pad_max_pools(streams: _Streams, records) -> dict[str, tuple]:
    """{layer name: total padding per axis} of the max pools that pad, zero-padded ahead of the
    stream pooling (which cannot pad): exact for an unsigned input, whose values are all >= 0
    (every window holds a valid element); a signed input is refused."""
    padded = {}
    for index, node in enumerate(streams.nodes):
        layer = node.layer
        if not isinstance(layer, (keras.layers.MaxPooling1D, keras.layers.MaxPooling2D)):
            continue
        pads = pooling_pads(layer, node.inputs[0].shape)
        if not any(pads):
            continue
        source = records[streams.producer[id(node.inputs[0])]].hls_layers[-1].types["result"]
        if source.k:
            _refuse(layer, "hls4ml's streaming pooling cannot pad, and padding with zeros is exact only for an "
                           "unsigned input (this one is signed); use padding='valid', an input size the pool "
                           "divides, or a relu before the pooling")
        records[index] = _with_stages(records[index], [h for h in records[index].hls_layers
                                                       if h.name != signed_cast_name(layer)])
        padded[layer.name] = pads
    return padded
