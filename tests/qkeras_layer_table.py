"""Every QKeras layer class, and every Keras 2 layer class a QKeras model may hold, with what
``from_qkeras`` does with it (tests/test_qkeras_enumeration.py).

``ENUMERATE`` runs in the Keras 2 child process (``run_legacy_python``): it lists QKeras' layer
classes (every ``qkeras`` module's Layer subclasses) and ``tf.keras.layers``' classes, builds one
small QKeras model per QKeras class (an input quantizer, the layer, a Flatten), saves it, writes
``legacy_reader describe``'s description of it and QKeras' outputs on a grid input, and does the
same for ``MOVEMENT_GRAPH``: a graph of every weightless Keras layer and merge the importer added
for issue 33. Output: ``index.json`` in the folder given as its first argument.
"""

from __future__ import annotations

# QKeras classes: imported (the importer builds an hgq_chip model equal to QKeras on the grid) or
# refused (a typed error naming the way forward, checked by these words).
QKERAS_IMPORTED = ("QActivation", "QConv1D", "QConv2D", "QConv2DBatchnorm", "QDense", "QDepthwiseConv2D",
                   "QDepthwiseConv2DBatchnorm")
QKERAS_REFUSED = {
    "QAdaptiveActivation": ("replace it by QActivation",),
    "QAveragePooling2D": ("keras.layers.AveragePooling2D",),
    "QGlobalAveragePooling2D": ("keras.layers.GlobalAveragePooling2D",),
    "QBatchNormalization": ("QConv2DBatchnorm", "HDenseBatchNorm"),
    "QBidirectional": ("no exact recurrent layer yet",),
    "QLSTM": ("no exact recurrent layer yet",),
    "QSeparableConv1D": ("depthwise + 1x1 conv",),
    "QSeparableConv2D": ("depthwise + 1x1 conv", "QDepthwiseConv2D followed by a 1x1 QConv2D"),
}
# QKeras classes QKeras itself cannot call in a model here (name -> words of its error).
QKERAS_NOT_BUILDABLE = {
    # qkeras 0.9's QConv2DTranspose.call uses array_ops.stack, which TensorFlow 2.16+ no longer has; its
    # refusal hint (import_hints.py) names UpSampling2D + QConv2D for when it is saved by an older TensorFlow.
    "QConv2DTranspose": ("array_ops", "stack"),
    # qkeras 0.9's QGRU/QSimpleRNN cells call nest.is_sequence, which TensorFlow 2.16+ no longer has (QLSTM works).
    "QGRU": ("nest", "is_sequence"),
    "QSimpleRNN": ("nest", "is_sequence"),
}
# Cells are called by an RNN layer with their states, never on a tensor: the RNN wrapping them is refused.
QKERAS_CELLS = ("QGRUCell", "QLSTMCell", "QSimpleRNNCell")
# Keras 2 classes that cannot be a layer of an imported model at all (not refused by name).
KERAS_NOT_A_LAYER = {
    "InputLayer": "the model input: the importer reads its shape",
    "Layer": "the abstract base class (a custom layer is refused listing the supported layers)",
    "Wrapper": "an abstract base of wrappers (TimeDistributed, Bidirectional are refused by name)",
    "AbstractRNNCell": "a cell base class, called by an RNN layer (refused by name)",
    "GRUCell": "a cell, called by an RNN layer (refused by name)",
    "LSTMCell": "a cell, called by an RNN layer (refused by name)",
    "SimpleRNNCell": "a cell, called by an RNN layer (refused by name)",
    "StackedRNNCells": "cells, called by an RNN layer (refused by name)",
}

ENUMERATE = r'''
import inspect, importlib, json, os, pkgutil, sys
import numpy as np
import tensorflow as tf
import qkeras
from qkeras import *  # noqa: F403

out = sys.argv[1]
sys.path.insert(0, os.path.dirname(qkeras_reader_path := sys.argv[2]))
import legacy_reader  # noqa: E402

classes = {}
for info in pkgutil.walk_packages(qkeras.__path__, "qkeras."):
    try:
        module = importlib.import_module(info.name)
    except Exception:  # optional parts (autoqkeras needs keras_tuner)
        continue
    for name, value in vars(module).items():
        if inspect.isclass(value) and issubclass(value, tf.keras.layers.Layer) and value.__module__.startswith("qkeras"):
            classes[name] = value
# By class name: an alias (MaxPool2D) is the same class, and the description holds the class name.
keras_names = sorted({getattr(tf.keras.layers, n).__name__ for n in dir(tf.keras.layers)
                      if inspect.isclass(getattr(tf.keras.layers, n))
                      and issubclass(getattr(tf.keras.layers, n), tf.keras.layers.Layer)})

tf.keras.utils.set_random_seed(0)
QB = dict(kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1))
BUILD = {
    "QActivation": ((6,), lambda: QActivation(quantized_relu(6, 2))),
    "QAdaptiveActivation": ((6,), lambda: QAdaptiveActivation("quantized_relu", total_bits=6)),
    "QAveragePooling2D": ((4, 4, 2), lambda: QAveragePooling2D(2, average_quantizer=quantized_bits(8, 2, alpha=1))),
    "QGlobalAveragePooling2D": ((4, 4, 2), lambda: QGlobalAveragePooling2D(average_quantizer=quantized_bits(8, 2, alpha=1))),
    "QBatchNormalization": ((6,), lambda: QBatchNormalization()),
    "QBidirectional": ((5, 3), lambda: QBidirectional(QLSTM(2))),
    "QConv1D": ((6, 2), lambda: QConv1D(2, 2, **QB)),
    "QConv2D": ((4, 4, 2), lambda: QConv2D(2, 2, **QB)),
    "QConv2DBatchnorm": ((4, 4, 2), lambda: QConv2DBatchnorm(2, 2, **QB)),
    "QConv2DTranspose": ((4, 4, 2), lambda: QConv2DTranspose(2, 2, **QB)),
    "QDense": ((6,), lambda: QDense(3, **QB)),
    "QDepthwiseConv2D": ((4, 4, 2), lambda: QDepthwiseConv2D(2, depthwise_quantizer=quantized_bits(6, 0, alpha=1),
                                                             bias_quantizer=quantized_bits(6, 0, alpha=1))),
    "QDepthwiseConv2DBatchnorm": ((4, 4, 2), lambda: QDepthwiseConv2DBatchnorm(
        2, depthwise_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1))),
    "QGRU": ((5, 3), lambda: QGRU(2)),
    "QLSTM": ((5, 3), lambda: QLSTM(2)),
    "QSimpleRNN": ((5, 3), lambda: QSimpleRNN(2)),
    "QSeparableConv1D": ((6, 2), lambda: QSeparableConv1D(2, 2)),
    "QSeparableConv2D": ((4, 4, 2), lambda: QSeparableConv2D(2, 2)),
}


def grid(shape, n=400, seed=0):
    codes = np.random.default_rng(seed).integers(-32, 32, size=(n, *shape))
    return (codes / 8.0).astype(np.float32)  # quantized_bits(6, 2): multiples of 1/8 in [-4, 4)


def save(name, model, x):
    path = os.path.join(out, f"{name}.h5")
    model.save(path)
    folder = os.path.join(out, name)
    legacy_reader.describe(path, folder)
    loaded = legacy_reader.load(path)
    np.save(os.path.join(folder, "x.npy"), x)
    np.save(os.path.join(folder, "y.npy"), np.asarray(loaded(x, training=False)))


built, unbuildable = {}, {}
for name, (shape, make) in BUILD.items():
    inputs = tf.keras.Input(shape)
    x = QActivation(quantized_bits(6, 2, alpha=1), name="input_q")(inputs)
    try:
        y = tf.keras.layers.Flatten(name="flatten")(make()(x))
    except Exception as error:  # QKeras itself cannot call it
        unbuildable[name] = f"{type(error).__name__}: {error}"
        continue
    save(name, tf.keras.Model(inputs, y, name=name.lower()), grid(shape))
    built[name] = shape

# MOVEMENT_GRAPH
layers = tf.keras.layers
inputs = tf.keras.Input((6, 6, 2))
q = QActivation(quantized_bits(6, 2, alpha=1), name="input_q")(inputs)
a = QActivation(quantized_relu(6, 2), name="relu_a")(QConv2D(3, 3, padding="same", name="conv_a", **QB)(q))
b = QActivation(quantized_bits(6, 2, alpha=1), name="bits_b")(QConv2D(3, 3, padding="same", name="conv_b", **QB)(q))
m = layers.Subtract(name="sub")([a, b])
m = layers.Maximum(name="max")([m, b, a])
m = layers.Minimum(name="min")([m, a])
m = layers.Permute((2, 1, 3), name="permute")(m)
m = layers.Cropping2D(((1, 0), (0, 1)), name="crop")(m)
m = layers.ZeroPadding2D(((0, 1), (1, 0)), name="pad")(m)
m = layers.UpSampling2D(2, name="up")(m)
for cls in (layers.SpatialDropout2D, layers.GaussianNoise, layers.GaussianDropout, layers.AlphaDropout):
    m = cls(0.2, name=cls.__name__.lower())(m)
m = layers.ActivityRegularization(l1=0.01, name="actreg")(m)
m = layers.RandomFlip(name="flip")(m)
m = layers.RandomZoom(0.1, name="zoom")(m)
if hasattr(layers, "Identity"):
    m = layers.Identity(name="identity")(m)
s = layers.Reshape((144, 3), name="series")(m)
s = layers.Cropping1D((2, 6), name="crop1")(s)
s = layers.ZeroPadding1D(1, name="pad1")(s)
s = layers.UpSampling1D(2, name="up1")(s)
s = layers.SpatialDropout1D(0.2, name="sdrop1")(s)
s = QConv1D(2, 3, strides=3, name="conv1", **QB)(s)
y = QDense(4, name="dense", **QB)(layers.Flatten(name="flatten")(s))
save("movement_graph", tf.keras.Model(inputs, y, name="movement_graph"), grid((6, 6, 2), n=1500, seed=1))

with open(os.path.join(out, "index.json"), "w") as handle:
    json.dump({"qkeras_classes": sorted(classes), "keras_classes": keras_names, "built": sorted(built),
               "unbuildable": unbuildable}, handle)
'''
