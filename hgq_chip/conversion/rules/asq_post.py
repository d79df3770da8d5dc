"""Precision rule and hls4ml handler for ASQDense and ASQConv1D/2D (LSQ/ASQ inputs, LSQ/POT/POST weights).

Every intermediate of ``firmware_templates/nnet_asq_post.h`` gets a type from exact interval
arithmetic, wide enough that only the two declared casts round (input codes, β). Internal
types are "normal" (integer and fractional bits ≥ 0): the open-source ap_fixed asserts when
a type with more fractional bits than width is rounded.
"""

from __future__ import annotations

import numpy as np

from ...errors import UnsupportedLayerError
from ...fixed.format import FixedFormat
from ...fixed.interval import Interval
from ...fixed.minimal import minimal_format_per_element
from ...layers.asq_post import ASQDense
from ...layers.asq_post_conv import ASQConv1D, ASQConv2D
from ...quantizers.asq import BETA_INTEGER_BITS, BETA_MIN
from ...quantizers.post import level_shift_and_odd
from ..asq_post_hls import HLS_CLASS_NAME, HLS_CONV_CLASS_NAME, IO_STREAM_ADVICE, declared_types
from ..asq_post_ops import asq_post_operations, code_source_interval, shift_add_kernel
from ..family import handler, limits, rule, trace
from ..ops import relu_op
from ..option import Option, attr, io_types_option
from ..records import MANTISSA_BITS, FloatValues, HLSLayerTypes, LayerRecord, WeightTable, format_of, interval_bits
from ._stages import constant_format, layer_dict, record_of_layer, require_input

# float64 computes the Keras inference path exactly while every value fits its mantissa.
FLOAT64_MANTISSA_BITS = MANTISSA_BITS["float64"]


def normal(fmt: FixedFormat) -> FixedFormat:
    """The same values in a type with integer and fractional bits both ≥ 0."""
    return FixedFormat(fmt.k, max(fmt.i, 0), max(fmt.f, 0), fmt.rounding, fmt.overflow)


def holding(*formats: FixedFormat, extra_f: int = 0) -> FixedFormat:
    """One normal type holding every format's values exactly, with ``extra_f`` more fractional bits."""
    # A signed type with i integer bits holds an unsigned one's values too (same maximum).
    k = max(fmt.k for fmt in formats)
    i = max(fmt.i for fmt in formats)
    f = max(fmt.f for fmt in formats) + extra_f
    return normal(FixedFormat(k, i, f))


def shifted_interval(iv: Interval, exponent: int) -> Interval:
    """iv · 2**exponent, exactly."""
    return Interval(iv.lo * 2.0**exponent, iv.hi * 2.0**exponent, iv.f - exponent)


def _code_types(layer, x: Interval, in_fmt: FixedFormat, types: dict) -> Interval | None:
    """Types of the input side; returns β's interval for ASQ (None for LSQ)."""
    iq = layer.iq
    e = iq.exponent()
    if not layer.adaptive:
        types["code_wide"] = holding(in_fmt, format_of(shifted_interval(Interval.of_format(in_fmt), -e)))
        return None
    constants = iq.adapter_constants()
    total = x.reshape((-1,)).sum(axis=0)  # one β per sample, from every input element
    types["sum"] = normal(format_of(total))
    if iq.adapter_hidden:
        pre = total * Interval.of_constants(constants["a1"]) + Interval.of_constants(constants["d1"])
        types["hidden"] = normal(format_of(pre))
        z = (pre.relu() * Interval.of_constants(constants["a2"])).sum(axis=0) + Interval.of_constants(constants["d2"])
    else:
        z = total * Interval.of_constants(constants["a1"]) + Interval.of_constants(constants["d1"])
    types["z"] = normal(format_of(z))
    types["beta"] = FixedFormat(0, BETA_INTEGER_BITS, iq.beta_bits, "RND", "SAT")
    types["adapter"] = constant_format(np.concatenate([np.ravel(v) for v in constants.values()]))
    table = iq.reciprocal_table()
    types["table"] = constant_format(table)
    product = Interval.of_format(in_fmt) * Interval.of_constants(table).covering()
    types["product"] = normal(format_of(product))
    types["code_wide"] = holding(types["product"], format_of(shifted_interval(product, -e)))
    return Interval(BETA_MIN, 2.0**BETA_INTEGER_BITS - 2.0**-iq.beta_bits, iq.beta_bits)


def _weight_types(layer, codes_iv: Interval, types: dict) -> None:
    if layer.weight_kind == "lsq":
        types["weight"] = constant_format(layer.kernel_units())
        return
    codes = layer.kq.codes(layer.kernel.numpy())
    types["weight"] = constant_format(codes)
    c = layer.kq.sqrt_half
    types["sqrt_half"] = constant_format(np.array([c]))
    types["xc"] = normal(format_of(codes_iv * Interval.of_constants(c)))
    shift, _ = level_shift_and_odd(codes[codes != 0], layer.weight_kind)
    types["term"] = holding(types["code"], types["xc"], extra_f=int(shift.max(initial=0)))


def asq_post_types(layer, x: Interval) -> tuple[dict, Interval]:
    """Every type of the layer's firmware and the interval of its (pre-activation) output."""
    in_fmt = normal(format_of(x))
    code = layer.iq.code_format()
    types = {"in": in_fmt, "code": code}
    beta = _code_types(layer, x, in_fmt, types)
    codes_iv = Interval(float(layer.iq.q_n), float(layer.iq.q_p), 0)
    _weight_types(layer, codes_iv, types)
    acc = layer.accumulator_interval()
    types["accum"] = normal(format_of(acc))
    scaled = acc if beta is None else acc * beta
    if beta is not None:
        types["rescaled"] = normal(format_of(scaled))
    exponent = layer.output_exponent()
    out = shifted_interval(scaled, exponent)
    types["out_wide"] = holding(types["rescaled" if beta is not None else "accum"], format_of(out))
    bias = layer.quantized_bias()
    types["bias"] = constant_format(bias)
    if layer.use_bias:
        out = out + Interval.of_constants(bias)
    types["result"] = format_of(out)
    return types, out


def _check_float64_exact(layer, types: dict) -> None:
    widest = max(fmt.width for fmt in types.values())
    if widest > FLOAT64_MANTISSA_BITS:
        raise UnsupportedLayerError(
            f"{layer.name}: an intermediate needs {widest} bits, more than float64 holds exactly, so Keras "
            "could not match the firmware; use fewer bits (inputs, beta_bits, reciprocal_bits) or fewer inputs"
        )


def _output_shape(layer) -> tuple[int, ...]:
    return tuple(int(d) for d in layer.output.shape[1:])


@rule(ASQDense, ASQConv1D, ASQConv2D)
def asq_post_rule(layer, intervals):
    require_input(layer, intervals)
    x = intervals[0]
    types, out = asq_post_types(layer, x)
    # Per output channel; a convolution's positions all share the bounds.
    out = out.broadcast_to(_output_shape(layer))
    _check_float64_exact(layer, types)
    kernel_values = layer.kernel_units() * 2.0**layer.kq.scale_exponent()
    kernel = WeightTable(kernel_values, minimal_format_per_element(kernel_values))
    # Not under "kernel": hgq_chip.estimate models a kernel as a quantizer cast plus constant
    # multiplications, which is not this layer's arithmetic (codes, shifts, rescale).
    record = LayerRecord(layer.name, type(layer).__name__, out, [HLSLayerTypes(layer.name, types)],
                         {"quantized_kernel": kernel})
    if layer.use_bias:
        bias = layer.quantized_bias()
        record.weights["bias"] = WeightTable(bias, minimal_format_per_element(bias))
    record.accum = types["accum"]
    record.ebops = layer.ebops_exact()
    record.tables.update(_firmware_tables(layer))
    record.estimate_ops = asq_post_operations(_estimate_facts(layer, x, types))
    # Keras does the exact steps in float64 and casts the result to the input's dtype.
    record.float_values.append(FloatValues("result", interval_bits(out)))
    if layer.activation.__name__ == "relu":
        record.output = out.relu()
        record.hls_layers.append(HLSLayerTypes(f"{layer.name}_relu", {"result": format_of(record.output)}))
        record.estimate_ops.append(relu_op(record.output))
    return record


def _firmware_tables(layer) -> dict:
    """The constants the firmware holds (the handler renders them): ``weights`` (codes for POT/POST,
    units for LSQ; a conv kernel as the matrix of one patch, rows in patch order), ``bias``, the
    input code's and the output's shifts, and for ASQ the adapter's constants and the reciprocal table."""
    weights = layer.kq.codes(layer.kernel.numpy()) if layer.weight_kind != "lsq" else layer.kernel_units()
    tables = {"weights": weights.reshape(-1, weights.shape[-1]).astype(np.float64), "bias": layer.quantized_bias(),
              "code_shift": np.asarray(layer.iq.exponent()), "out_shift": np.asarray(layer.output_exponent())}
    if layer.adaptive:
        constants = layer.iq.adapter_constants()
        tables["adapter"] = np.concatenate([np.ravel(v) for v in constants.values()])
        tables["reciprocal"] = layer.iq.reciprocal_table()
    return tables


def _estimate_facts(layer, x: Interval, types: dict) -> dict:
    """The numbers hgq_chip.estimate prices this layer's firmware with (conversion/asq_post_ops.py)."""
    n_out = layer.n_out_channels
    facts = {"types": types, "code_source": code_source_interval(x, types, layer.iq.exponent()),
             "n_elements": layer.n_input_elements(), "positions": layer.n_output_elements() // n_out,
             "n_channels": int(layer.kernel.shape[-2]), "bias": layer.quantized_bias()}
    if layer.weight_kind == "lsq":
        facts["kernel"] = layer.kernel_units().reshape(-1, n_out)
    else:
        codes = layer.kq.codes(layer.kernel.numpy()).reshape(-1, n_out)
        facts["kernel"], facts["uses_c"] = shift_add_kernel(codes, layer.weight_kind, level_shift_and_odd)
        facts["sqrt_half"] = layer.kq.sqrt_half
    if layer.adaptive:
        constants = layer.iq.adapter_constants()
        facts["adapter"] = {name: np.atleast_1d(value) for name, value in constants.items()}
    return facts


def _conv_sizes(layer) -> dict:
    """The firmware's view of a 'valid' channels_last convolution; 1D as height 1."""
    one_dimensional = len(layer.kernel_size) == 1
    in_shape, out_shape = layer.input_feature_shape, layer.output_feature_shape
    pad = (lambda dims: (1, *dims)) if one_dimensional else (lambda dims: tuple(dims))
    (in_h, in_w), (out_h, out_w) = pad(in_shape[:-1]), pad(out_shape[:-1])
    (filt_h, filt_w), (stride_h, stride_w) = pad(layer.kernel_size), pad(layer.strides)
    return {"one_dimensional": one_dimensional, "in_height": in_h, "in_width": in_w, "n_chan": int(in_shape[-1]),
            "filt_height": filt_h, "filt_width": filt_w, "stride_height": stride_h, "stride_width": stride_w,
            "out_height": out_h, "out_width": out_w}


@handler(ASQDense, ASQConv1D, ASQConv2D)
def handle_asq_post(layer, in_tensors, out_tensors):
    in_tensor, out_tensor = in_tensors[0], out_tensors[0]
    relu = layer.activation.__name__ == "relu"
    dense_out = f"{out_tensor.name}_{layer.name}_linear" if relu else out_tensor.name
    iq, kq = layer.iq, layer.kq
    log_weights = layer.weight_kind != "lsq"
    tables = record_of_layer(layer).tables
    weights = tables["weights"]
    n_in, n_out = weights.shape
    is_conv = isinstance(layer, (ASQConv1D, ASQConv2D))
    config = layer_dict(
        layer.name, [in_tensor.name], [dense_out], class_name=HLS_CONV_CLASS_NAME if is_conv else HLS_CLASS_NAME,
        **(_conv_sizes(layer) if is_conv else {}),
        n_in=int(n_in), n_out=int(n_out), weight_data=weights, bias_data=tables["bias"],
        adaptive=layer.adaptive, n_hidden=int(getattr(iq, "adapter_hidden", 0)),
        code_shift=int(tables["code_shift"]), out_shift=int(tables["out_shift"]),
        sqrt2_levels=layer.weight_kind == "post", weight_kind="asq_log_weights" if log_weights else "asq_uniform_weights",
        beta_min_code=int(iq.beta_code_range[0]) if layer.adaptive else 0,
        constants={**({"beta_min": BETA_MIN} if layer.adaptive else {}),
                   **({"sqrt_half": float(kq.sqrt_half)} if log_weights else {})},
        declared_types=list(declared_types(layer.adaptive, log_weights, int(getattr(iq, "adapter_hidden", 0)))),
    )
    if layer.adaptive:
        config["adapter_data"] = tables["adapter"]
        config["table_data"] = tables["reciprocal"]
    if not relu:
        return (config,)
    return (config, layer_dict(f"{layer.name}_relu", [dense_out], [out_tensor.name], class_name="Activation", activation="relu"))


ASQ_STREAM = io_types_option(("io_parallel",), IO_STREAM_ADVICE)
limits(ASQDense, options=[ASQ_STREAM])
limits(ASQConv1D, options=[ASQ_STREAM, Option("padding", attr("padding"), lambda v: v == "valid",
                                              "use padding='valid' (pad with keras.layers.ZeroPadding1D before the layer)")])
limits(ASQConv2D, options=[ASQ_STREAM, Option("padding", attr("padding"), lambda v: v == "valid",
                                              "use padding='valid' (pad with keras.layers.ZeroPadding2D before the layer)")])


@trace(ASQDense, ASQConv1D, ASQConv2D)
def refuse_trace(layer, record, inputs):
    """No RTL trace: our shift-and-add template (``firmware_templates/nnet_asq_post.h``: an
    adaptive input scale per sample, level tables, shifted partial sums) is not replayed on
    da4ml's arrays. Raises UnsupportedLayerError naming the layer (``convert`` still takes it)."""
    base = next(cls.__name__ for cls in type(layer).__mro__ if cls in (ASQDense, ASQConv1D, ASQConv2D))
    plain = {"ASQDense": "HDense (or ADense)", "ASQConv1D": "HConv1D (or AConv1D)", "ASQConv2D": "HConv2D (or AConv2D)"}
    raise UnsupportedLayerError(
        f"layer {layer.name!r} ({type(layer).__name__}): its shift-and-add ASQ/POST template (adaptive input "
        f"scale, level tables) has no RTL trace; use {plain[base]} for RTL, or `hgq_chip convert` for the HLS project")
