"""Build the Keras model of a fuzzer spec (``hgq_chip.testing.model_fuzz``) and calibrate it.

Everything random (initial weights, batch-norm statistics, per-element bit-widths, pruned
weights, ASQ adapters, the optional training step, calibration data) comes from the spec's
seed, so a spec rebuilds the same model.
"""

from __future__ import annotations

import numpy as np

CALIBRATION_SAMPLES = 64


def _layer(step: dict):
    import keras

    from .. import layers as hl

    op, name = step["op"], step["name"]
    if op == "quantize":
        return hl.HQuantize(step["q"], name=name)
    if op == "activation":
        return hl.HActivation(step["activation"], input_quantizer=step["iq"], output_quantizer=step.get("oq"), name=name)
    if op == "softmax":
        return hl.HSoftmax(step["stable"], input_quantizer=step["iq"], exp_quantizer=step["exp_q"],
                           sum_quantizer=step["sum_q"], inverse_quantizer=step["inv_q"], output_quantizer=step["oq"],
                           name=name)
    if op == "dropout":
        return keras.layers.Dropout(step["rate"], name=name)
    if op == "flatten":
        return keras.layers.Flatten(name=name)
    if op == "reshape":
        return keras.layers.Reshape(tuple(step["target"]), name=name)
    if op == "pool":
        rank = len(step["pool"])
        cls = {("max", 1): keras.layers.MaxPooling1D, ("max", 2): keras.layers.MaxPooling2D,
               ("avg", 1): keras.layers.AveragePooling1D, ("avg", 2): keras.layers.AveragePooling2D}[step["kind"], rank]
        return cls(tuple(step["pool"]), tuple(step["strides"]), step["padding"], name=name)
    common = {"activation": step["activation"], "use_bias": step["use_bias"], "name": name,
              "input_quantizer": step["iq"], "kernel_quantizer": step["kq"]}
    if "bq" in step:
        common["bias_quantizer"] = step["bq"]
    family = step["family"]
    if op in ("dense", "shared_dense"):
        cls = {"h": hl.HDense, "hbn": hl.HDenseBatchNorm, "a": hl.ADense, "asq": hl.ASQDense}[family]
        return cls(step["units"], **common)
    rank = len(step["kernel"])
    extra = {} if step["dilation"] == 1 else {"dilation_rate": step["dilation"]}
    if family == "dw":
        cls = hl.HDepthwiseConv1D if rank == 1 else hl.HDepthwiseConv2D
        return cls(tuple(step["kernel"]), strides=tuple(step["strides"]), padding=step["padding"],
                   depth_multiplier=step["depth_multiplier"], **common, **extra)
    cls = {("h", 1): hl.HConv1D, ("h", 2): hl.HConv2D, ("hbn", 1): hl.HConv1DBatchNorm, ("hbn", 2): hl.HConv2DBatchNorm,
           ("a", 1): hl.AConv1D, ("a", 2): hl.AConv2D, ("asq", 1): hl.ASQConv1D, ("asq", 2): hl.ASQConv2D}[family, rank]
    return cls(step["filters"], tuple(step["kernel"]), strides=tuple(step["strides"]), padding=step["padding"],
               **common, **extra)


def _apply(steps: list, x):
    from .. import layers as hl

    import keras

    from .families import fuzz_steps
    from .fuzz_attention import ATTENTION_OPS, apply_attention_step
    from .fuzz_movement import MOVEMENT_OPS, build_movement_layer

    family_steps = fuzz_steps()
    for step in steps:
        if step["op"] in family_steps:
            x = family_steps[step["op"]].build(step)(x)
        elif step["op"] in ATTENTION_OPS:
            x = apply_attention_step(step, x)
        elif step["op"] == "add":
            branches = [_apply(branch, x) for branch in step["branches"]]
            x = hl.HAdd(name=step["name"])(branches)
        elif step["op"] == "merge":
            branches = [_apply(branch, x) for branch in step["branches"]]
            cls = {"subtract": hl.HSubtract, "multiply": hl.HMultiply, "maximum": hl.HMaximum,
                   "minimum": hl.HMinimum}[step["kind"]]
            x = cls(input_quantizer=step["iq"], name=step["name"])(branches)
        elif step["op"] == "concat":
            branches = [_apply(branch, x) for branch in step["branches"]]
            x = keras.layers.Concatenate(axis=step["axis"], name=step["name"])(branches)
        elif step["op"] in MOVEMENT_OPS:
            x = build_movement_layer(step, len(x.shape) - 2)(x)
        elif step["op"] == "shared_dense":
            layer = _layer(step)
            x = layer(layer(x))
        else:
            x = _layer(step)(x)
    return x


def _quantizers(model):
    for layer in model.layers:
        for q in getattr(layer, "quantizers", lambda: [])():
            yield layer, q


def randomize(model, spec: dict, rng: np.random.Generator) -> None:
    """Random weights, statistics and bit-widths, some weights pruned (quantized to zero)."""
    from ..layers import HSoftmax
    from ..layers.adaqat import AdaQATLayerMixin
    from .families import case_of_class

    bits = spec["bits"]
    for layer in model.layers:
        if getattr(layer, "use_bias", False) and getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0.0, 0.5, layer.bias.shape))
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and bits["prune_percent"]:
            keep = rng.uniform(0, 100, kernel.shape) >= bits["prune_percent"]
            kernel.assign(np.asarray(kernel.numpy()) * keep)
        statistics = (("moving_mean", lambda n: rng.normal(0.0, 0.5, n)),
                      ("moving_variance", lambda n: rng.uniform(0.2, 2.0, n)),
                      ("bn_gamma", lambda n: rng.normal(1.0, 0.5, n)), ("bn_beta", lambda n: rng.normal(0.0, 0.5, n)),
                      ("ln_gamma", lambda n: rng.normal(1.0, 0.5, n)), ("ln_beta", lambda n: rng.normal(0.0, 0.5, n)))
        for name, draw in statistics:
            var = getattr(layer, name, None)
            if var is not None:
                var.assign(draw(var.shape))
        if isinstance(layer, AdaQATLayerMixin):
            layer.kq.set_bits(float(rng.integers(2, 9)))
            layer.iq.set_bits(float(rng.integers(2 + layer.iq.signed, 9)))
        iq = getattr(layer, "iq", None)
        for adapter in ("a1", "d1", "a2"):
            if hasattr(iq, adapter):
                var = getattr(iq, adapter)
                var.assign(rng.normal(0.0, 0.3, var.shape))
    for layer, q in _quantizers(model):
        f = getattr(q, "f", None)
        if f is None or not hasattr(q, "rounded_f"):
            continue
        lo, hi = bits["act_f"] if hasattr(q, "record_range") else bits["weight_f"]
        if isinstance(layer, HSoftmax) and q is not layer.iq:
            lo, hi = 2, 8  # values of about 1 (exp, 1/sum, outputs): a few bits below the point
        case = case_of_class(type(layer))  # a family's own ranges (FamilyCase.bit_ranges)
        for attribute, bounds in (case.bit_ranges.items() if case else ()):
            if getattr(layer, attribute, None) is q:
                lo, hi = bounds
        f.assign(rng.integers(lo, hi + 1, size=f.shape).astype("float32"))


def _train_step(model, x, rng) -> None:
    """One tiny training epoch on random targets (moves bits, ranges and batch-norm statistics)."""
    y = [rng.normal(0.0, 1.0, (len(x[0]),) + tuple(int(d) for d in o.shape[1:])).astype("float32") for o in model.outputs]
    model.compile("adam", "mse")
    model.fit(x if len(x) > 1 else x[0], y if len(y) > 1 else y[0], epochs=1, batch_size=16, verbose=0)


def build_model(spec: dict):
    """(model, calibration inputs) of a spec; the model is calibrated on those inputs.

    Layer constructors may raise ``ValueError`` or a typed ``hgq_chip`` error for options
    the layer API itself refuses; calibration may raise ``hgq_chip.errors`` ones.
    """
    import keras

    from ..calibration import calibrate

    keras.utils.set_random_seed(spec["seed"])
    rng = np.random.default_rng(spec["seed"])
    inputs = keras.Input(tuple(spec["input_shape"]), name="x")
    model = keras.Model(inputs, _apply(spec["layers"], inputs), name="fuzz")
    randomize(model, spec, rng)
    x = rng.normal(0.0, 1.0, (CALIBRATION_SAMPLES, *spec["input_shape"])) * spec["data_scale"]
    x = x.astype(np.float32)
    if spec["train"]:
        _train_step(model, [x], rng)
    calibrate(model, x)
    return model, x
