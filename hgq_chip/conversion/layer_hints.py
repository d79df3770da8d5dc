"""What to use instead of a Keras layer class the converter has no exact conversion for.

``UNSUPPORTED_HINTS`` maps a Keras layer class name to the way forward named in its refusal
(``precision.derive``): the hgq_chip layer that computes it exactly (HDense for Dense, ...), a
composition of converted layers that computes it exactly, or why no exact route exists and what
to do instead. ``tests/test_keras_layers_enumeration.py`` checks that every class exported by
``keras.layers`` either converts or is refused with its hint here. Sources of the limits:
hls4ml 1.3's Keras 3 front end and templates (no 3D maps, no transposed convolution, recurrent
layers on generic float-approximated tables).
"""

from __future__ import annotations

_NO_3D = ("hls4ml 1.3 has no firmware for 3D maps (its templates cover 1D and 2D); reshape the data to 2D maps "
          "(keras.layers.Reshape merging two axes) and use the 2D layer")
_RECURRENT = ("no exact recurrent layer yet (hls4ml's recurrent templates compute sigmoid/tanh with generic "
              "approximate tables, not bit-exact with Keras); for a fixed sequence length use HConv1D over time, or "
              "keras.layers.Flatten and HDense, with HActivation tables for the nonlinearities")
_ATTENTION = ("use hgq_chip.layers.HMultiHeadAttention (quantized projections, exact HSoftmax; self- or "
              "cross-attention)")
_PREPROCESSING = ("it is fixed preprocessing of the data, not a trained layer: apply it to the data before the "
                  "model (the firmware starts at the HQuantize that reads the preprocessed values)")
_AUGMENT = ("remove it from the model you convert: it augments training data and has no firmware; the model "
            "without it computes the same at inference")
_CODE = ("it runs arbitrary code, which has no fixed-point firmware; rewrite the computation with hgq_chip and "
         "Keras layers that convert (see docs/layers/index.md)")
_NORM = ("it divides by a statistic of each sample (a square root and a division of two variables), which has "
         "no exact fixed-point firmware here; leave it out (HQuantize, HDense and HEinsumDense train without it), "
         "or fold a fixed scale and shift into the next HDense/HEinsumDense")

UNSUPPORTED_HINTS = {
    # Trained layers with an hgq_chip counterpart (same arguments plus quantizers).
    "Dense": "use hgq_chip.layers.HDense (same arguments plus quantizers; HDenseBatchNorm to fold a following "
             "BatchNormalization)",
    "Conv1D": "use hgq_chip.layers.HConv1D (same arguments plus quantizers; HConv1DBatchNorm folds a batch norm)",
    "Conv2D": "use hgq_chip.layers.HConv2D (same arguments plus quantizers; HConv2DBatchNorm folds a batch norm)",
    "DepthwiseConv1D": "use hgq_chip.layers.HDepthwiseConv1D (same arguments plus quantizers)",
    "DepthwiseConv2D": "use hgq_chip.layers.HDepthwiseConv2D (same arguments plus quantizers)",
    "SeparableConv1D": "use hgq_chip.layers.HSeparableConv1D (same arguments plus quantizers, a trained "
                       "intermediate format between the depthwise and the pointwise phase)",
    "SeparableConv2D": "use hgq_chip.layers.HSeparableConv2D (same arguments plus quantizers, a trained "
                       "intermediate format between the depthwise and the pointwise phase)",
    "EinsumDense": "use hgq_chip.layers.HEinsumDense (same equation and arguments plus quantizers)",
    "BatchNormalization": "fold it into the layer before: use hgq_chip.layers.HDenseBatchNorm, HConv1DBatchNorm "
                          "or HConv2DBatchNorm in place of the HDense/HConv and the BatchNormalization (trained "
                          "together, folded exactly); a batch norm elsewhere has no exact firmware",
    "Multiply": "use hgq_chip.layers.HMultiply (the same product, with its EBOPs counted; converts exactly)",
    "Average": "use keras.layers.Add (the sum converts exactly) and fold the 1/n into the next HDense/HConv (its "
               "kernel learns the scale); hls4ml's average divides in the result type, not bit-exact with Keras",
    "Dot": "a dot product of two variable tensors: use hgq_chip.layers.HMultiply and then a sum over the axis "
           "(HEinsumDense, or HMultiHeadAttention for attention scores)",
    "Softmax": "replace it with hgq_chip.layers.HSoftmax (its exp and inverse tables are trained with the model "
               "and converted exactly), or end the model before the softmax",
    "ELU": "use hgq_chip.layers.HActivation('elu') (an exact table between an input and an output quantizer)",
    "LeakyReLU": "use hgq_chip.layers.HActivation('leaky_relu') (an exact table; Keras' function has slope 0.2)",
    "PReLU": "its slopes are trained per element and multiply a variable, which has no exact firmware here; use "
             "keras.layers.ReLU, or hgq_chip.layers.HActivation('leaky_relu') for a fixed slope (an exact table)",
    # Attention.
    "MultiHeadAttention": _ATTENTION,
    "GroupQueryAttention": _ATTENTION + "; give it num_heads heads (no grouped keys/values)",
    "Attention": _ATTENTION + " with one head",
    "AdditiveAttention": "its tanh score of a sum of two variable tensors has no exact firmware; "
                         + _ATTENTION + " computes dot-product scores exactly",
    # Recurrent.
    **{name: _RECURRENT for name in ("LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "ConvLSTM1D",
                                     "ConvLSTM2D", "ConvLSTM3D")},
    # Normalizations.
    "LayerNormalization": "use hgq_chip.layers.HLayerNormalization (same arguments plus quantizers; exact sums, "
                          "a quantized 1/n and an exact 1/sqrt table; last axis only)",
    "GroupNormalization": _NORM,
    "RMSNormalization": _NORM,
    "UnitNormalization": _NORM,
    "Normalization": "it is a fixed (x - mean) / std of the data: apply it to the data before the model, or fold "
                     "1/std into the kernel and -mean/std into the bias of the first HDense/HConv",
    "SpectralNormalization": "it only rescales the wrapped layer's kernel while training: train the hgq_chip layer "
                             "(HDense/HConv) directly, or convert a model holding the wrapped layer's weights",
    # 3D maps and layers hls4ml 1.3 lacks.
    **{name: _NO_3D for name in ("Conv3D", "AveragePooling3D", "MaxPooling3D", "GlobalAveragePooling3D",
                                 "GlobalMaxPooling3D", "Cropping3D", "ZeroPadding3D", "UpSampling3D",
                                 "AdaptiveAveragePooling3D", "AdaptiveMaxPooling3D")},
    **{name: "hls4ml 1.3 has no transposed-convolution firmware; use keras.layers.UpSampling1D/2D followed by "
             "hgq_chip.layers.HConv1D/HConv2D (a learned up-sampling that converts exactly)"
       for name in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")},
    "AdaptiveAveragePooling1D": "use keras.layers.AveragePooling1D(input_size // output_size) where the output "
                                "size divides the input size (the same windows; converts exactly)",
    "AdaptiveAveragePooling2D": "use keras.layers.AveragePooling2D(input_size // output_size) where the output "
                                "size divides the input size (the same windows; converts exactly)",
    "AdaptiveMaxPooling1D": "use keras.layers.MaxPooling1D(input_size // output_size) where the output size "
                            "divides the input size (the same windows; converts exactly)",
    "AdaptiveMaxPooling2D": "use keras.layers.MaxPooling2D(input_size // output_size) where the output size "
                            "divides the input size (the same windows; converts exactly)",
    "RepeatVector": "keras.layers.Reshape((1, n)) followed by keras.layers.UpSampling1D(k) computes RepeatVector(k) "
                    "on n features exactly and converts",
    "CenterCrop": "use keras.layers.Cropping2D(((top, bottom), (left, right))) with the rows and columns CenterCrop "
                  "removes (the same values; converts exactly); a CenterCrop that enlarges resizes, which is not exact",
    "Resizing": "for an integer up-scaling use keras.layers.UpSampling2D(factor) (interpolation='nearest' converts "
                "exactly); other sizes and interpolations compute weighted means the firmware does not",
    "Masking": "it zeroes the time steps equal to mask_value (the mask itself only steers recurrent and attention "
               "layers): remove it and zero the padded steps in the data",
    "Embedding": "an embedding looks up rows by integer id: feed one-hot inputs to an hgq_chip.layers.HDense "
                 "(use_bias=False), which computes the same lookup exactly",
    "ReversibleEmbedding": "an embedding looks up rows by integer id: feed one-hot inputs to an "
                           "hgq_chip.layers.HDense (use_bias=False), which computes the same lookup exactly",
    "TimeDistributed": "apply the inner layer directly: hgq_chip.layers.HDense and HConv act per position on "
                       "(steps, features) tensors, which is what TimeDistributed(Dense) computes",
    "Lambda": _CODE,
    # Preprocessing and augmentation.
    "Rescaling": "it is a fixed scale and offset: apply it to the data before the model, or fold it into the "
                 "first HDense/HConv (scale the kernel, shift the bias)",
    "Discretization": _PREPROCESSING,
    "MelSpectrogram": _PREPROCESSING,
    "STFTSpectrogram": _PREPROCESSING,
    "AutoContrast": _PREPROCESSING,
    "Equalization": _PREPROCESSING,
    "ContrastLimitedAdaptiveHistogramEqualization": _PREPROCESSING,
    "Solarization": _AUGMENT,
    "RandomCrop": _AUGMENT + " (at inference it center-crops to its target size: use keras.layers.Cropping2D for that)",
    "MaxNumBoundingBoxes": _PREPROCESSING,
    **{name: _PREPROCESSING for name in ("StringLookup", "IntegerLookup", "TextVectorization", "Hashing",
                                         "HashedCrossing", "CategoryEncoding")},
    "Pipeline": "convert the model without the preprocessing pipeline: " + _PREPROCESSING,
}
