"""The save/load check every quantized layer must pass: same class, config, weights, outputs, EBOPs."""

import keras
import numpy as np


def assert_layer_round_trip(model, layer, x, path):
    """Save ``model`` (whose last layer is ``layer``) to ``path``, reload it; return the reloaded layer."""
    model.save(path)
    loaded = keras.models.load_model(path)
    twin = loaded.layers[-1]
    assert type(twin) is type(layer) and twin.get_config() == layer.get_config()
    assert np.array_equal(keras.ops.convert_to_numpy(loaded(x, training=False)), keras.ops.convert_to_numpy(model(x, training=False)))
    for a, b in zip(layer.weights, twin.weights):
        assert a.path == b.path and np.array_equal(a.numpy(), b.numpy())
    assert twin.ebops_exact() == layer.ebops_exact()
    return twin
