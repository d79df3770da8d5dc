"""The only code that touches QKeras: runs in a separate Python with TF_USE_LEGACY_KERAS=1.

QKeras 0.9 needs Keras 2 (tf-keras) and TensorFlow reads TF_USE_LEGACY_KERAS once, at
import, so it cannot share a process with hgq_chip's Keras 3. This file is therefore run
as a script (``python legacy_reader.py COMMAND ...``), imports nothing from hgq_chip, and
talks to the Keras 3 side through plain files:

``describe MODEL.h5 OUT_DIR``
    writes ``description.json`` (layers, their arguments, quantizer classes and
    configurations) and ``weights.npz`` (float weights, QKeras' own quantized weights and
    the per-channel scales its quantizers computed, keyed ``<layer>/<name>``).
``predict MODEL.h5 X.npy Y.npy``
    writes the QKeras model's inference output on X.
"""

import json
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

FORMAT = "hgq_chip-qkeras-description"
VERSION = 2

WEIGHTED = ("QDense", "QConv1D", "QConv2D", "QDepthwiseConv2D")
# Layers whose inference output QKeras computes from the BatchNorm-folded kernel and bias, each
# quantized by the layer's own quantizers after folding (qkeras/qconv2d_batchnorm.py).
FOLDED = ("QConv2DBatchnorm", "QDepthwiseConv2DBatchnorm", "QDenseBatchnorm")
POOLING = ("MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D")
GLOBAL_POOLING = ("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D")
# Weightless layers the importer rebuilds from their Keras configuration (plain values only).
CONFIGURED = ("Permute", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D", "UpSampling1D", "UpSampling2D",
              "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
              "ActivityRegularization", "Identity", "RandomBrightness", "RandomContrast", "RandomFlip",
              "RandomRotation", "RandomTranslation", "RandomZoom")


def load(path):
    from qkeras.utils import load_qmodel

    return load_qmodel(path, compile=False)


def quantizer_description(quantizer):
    """{'class', 'config'} of a QKeras quantizer, {'activation': name} of a plain function, or None."""
    if quantizer is None:
        return None
    if hasattr(quantizer, "get_config") and type(quantizer).__module__.startswith("qkeras"):
        config = {key: _plain(value) for key, value in quantizer.get_config().items()}
        if type(quantizer).__name__ == "quantized_tanh":
            # quantized_tanh's formula uses QKeras' process-wide internal sigmoid (a module global,
            # 'hard' unless set_internal_sigmoid changed it); the saved file does not record it.
            from qkeras import quantizers

            config["internal_sigmoid"] = getattr(quantizers._sigmoid, "__name__", str(quantizers._sigmoid))
        return {"class": type(quantizer).__name__, "config": config}
    return {"activation": getattr(quantizer, "__name__", str(quantizer))}


def _plain(value):
    if hasattr(value, "numpy"):
        value = value.numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def quantized(quantizer, weight):
    """What the layer multiplies by: QKeras' own quantizer applied to the float weight."""
    if quantizer is None:
        return np.asarray(weight), None
    values = np.asarray(quantizer(weight))
    scale = getattr(quantizer, "scale", None)
    scale = None if scale is None else np.asarray(_plain(scale), dtype=np.float64)
    return values, scale


def weighted_layer(layer, weights):
    depthwise = hasattr(layer, "depthwise_quantizer_internal")
    kernel_quantizer = layer.depthwise_quantizer_internal if depthwise else layer.kernel_quantizer_internal
    folded = type(layer).__name__ in FOLDED
    entry = {
        "use_bias": bool(layer.use_bias) or folded,
        "kernel_quantizer": quantizer_description(kernel_quantizer),
        "bias_quantizer": quantizer_description(layer.bias_quantizer_internal),
        "activation": quantizer_description(layer.activation),
        "folded": folded,
    }
    config = layer.get_config()
    for key in ("units", "filters", "kernel_size", "strides", "padding", "dilation_rate", "data_format", "groups",
                "depth_multiplier"):
        if key in config:
            entry[key] = _plain(config[key])
    if folded:
        # QKeras' inference path: kernel * gamma / sqrt(moving_variance + epsilon) and
        # gamma * (bias - moving_mean) / sqrt(...) + beta, computed by QKeras itself in float32.
        kernel, bias = (np.asarray(_plain(w)) for w in layer.get_folded_weights())
    else:
        kernel = (layer.depthwise_kernel if depthwise else layer.kernel).numpy()
        bias = layer.bias.numpy() if layer.use_bias else None
    weights[f"{layer.name}/kernel"] = kernel
    weights[f"{layer.name}/kernel_q"], scale = quantized(kernel_quantizer, kernel)
    if scale is not None:
        weights[f"{layer.name}/kernel_scale"] = scale
    if entry["use_bias"]:
        weights[f"{layer.name}/bias"] = bias
        weights[f"{layer.name}/bias_q"], scale = quantized(layer.bias_quantizer_internal, bias)
        if scale is not None:
            weights[f"{layer.name}/bias_scale"] = scale
    return entry


def batchnorm_layer(layer, weights):
    config = layer.get_config()
    axis = config["axis"]
    entry = {"axis": axis if isinstance(axis, int) else list(axis), "epsilon": float(config["epsilon"]),
             "center": bool(config["center"]), "scale": bool(config["scale"])}
    for variable in layer.weights:
        short = variable.name.split("/")[-1].split(":")[0]
        weights[f"{layer.name}/{short}"] = variable.numpy()
    return entry


def inbound_names(layer):
    """Names of the layers whose outputs ``layer`` reads (in call order); None if it is called twice."""
    nodes = [node for node in layer.inbound_nodes]
    if len(nodes) != 1:
        return None
    inbound = nodes[0].inbound_layers
    inbound = inbound if isinstance(inbound, (list, tuple)) else [inbound]
    return [item.name for item in inbound]


def layer_entry(layer, weights):
    kind = type(layer).__name__
    entry = {"name": layer.name, "class": kind, "inbound": inbound_names(layer)}
    config = layer.get_config()
    if kind in WEIGHTED or kind in FOLDED:
        entry.update(weighted_layer(layer, weights))
    elif kind == "QActivation":
        entry["quantizer"] = quantizer_description(layer.quantizer)
    elif kind == "Activation":
        entry["quantizer"] = quantizer_description(layer.activation)
    elif kind == "BatchNormalization":
        entry.update(batchnorm_layer(layer, weights))
    elif kind == "Reshape":
        entry["target_shape"] = list(config["target_shape"])
    elif kind == "Dropout":
        entry["rate"] = float(config["rate"])
    elif kind in POOLING:
        entry.update({key: _plain(config[key]) for key in ("pool_size", "strides", "padding", "data_format")})
    elif kind in GLOBAL_POOLING:
        entry.update({key: _plain(config.get(key)) for key in ("data_format", "keepdims")})
    elif kind == "Concatenate":
        entry["axis"] = int(config["axis"])
    elif kind in CONFIGURED:
        entry["config"] = {key: _plain(value) for key, value in config.items()
                           if key not in ("name", "trainable", "dtype", "batch_input_shape")}
    return entry


def describe(model_path, out_dir):
    model = load(model_path)
    weights = {}
    description = {
        "format": FORMAT,
        "version": VERSION,
        "source": os.path.abspath(model_path),
        "model_name": model.name,
        "input_shape": [None if d is None else int(d) for d in model.inputs[0].shape[1:]],
        "n_inputs": len(model.inputs),
        "n_outputs": len(model.outputs),
        "output_layer": model.output_names[0],
        "layers": [layer_entry(layer, weights) for layer in model.layers],
    }
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "description.json"), "w") as handle:
        json.dump(description, handle, indent=1)
    np.savez(os.path.join(out_dir, "weights.npz"), **weights)


def predict(model_path, x_path, y_path):
    model = load(model_path)
    x = np.load(x_path)
    y = model(x, training=False)
    np.save(y_path, np.asarray(y))


COMMANDS = {"describe": (describe, 2), "predict": (predict, 3)}


def main(argv):
    if not argv or argv[0] not in COMMANDS or len(argv) - 1 != COMMANDS[argv[0]][1]:
        print("usage: legacy_reader.py describe MODEL.h5 OUT_DIR | predict MODEL.h5 X.npy Y.npy", file=sys.stderr)
        return 2
    function, _ = COMMANDS[argv[0]]
    function(*argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
