"""What to do instead when a QKeras model holds a layer the importer has no exact equivalent for.

``IMPORT_HINTS`` maps a QKeras or Keras 2 layer class name to the way forward named in the
refusal (``plan.plan_layers``): the QKeras layers that import, the hgq_chip layer to train
instead, or why no exact route exists. Keras classes without an entry of their own take the
converter's hint (``conversion/layer_hints.py``), prefixed by what to do in QKeras.
``tests/test_qkeras_enumeration.py`` checks that every QKeras layer class and every Keras 2
layer class either imports or has a hint here.
"""

from __future__ import annotations

from ..conversion.layer_hints import UNSUPPORTED_HINTS

_RECURRENT = ("no exact recurrent layer yet: QKeras' recurrent layers compute sigmoid/tanh gates in float, and "
              "hgq_chip has no recurrent firmware; for a fixed sequence length use QConv1D over time or Flatten and "
              "QDense in QKeras")
_AVERAGE = ("QKeras multiplies the window sum by its quantized 1/n (average_quantizer), which the firmware does "
            "not reproduce; use keras.layers.{plain} (a power-of-two window imports exactly) followed by "
            "QActivation(quantized_bits(...)) in QKeras")

_QKERAS_HINTS = {
    "QSeparableConv1D": "QKeras has no depthwise 1D layer to rebuild it from: use QConv1D in QKeras, or train "
                        "hgq_chip.layers.HDepthwiseConv1D followed by HConv1D(filters, 1) (depthwise + 1x1 conv)",
    "QSeparableConv2D": "rebuild it in QKeras as QDepthwiseConv2D followed by a 1x1 QConv2D (depthwise + 1x1 conv), "
                        "which imports exactly; or train hgq_chip.layers.HDepthwiseConv2D + HConv2D(filters, 1)",
    "QConv2DTranspose": "hls4ml 1.3 has no transposed-convolution firmware; use UpSampling2D followed by QConv2D in "
                        "QKeras (both import exactly)",
    "QConv2DTransposeBatchnorm": "hls4ml 1.3 has no transposed-convolution firmware; use UpSampling2D followed by "
                                 "QConv2DBatchnorm in QKeras (both import exactly)",
    "QAveragePooling2D": _AVERAGE.format(plain="AveragePooling2D"),
    "QGlobalAveragePooling2D": _AVERAGE.format(plain="GlobalAveragePooling2D"),
    "QBatchNormalization": "its quantized scale and shift are applied in float between layers; fold it instead: use "
                           "QConv2DBatchnorm / QDenseBatchnorm / QDepthwiseConv2DBatchnorm in QKeras (imported "
                           "exactly), or train hgq_chip's HDenseBatchNorm / HConv2DBatchNorm",
    "QAdaptiveActivation": "its bit-width changes while training; replace it by QActivation with its trained "
                           "quantizer (e.g. quantized_relu(bits, integer) of its final bits) before saving, which "
                           "imports exactly",
    "QMultiHeadAttention": "use hgq_chip.layers.HMultiHeadAttention (quantized projections, exact HSoftmax) and "
                           "train it with hgq_chip",
    **{name: _RECURRENT for name in ("QLSTM", "QGRU", "QSimpleRNN", "QBidirectional", "QLSTMCell", "QGRUCell",
                                     "QSimpleRNNCell")},
}

_KERAS_IN_QKERAS = {
    "Dense": "use QDense in QKeras (a float Dense has no fixed-point weights to import)",
    "Conv1D": "use QConv1D in QKeras (a float convolution has no fixed-point weights to import)",
    "Conv2D": "use QConv2D in QKeras (a float convolution has no fixed-point weights to import)",
    "DepthwiseConv2D": "use QDepthwiseConv2D in QKeras (a float convolution has no fixed-point weights to import)",
    "SeparableConv2D": _QKERAS_HINTS["QSeparableConv2D"],
    "BatchNormalization": "a BatchNormalization imports only right after a QDense/QConv1D/QConv2D with a linear "
                          "activation; elsewhere use QKeras' folded layers (QConv2DBatchnorm, QDenseBatchnorm)",
    "Softmax": "a softmax imports only as the model output (dropped: the import outputs logits); elsewhere add "
               "hgq_chip.layers.HSoftmax after import and train it",
    "Average": "use keras.layers.Add and fold the 1/n into the next QDense/QConv's kernel",
    "ReLU": "use QActivation('quantized_relu(bits, integer)') (or Activation('relu') right after a QDense/QConv) "
            "in QKeras, which imports exactly",
    "ThresholdedReLU": "a float threshold has no fixed-point equivalent here; use QActivation(quantized_relu(...)) "
                       "in QKeras",
    "LocallyConnected1D": "unshared weights per position have no hls4ml firmware; use QConv1D in QKeras",
    "LocallyConnected2D": "unshared weights per position have no hls4ml firmware; use QConv2D in QKeras",
    "SpatialDropout3D": UNSUPPORTED_HINTS["Conv3D"],
    "DenseFeatures": "it reads feature columns, not a tensor: apply it to the data before the model",
    "RandomHeight": "remove it from the model you import: it augments training data (and resizes)",
    "RandomWidth": "remove it from the model you import: it augments training data (and resizes)",
    "Multiply": "the converter needs hgq_chip.layers.HMultiply for a product of two variables; no exact import yet: "
                "replace it by HMultiply after import and train it",
}


def _keras_hint(name: str) -> str | None:
    hint = UNSUPPORTED_HINTS.get(name)
    return None if hint is None else f"in the hgq_chip model: {hint}"


IMPORT_HINTS: dict[str, str] = {**_QKERAS_HINTS, **_KERAS_IN_QKERAS}


def import_hint(kind: str) -> str | None:
    """The way forward for a layer class the importer refuses (None: no hint known)."""
    return IMPORT_HINTS.get(kind) or _keras_hint(kind)
