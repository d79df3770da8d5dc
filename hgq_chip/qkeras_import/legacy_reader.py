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
VERSION = 1

WEIGHTED = ("QDense", "QConv1D", "QConv2D")
PASSIVE = ("InputLayer", "Flatten", "Dropout", "Reshape")


def load(path):
    from qkeras.utils import load_qmodel

    return load_qmodel(path, compile=False)


def quantizer_description(quantizer):
    """{'class', 'config'} of a QKeras quantizer, {'activation': name} of a plain function, or None."""
    if quantizer is None:
        return None
    if hasattr(quantizer, "get_config") and type(quantizer).__module__.startswith("qkeras"):
        config = {key: _plain(value) for key, value in quantizer.get_config().items()}
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
    entry = {
        "use_bias": bool(layer.use_bias),
        "kernel_quantizer": quantizer_description(layer.kernel_quantizer_internal),
        "bias_quantizer": quantizer_description(layer.bias_quantizer_internal),
        "activation": quantizer_description(layer.activation),
    }
    config = layer.get_config()
    for key in ("units", "filters", "kernel_size", "strides", "padding", "dilation_rate", "data_format", "groups"):
        if key in config:
            entry[key] = _plain(config[key])
    kernel = layer.kernel.numpy()
    weights[f"{layer.name}/kernel"] = kernel
    weights[f"{layer.name}/kernel_q"], scale = quantized(layer.kernel_quantizer_internal, kernel)
    if scale is not None:
        weights[f"{layer.name}/kernel_scale"] = scale
    if layer.use_bias:
        bias = layer.bias.numpy()
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


def layer_entry(layer, weights):
    kind = type(layer).__name__
    entry = {"name": layer.name, "class": kind}
    if kind in WEIGHTED:
        entry.update(weighted_layer(layer, weights))
    elif kind == "QActivation":
        entry["quantizer"] = quantizer_description(layer.quantizer)
    elif kind == "Activation":
        entry["quantizer"] = quantizer_description(layer.activation)
    elif kind == "BatchNormalization":
        entry.update(batchnorm_layer(layer, weights))
    elif kind == "Reshape":
        entry["target_shape"] = list(layer.get_config()["target_shape"])
    elif kind == "Dropout":
        entry["rate"] = float(layer.get_config()["rate"])
    return entry


def chain_breaks(model):
    """Names of layers that do not read exactly the previous layer (a non-sequential graph)."""
    config = model.get_config()
    names = [layer["config"]["name"] for layer in config.get("layers", [])]
    breaks = []
    for position, layer in enumerate(config.get("layers", [])):
        nodes = layer.get("inbound_nodes")
        if not nodes:
            continue
        inbound = [item[0] for node in nodes for item in node] if isinstance(nodes[0], list) else []
        if len(nodes) != 1 or inbound != [names[position - 1]]:
            breaks.append(layer["config"]["name"])
    return breaks


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
        "not_a_chain": chain_breaks(model),
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
