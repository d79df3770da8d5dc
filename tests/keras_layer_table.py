"""Every layer class exported by ``keras.layers``, with a small model holding it and what convert does.

Three tables, keyed by the exported name (aliases such as ``MaxPool2D`` name the same class and
are counted once, by class):

- ``CONVERTED``: ``name -> (input shape, build)``; ``build(q)`` calls the layer on the HQuantize
  output ``q`` (a second HQuantize of the same input for merges). convert must succeed, and the
  C simulation must equal Keras bit for bit (tests/test_keras_layers_enumeration.py).
- ``REFUSED``: ``name -> (input shape, build, words)``; convert must raise a typed hgq_chip error
  naming the layer and holding every one of ``words`` (the exact alternative, or why none exists).
- ``NOT_BUILDABLE``: ``name -> (reason, probe)``: the class cannot sit between an HQuantize and
  the model output; ``probe()`` must raise, which is the reason the test checks.
"""

from __future__ import annotations

import inspect

import keras

from hgq_chip.layers import HQuantize

V, S1, S2, S3, IMG = (4,), (8, 3), (6, 6, 2), (4, 4, 4, 2), (8, 8, 3)


def exported_layer_classes() -> dict[type, list[str]]:
    """``{class: [exported names]}`` for every public Layer subclass in ``keras.layers``."""
    found: dict[type, list[str]] = {}
    for name in sorted(dir(keras.layers)):
        value = getattr(keras.layers, name)
        if not name.startswith("_") and inspect.isclass(value) and issubclass(value, keras.layers.Layer):
            found.setdefault(value, []).append(name)
    return found


def _two(layer):
    """A merge of the HQuantize output with a second quantization of it (another fixed-point format)."""
    return lambda q: layer([q, HQuantize(name="q_other")(q)])


def _self_attention(layer):
    return lambda q: layer(q, q)


def _pair(layer):
    return lambda q: layer([q, q])


L = keras.layers

CONVERTED = {
    # Identity at inference (conversion/rules/inference.py; Dropout: rules/structure.py).
    "Identity": (V, lambda q: L.Identity(name="layer")(q)),
    "GaussianNoise": (V, lambda q: L.GaussianNoise(0.3, name="layer")(q)),
    "GaussianDropout": (V, lambda q: L.GaussianDropout(0.3, name="layer")(q)),
    "AlphaDropout": (V, lambda q: L.AlphaDropout(0.3, name="layer")(q)),
    "ActivityRegularization": (V, lambda q: L.ActivityRegularization(l1=0.01, name="layer")(q)),
    "Dropout": (V, lambda q: L.Dropout(0.5, name="layer")(q)),
    "SpatialDropout1D": (S1, lambda q: L.SpatialDropout1D(0.3, name="layer")(q)),
    "SpatialDropout2D": (S2, lambda q: L.SpatialDropout2D(0.3, name="layer")(q)),
    "SpatialDropout3D": (S3, lambda q: L.SpatialDropout3D(0.3, name="layer")(q)),
    "AugMix": (IMG, lambda q: L.AugMix(name="layer")(q)),
    "CutMix": (IMG, lambda q: L.CutMix(name="layer")(q)),
    "MixUp": (IMG, lambda q: L.MixUp(name="layer")(q)),
    "RandAugment": (IMG, lambda q: L.RandAugment(name="layer")(q)),
    "RandomBrightness": (IMG, lambda q: L.RandomBrightness(0.2, name="layer")(q)),
    "RandomColorDegeneration": (IMG, lambda q: L.RandomColorDegeneration(0.2, name="layer")(q)),
    "RandomColorJitter": (IMG, lambda q: L.RandomColorJitter(name="layer")(q)),
    "RandomContrast": (IMG, lambda q: L.RandomContrast(0.2, name="layer")(q)),
    "RandomElasticTransform": (IMG, lambda q: L.RandomElasticTransform(name="layer")(q)),
    "RandomErasing": (IMG, lambda q: L.RandomErasing(name="layer")(q)),
    "RandomFlip": (IMG, lambda q: L.RandomFlip(name="layer")(q)),
    "RandomGaussianBlur": (IMG, lambda q: L.RandomGaussianBlur(name="layer")(q)),
    "RandomGrayscale": (IMG, lambda q: L.RandomGrayscale(name="layer")(q)),
    "RandomHue": (IMG, lambda q: L.RandomHue(0.2, name="layer")(q)),
    "RandomInvert": (IMG, lambda q: L.RandomInvert(name="layer")(q)),
    "RandomPerspective": (IMG, lambda q: L.RandomPerspective(name="layer")(q)),
    "RandomPosterization": (IMG, lambda q: L.RandomPosterization(4, name="layer")(q)),
    "RandomRotation": (IMG, lambda q: L.RandomRotation(0.2, name="layer")(q)),
    "RandomSaturation": (IMG, lambda q: L.RandomSaturation(0.2, name="layer")(q)),
    "RandomSharpness": (IMG, lambda q: L.RandomSharpness(0.2, name="layer")(q)),
    "RandomShear": (IMG, lambda q: L.RandomShear(0.2, name="layer")(q)),
    "RandomTranslation": (IMG, lambda q: L.RandomTranslation(0.1, 0.1, name="layer")(q)),
    "RandomZoom": (IMG, lambda q: L.RandomZoom(0.1, name="layer")(q)),
    # Exact activations (rules/inference.py).
    "ReLU": (V, lambda q: L.ReLU(name="layer")(q)),
    "Activation": (V, lambda q: L.Activation("relu", name="layer")(q)),
    # Merges (Subtract/Maximum/Minimum: rules/merge.py; Add: rules/structure.py).
    "Add": (V, _two(L.Add(name="layer"))),
    "Subtract": (V, _two(L.Subtract(name="layer"))),
    "Maximum": (V, _two(L.Maximum(name="layer"))),
    "Minimum": (V, _two(L.Minimum(name="layer"))),
    "Concatenate": (S1, _two(L.Concatenate(name="layer"))),
    # Reshaping, movement, pooling.
    "Flatten": (S1, lambda q: L.Flatten(name="layer")(q)),
    "Reshape": (S1, lambda q: L.Reshape((3, 8), name="layer")(q)),
    "Permute": (S1, lambda q: L.Permute((2, 1), name="layer")(q)),
    "Cropping1D": (S1, lambda q: L.Cropping1D((1, 2), name="layer")(q)),
    "Cropping2D": (S2, lambda q: L.Cropping2D(((1, 0), (0, 2)), name="layer")(q)),
    "ZeroPadding1D": (S1, lambda q: L.ZeroPadding1D(1, name="layer")(q)),
    "ZeroPadding2D": (S2, lambda q: L.ZeroPadding2D(1, name="layer")(q)),
    "UpSampling1D": (S1, lambda q: L.UpSampling1D(2, name="layer")(q)),
    "UpSampling2D": (S2, lambda q: L.UpSampling2D(2, name="layer")(q)),
    "AveragePooling1D": (S1, lambda q: L.AveragePooling1D(2, name="layer")(q)),
    "AveragePooling2D": (S2, lambda q: L.AveragePooling2D(2, name="layer")(q)),
    "MaxPooling1D": (S1, lambda q: L.MaxPooling1D(2, name="layer")(q)),
    "MaxPooling2D": (S2, lambda q: L.MaxPooling2D(2, name="layer")(q)),
    "GlobalAveragePooling1D": (S1, lambda q: L.GlobalAveragePooling1D(name="layer")(q)),
    "GlobalAveragePooling2D": ((4, 4, 2), lambda q: L.GlobalAveragePooling2D(name="layer")(q)),
    "GlobalMaxPooling1D": (S1, lambda q: L.GlobalMaxPooling1D(name="layer")(q)),
    "GlobalMaxPooling2D": (S2, lambda q: L.GlobalMaxPooling2D(name="layer")(q)),
}

_3D = ("3D maps",)
_RNN = ("no exact recurrent layer yet",)
_ATT = ("HMultiHeadAttention",)
_NORM = ("no exact fixed-point firmware", "fold a fixed scale")
_PRE = ("apply it to the data before the model",)
_AUG = ("remove it from the model you convert",)

REFUSED = {
    "Dense": (V, lambda q: L.Dense(3, name="layer")(q), ("hgq_chip.layers.HDense", "HDenseBatchNorm")),
    "Conv1D": (S1, lambda q: L.Conv1D(2, 2, name="layer")(q), ("hgq_chip.layers.HConv1D",)),
    "Conv2D": (S2, lambda q: L.Conv2D(2, 2, name="layer")(q), ("hgq_chip.layers.HConv2D",)),
    "DepthwiseConv1D": (S1, lambda q: L.DepthwiseConv1D(2, name="layer")(q), ("hgq_chip.layers.HDepthwiseConv1D",)),
    "DepthwiseConv2D": (S2, lambda q: L.DepthwiseConv2D(2, name="layer")(q), ("hgq_chip.layers.HDepthwiseConv2D",)),
    "SeparableConv1D": (S1, lambda q: L.SeparableConv1D(2, 2, name="layer")(q), ("hgq_chip.layers.HSeparableConv1D",)),
    "SeparableConv2D": (S2, lambda q: L.SeparableConv2D(2, 2, name="layer")(q), ("hgq_chip.layers.HSeparableConv2D",)),
    "EinsumDense": (V, lambda q: L.EinsumDense("ab,bc->ac", 3, name="layer")(q), ("hgq_chip.layers.HEinsumDense",)),
    "BatchNormalization": (V, lambda q: L.BatchNormalization(name="layer")(q), ("HDenseBatchNorm", "HConv2DBatchNorm")),
    "Multiply": (V, _two(L.Multiply(name="layer")), ("hgq_chip.layers.HMultiply",)),
    "Average": (V, _two(L.Average(name="layer")), ("keras.layers.Add", "fold the 1/n")),
    "Dot": (V, _two(L.Dot(axes=1, name="layer")), ("hgq_chip.layers.HMultiply",)),
    "Softmax": (V, lambda q: L.Softmax(name="layer")(q), ("hgq_chip.layers.HSoftmax",)),
    "ELU": (V, lambda q: L.ELU(name="layer")(q), ("HActivation('elu')",)),
    "LeakyReLU": (V, lambda q: L.LeakyReLU(name="layer")(q), ("HActivation('leaky_relu')",)),
    "PReLU": (V, lambda q: L.PReLU(name="layer")(q), ("keras.layers.ReLU", "HActivation('leaky_relu')")),
    "MultiHeadAttention": (S1, _self_attention(L.MultiHeadAttention(2, 2, name="layer")), _ATT),
    "GroupQueryAttention": (S1, _self_attention(L.GroupQueryAttention(2, 2, 1, name="layer")), _ATT),
    "Attention": (S1, _pair(L.Attention(name="layer")), _ATT),
    "AdditiveAttention": (S1, _pair(L.AdditiveAttention(name="layer")), _ATT),
    "LSTM": (S1, lambda q: L.LSTM(2, name="layer")(q), _RNN),
    "GRU": (S1, lambda q: L.GRU(2, name="layer")(q), _RNN),
    "SimpleRNN": (S1, lambda q: L.SimpleRNN(2, name="layer")(q), _RNN),
    "RNN": (S1, lambda q: L.RNN(L.SimpleRNNCell(2), name="layer")(q), _RNN),
    "Bidirectional": (S1, lambda q: L.Bidirectional(L.LSTM(2), name="layer")(q), _RNN),
    "ConvLSTM1D": ((3, 4, 2), lambda q: L.ConvLSTM1D(2, 2, name="layer")(q), _RNN),
    "ConvLSTM2D": ((3, 4, 4, 2), lambda q: L.ConvLSTM2D(2, 2, name="layer")(q), _RNN),
    "ConvLSTM3D": ((2, 3, 3, 3, 2), lambda q: L.ConvLSTM3D(2, 2, name="layer")(q), _RNN),
    "LayerNormalization": (V, lambda q: L.LayerNormalization(name="layer")(q), ["HLayerNormalization", "last axis"]),
    "GroupNormalization": (S1, lambda q: L.GroupNormalization(groups=1, name="layer")(q), _NORM),
    "RMSNormalization": (V, lambda q: L.RMSNormalization(name="layer")(q), _NORM),
    "UnitNormalization": (V, lambda q: L.UnitNormalization(name="layer")(q), _NORM),
    "Normalization": (V, lambda q: L.Normalization(mean=0.5, variance=2.0, name="layer")(q),
                      ("apply it to the data before the model", "fold 1/std into the kernel")),
    "SpectralNormalization": (V, lambda q: L.SpectralNormalization(L.Dense(2), name="layer")(q),
                              ("train the hgq_chip layer (HDense/HConv) directly",)),
    "Conv3D": (S3, lambda q: L.Conv3D(2, 2, name="layer")(q), _3D),
    "AveragePooling3D": (S3, lambda q: L.AveragePooling3D(2, name="layer")(q), _3D),
    "MaxPooling3D": (S3, lambda q: L.MaxPooling3D(2, name="layer")(q), _3D),
    "GlobalAveragePooling3D": (S3, lambda q: L.GlobalAveragePooling3D(name="layer")(q), _3D),
    "GlobalMaxPooling3D": (S3, lambda q: L.GlobalMaxPooling3D(name="layer")(q), _3D),
    "Cropping3D": (S3, lambda q: L.Cropping3D(1, name="layer")(q), _3D),
    "ZeroPadding3D": (S3, lambda q: L.ZeroPadding3D(1, name="layer")(q), _3D),
    "UpSampling3D": (S3, lambda q: L.UpSampling3D(2, name="layer")(q), _3D),
    "AdaptiveAveragePooling3D": (S3, lambda q: L.AdaptiveAveragePooling3D(2, name="layer")(q), _3D),
    "AdaptiveMaxPooling3D": (S3, lambda q: L.AdaptiveMaxPooling3D(2, name="layer")(q), _3D),
    "Conv1DTranspose": (S1, lambda q: L.Conv1DTranspose(2, 2, name="layer")(q), ("UpSampling1D/2D followed by",)),
    "Conv2DTranspose": (S2, lambda q: L.Conv2DTranspose(2, 2, name="layer")(q), ("UpSampling1D/2D followed by",)),
    "Conv3DTranspose": (S3, lambda q: L.Conv3DTranspose(2, 2, name="layer")(q), ("UpSampling1D/2D followed by",)),
    "AdaptiveAveragePooling1D": (S1, lambda q: L.AdaptiveAveragePooling1D(4, name="layer")(q),
                                 ("keras.layers.AveragePooling1D(input_size // output_size)",)),
    "AdaptiveAveragePooling2D": (S2, lambda q: L.AdaptiveAveragePooling2D(3, name="layer")(q),
                                 ("keras.layers.AveragePooling2D(input_size // output_size)",)),
    "AdaptiveMaxPooling1D": (S1, lambda q: L.AdaptiveMaxPooling1D(4, name="layer")(q),
                             ("keras.layers.MaxPooling1D(input_size // output_size)",)),
    "AdaptiveMaxPooling2D": (S2, lambda q: L.AdaptiveMaxPooling2D(3, name="layer")(q),
                             ("keras.layers.MaxPooling2D(input_size // output_size)",)),
    "RepeatVector": (V, lambda q: L.RepeatVector(2, name="layer")(q), ("UpSampling1D(k)",)),
    "CenterCrop": (S2, lambda q: L.CenterCrop(4, 4, name="layer")(q), ("keras.layers.Cropping2D",)),
    "Resizing": (S2, lambda q: L.Resizing(12, 12, name="layer")(q), ("keras.layers.UpSampling2D(factor)",)),
    "Masking": (S1, lambda q: L.Masking(name="layer")(q), ("zero the padded steps in the data",)),
    "Embedding": (V, lambda q: L.Embedding(10, 2, name="layer")(q), ("one-hot inputs", "HDense")),
    "ReversibleEmbedding": (V, lambda q: L.ReversibleEmbedding(10, 2, name="layer")(q), ("one-hot inputs", "HDense")),
    "TimeDistributed": (S1, lambda q: L.TimeDistributed(L.Dense(2), name="layer")(q),
                        ("hgq_chip.layers.HDense and HConv act per position",)),
    "Lambda": (V, lambda q: L.Lambda(lambda t: t * 2, name="layer")(q), ("arbitrary code",)),
    "Rescaling": (V, lambda q: L.Rescaling(0.5, name="layer")(q), ("fixed scale and offset",)),
    "Discretization": (V, lambda q: L.Discretization(bin_boundaries=[0.0], name="layer")(q), _PRE),
    "STFTSpectrogram": ((32, 1), lambda q: L.STFTSpectrogram(frame_length=8, frame_step=4, fft_length=8,
                                                              name="layer")(q), _PRE),
    "MelSpectrogram": ((64,), lambda q: L.MelSpectrogram(fft_length=16, sequence_stride=8, sequence_length=16,
                                                         num_mel_bins=4, sampling_rate=800, max_freq=400,
                                                         name="layer")(q), _PRE),
    "AutoContrast": (IMG, lambda q: L.AutoContrast(name="layer")(q), _PRE),
    "ContrastLimitedAdaptiveHistogramEqualization": (
        IMG, lambda q: L.ContrastLimitedAdaptiveHistogramEqualization(name="layer")(q), _PRE),
    "Solarization": (IMG, lambda q: L.Solarization(name="layer")(q), _AUG),
    "RandomCrop": (IMG, lambda q: L.RandomCrop(4, 4, name="layer")(q), _AUG + ("keras.layers.Cropping2D",)),
    "MaxNumBoundingBoxes": (IMG, lambda q: L.MaxNumBoundingBoxes(3, name="layer")(q), _PRE),
    "Pipeline": (IMG, lambda q: L.Pipeline([L.Identity()], name="layer")(q), _PRE),
    "IntegerLookup": (V, lambda q: L.IntegerLookup(vocabulary=[1, 2], name="layer")(q), _PRE),
    "Hashing": (V, lambda q: L.Hashing(4, name="layer")(q), _PRE),
}


def _on_values(layer, values):
    """Call ``layer`` eagerly on fixed-point values such as an HQuantize outputs."""
    return lambda: layer(keras.ops.convert_to_tensor(values, "float32"))


def _backend_only(cls, backend, *args):
    """Constructing ``cls`` fails off its backend; on it, the layer holds foreign code, not Keras layers.
    (TorchModuleWrapper is not constructed: that imports torch, 9 s.)"""
    def probe():
        if keras.backend.backend() == backend or cls is L.TorchModuleWrapper:
            raise RuntimeError(f"{cls.__name__} wraps {backend} code, not Keras layers")
        cls(*args)
    return probe


def _functional(layer, shape):
    def probe():
        inp = keras.Input(shape)
        keras.Model(inp, layer(HQuantize()(inp)))
    return probe


# name -> (reason, probe, regex the probe's error message matches).
NOT_BUILDABLE = {
    "Layer": ("the abstract base class: it has no computation of its own",
              lambda: L.Layer()(keras.Input(V)), "Layer.call"),
    "Wrapper": ("an abstract base of wrappers (TimeDistributed, Bidirectional): no call of its own",
                lambda: L.Wrapper(L.Dense(2))(keras.Input(V)), "."),
    "InputLayer": ("the model input itself, not called on a tensor (every model here starts with one)",
                   lambda: L.InputLayer(shape=V)(keras.Input(V)), "positional argument"),
    "GRUCell": ("a recurrent cell is called with its states by an RNN layer (see GRU/RNN)",
                lambda: L.GRUCell(2)(keras.Input(V)), "states"),
    "LSTMCell": ("a recurrent cell is called with its states by an RNN layer (see LSTM/RNN)",
                 lambda: L.LSTMCell(2)(keras.Input(V)), "states"),
    "SimpleRNNCell": ("a recurrent cell is called with its states by an RNN layer (see SimpleRNN/RNN)",
                      lambda: L.SimpleRNNCell(2)(keras.Input(V)), "states"),
    "StackedRNNCells": ("stacked cells are called with their states by an RNN layer (see RNN)",
                        lambda: L.StackedRNNCells([L.SimpleRNNCell(2)])(keras.Input(V)), "states"),
    "TFSMLayer": ("wraps a TensorFlow SavedModel from disk, not Keras layers",
                  lambda: L.TFSMLayer("/nonexistent"), "."),
    "JaxLayer": ("wraps a JAX function (JAX backend only), not Keras layers",
                 _backend_only(L.JaxLayer, "jax", lambda params, inputs: inputs), "."),
    "FlaxLayer": ("wraps a Flax module (JAX backend and flax only), not Keras layers",
                  _backend_only(L.FlaxLayer, "jax", None), "."),
    "TorchModuleWrapper": ("wraps a PyTorch module (torch backend only), not Keras layers",
                           _backend_only(L.TorchModuleWrapper, "torch", None), "wraps torch code"),
    "HashedCrossing": ("crosses a pair of integer or string features, not one fixed-point tensor",
                       _on_values(L.HashedCrossing(4), [[0.5]]), "list or tuple"),
    "StringLookup": ("maps strings to ids: Keras cannot cast an HQuantize output (floats) to strings",
                     _on_values(L.StringLookup(vocabulary=["a"]), [[0.5]]), "string"),
    "TextVectorization": ("maps text to ids: Keras cannot cast an HQuantize output (floats) to text",
                          _on_values(L.TextVectorization(), [[0.5]]), "string"),
    "CategoryEncoding": ("counts non-negative integer ids: an HQuantize output holds negative values",
                         _on_values(L.CategoryEncoding(4), [[-1.0]]), "negative|Negative"),
    "Equalization": ("Keras cannot place it in a functional model (its output is 'part of a cycle')",
                     _functional(L.Equalization(), IMG), "cycle"),
}
