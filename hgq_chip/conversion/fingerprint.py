"""A fingerprint of what a project's firmware is built from: the model's weights and quantizer state.

``convert`` writes it into ``hgq_chip_project.json`` (``weights_sha256``) and ``verify``
recomputes it before compiling: a project converted from the same architecture with other
weights (retrained, recalibrated, but not converted again) then is a ProjectError ("convert
again") instead of a mismatch that blames the firmware.

It is the SHA-256 of the values of ``model.weights`` in their order (kernels, biases, batch
normalization statistics, every quantizer's bit-width variables and recorded ranges), each
with its shape, as float64 (exact for float32 values, so a model verified under
``keras.config.set_floatx("float64")`` matches), -0.0 counted as 0.0. Variable names are left
out (the same model built twice gets other automatic names). Left out as well, because
Keras or training change them without changing the firmware:

- random seed states (of Dropout and other random layers; Keras keeps them out of
  ``model.weights`` already, and any that appear are skipped);
- the EBOPs loss weight ``beta`` of every quantized layer (beta schedules and the PID
  controller set it during training; the conversion never reads it);
- AdaQAT's ``frozen`` flags (training-controller state; the bit-widths themselves count);
- function tables (``layers/tables.py``, variables marked ``derived_table``): computed from the
  quantizer state, which counts, and refreshed at load and by ``convert``.
"""

from __future__ import annotations

import hashlib

import numpy as np

FINGERPRINT_KEY = "weights_sha256"
LAYER_FINGERPRINTS_KEY = "layer_weights_sha256"


def _unread_variables(model) -> set[int]:
    """ids of the variables of ``model`` the conversion does not read (see the module docstring)."""
    from ..quantizers.adaqat import AdaQATActivationQuantizer, AdaQATWeightQuantizer

    skipped = set()
    for layer in model.layers:
        # beta weighs a layer's EBOPs in the loss (every layer with EBOPs has one): no firmware reads it.
        if hasattr(layer, "ebops_exact") and getattr(layer, "beta", None) is not None:
            skipped.add(id(layer.beta))
        for quantizer in getattr(layer, "quantizers", lambda: [])():
            if isinstance(quantizer, (AdaQATWeightQuantizer, AdaQATActivationQuantizer)) \
                    and getattr(quantizer, "frozen", None) is not None:
                skipped.add(id(quantizer.frozen))
    return skipped


def _digest(variables, skipped) -> str:
    import keras

    digest = hashlib.sha256()
    for variable in variables:
        if id(variable) in skipped or "seed_generator" in getattr(variable, "path", "") \
                or getattr(variable, "derived_table", False):
            continue
        values = np.asarray(keras.ops.convert_to_numpy(variable))
        if values.dtype.kind in "fc":
            values = values.astype(np.float64) + 0.0  # -0.0 -> 0.0
        else:
            values = values.astype(np.int64)
        digest.update(repr(tuple(values.shape)).encode())
        digest.update(np.ascontiguousarray(values).tobytes())
    return "sha256:" + digest.hexdigest()


def weights_fingerprint(model) -> str:
    """``"sha256:<hex>"`` of the weights and quantizer state ``model``'s firmware is derived from."""
    return _digest(model.weights, _unread_variables(model))


def layer_fingerprints(model) -> dict[str, str]:
    """``{layer name: fingerprint of its own weights}`` of the layers of ``model`` that have
    weights (to name the layers that changed; the names are the model's, so only a rebuilt
    model with the same names can be compared layer by layer)."""
    skipped = _unread_variables(model)
    return {layer.name: _digest(layer.weights, skipped) for layer in model.layers
            if any(id(v) not in skipped for v in layer.weights)}
