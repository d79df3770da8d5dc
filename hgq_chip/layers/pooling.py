"""Which Keras average-pooling layers are exact on fixed-point values.

Max pooling, Flatten, Reshape and Dropout move or select fixed-point values and need no
hgq_chip class. An average is a sum (exact) divided by the window size: exact only when
that size is a power of two, since the division is then a shift. Keras' ``padding='same'``
divides a border window by its number of valid elements (so does hls4ml's io_parallel
pooling, ``count_pad = false``), so 'same' is accepted where every window's count of valid
elements is a power of two too (e.g. a 2x2 pool on an odd map: 4, 2 or 1).
"""

from __future__ import annotations

import math

import keras

from ..errors import UnsupportedLayerError

_WINDOWED = (keras.layers.AveragePooling1D, keras.layers.AveragePooling2D, keras.layers.AveragePooling3D)
_GLOBAL = (
    keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D,
)


def is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def _known_input_shape(layer, input_shape):
    if input_shape is not None:
        return tuple(input_shape)
    try:
        return tuple(layer.input.shape)
    except (AttributeError, ValueError):
        return None  # never called: no recorded input


def _spatial_sizes(layer, input_shape) -> tuple:
    spatial = input_shape[1:-1] if layer.data_format == "channels_last" else input_shape[2:]
    if any(d is None for d in spatial):
        raise UnsupportedLayerError(
            f"{layer.name}: the spatial input size {spatial} is not fixed; give the model a fixed input shape"
        )
    return tuple(int(d) for d in spatial)


def _same_padding_totals(sizes, pool_size, strides) -> list[int]:
    """Padding Keras/TF add per axis for 'same': zero means every window is full."""
    totals = []
    for size, pool, stride in zip(sizes, pool_size, strides):
        out = -(-size // stride)
        totals.append(max((out - 1) * stride + pool - size, 0))
    return totals


def pooling_pads(layer, input_shape) -> tuple[int, ...]:
    """Total padding per spatial axis that ``layer`` (a windowed pooling) adds to an input of
    ``input_shape`` (batch axis first); all zeros for 'valid' or where 'same' pads nothing."""
    sizes = _spatial_sizes(layer, tuple(input_shape))
    if layer.padding != "same":
        return (0,) * len(sizes)
    return tuple(_same_padding_totals(sizes, layer.pool_size, layer.strides))


def check_exact_average_pooling(layer, input_shape=None) -> None:
    """Raise ``UnsupportedLayerError`` unless ``layer``'s averages are exact shifts.

    ``layer`` is a Keras (Global)AveragePooling1D/2D/3D; ``input_shape`` (batch axis first)
    defaults to the shape the layer was called on. Other layers pass unchecked.
    """
    if isinstance(layer, _GLOBAL):
        shape = _known_input_shape(layer, input_shape)
        if shape is None:
            raise UnsupportedLayerError(f"{layer.name}: call the layer (build the model) before converting it")
        area = math.prod(_spatial_sizes(layer, shape))
        if not is_power_of_two(area):
            raise UnsupportedLayerError(
                f"{layer.name}: global average over {area} positions is not a power of two, so the mean "
                f"is not an exact shift; resize or crop the input so the spatial size is a power of two, "
                f"or use a global max pooling"
            )
        return
    if not isinstance(layer, _WINDOWED):
        return
    area = math.prod(layer.pool_size)
    if not is_power_of_two(area):
        raise UnsupportedLayerError(
            f"{layer.name}: pool size {tuple(layer.pool_size)} averages {area} values, not a power of two, "
            f"so the mean is not an exact shift; use a pool area of 2, 4, 8, ... or MaxPooling"
        )
    if layer.padding == "same":
        shape = _known_input_shape(layer, input_shape)
        if shape is None:
            raise UnsupportedLayerError(
                f"{layer.name}: cannot check padding='same' without an input shape; use padding='valid'"
            )
        sizes = _spatial_sizes(layer, shape)
        counts = _valid_counts(sizes, layer.pool_size, layer.strides)
        odd = sorted({c for axis in counts for c in axis if not is_power_of_two(c)})
        if odd:
            raise UnsupportedLayerError(
                f"{layer.name}: with padding='same' some border windows are partial and Keras divides them "
                f"by their number of valid elements per axis ({', '.join(map(str, odd))}), which is not a "
                f"power of two; use padding='valid', or an input size whose border windows keep 1, 2, 4, ... "
                f"valid elements per axis"
            )


def _valid_counts(sizes, pool_size, strides) -> list[list[int]]:
    """Per axis, the number of non-padding elements of each window of a 'same' pooling
    (Keras/TF and hls4ml put the smaller half of the padding first)."""
    counts = []
    for size, pool, stride, total in zip(sizes, pool_size, strides, _same_padding_totals(sizes, pool_size, strides)):
        n_out = -(-size // stride)
        starts = [o * stride - total // 2 for o in range(n_out)]
        counts.append([min(start + pool, size) - max(start, 0) for start in starts])
    return counts
