"""HLayerNormalization's family: precision rule, hls4ml handler and IR layer, limits, RTL trace
(firmware: ``firmware_templates/nnet_hgq_layernorm.h``; the computation: ``layers/layernorm.py``).

Types, per row of n elements (interval arithmetic; only the declared casts round):

- ``data_T``: the input quantizer stage's result (the covering format of ``iq``);
- ``sum``: n times x's range; ``factor``: the quantized 1/n; ``mean``: sum x factor, exact;
- ``centered``: x - mean, exact; ``diff``: ``diff_q``'s format (the cast);
- ``sq_sum``: the sum of the n squares d*d, exact; ``var``: ``var_q``'s format (the cast; the rsqrt
  table's index, whose entries hold 1/sqrt(factor x var + epsilon));
- ``rsqrt_table``: the narrowest type holding every table entry; ``norm_prod``: d x r, exact;
  ``norm``: ``norm_q``'s format (the cast); ``gamma``/``beta``: the quantized weights' types;
- ``affine``: z x gamma + beta, exact; ``result``: ``oq``'s format (the cast).

The table's entries come from the Keras layer's own ops (``HLayerNormalization.rsqrt_table``)
on every value of ``var``, ordered by the index's raw bits. io_stream is refused (the template
reads a whole row at once; io_parallel only).
"""

from __future__ import annotations

import numpy as np

from ...errors import UnsupportedLayerError
from ...fixed.format import FixedFormat
from ...fixed.interval import Interval
from ...layers.activation import representable_values
from ...layers.layernorm import HLayerNormalization
from ..family import custom_template, handler, limits, rule, trace
from ..ops import Add, Op, Product, Table
from ..hls_custom import CustomHLSLayer, Weight
from ..option import io_types_option
from ..records import FloatValues, HLSLayerTypes, LayerRecord, format_of, interval_bits, is_uniform, sum_bits
from . import _trace
from ._stages import constant_format, layer_dict, quantized_input, quantizer_name, quantizer_stage, record_of_layer
from .softmax import _cast, _kif, check_table_index, in_raw_bit_order

HEADER_NAME = "nnet_hgq_layernorm.h"
HLS_CLASS_NAME = "HgqLayerNorm"
# Types the template declares besides the result and the three weight types.
DECLARED_TYPES = ("sum", "factor", "mean", "centered", "diff", "sq_sum", "var", "norm_prod", "norm",
                  "affine")
WEIGHTS = ("rsqrt_table", "gamma", "beta")
IO_STREAM_ADVICE = ("HLayerNormalization firmware (nnet_hgq_layernorm.h) reads a whole row at once and exists for "
                    "io_parallel only; convert with io_type='io_parallel'")


def _one_format(layer, quantizer) -> FixedFormat:
    """The single format of a per-layer cast quantizer, with its modes; UnsupportedLayerError for
    per-element formats or 0 bits."""
    fmt = quantizer.fixed_format()
    if not is_uniform(fmt):
        raise UnsupportedLayerError(f"{layer.name}: quantizer {quantizer.name!r} needs one format for the whole "
                                    "tensor; give it granularity='per-layer'")
    one = fmt[(0,) * fmt.k.ndim]
    if one.width <= 0:
        raise UnsupportedLayerError(
            f"{layer.name}: quantizer {quantizer.name!r} of HLayerNormalization has 0 bits (it outputs only 0); give "
            "it more fractional bits (a higher init_f or a lower beta) and calibrate again")
    return one


def _weights(layer):
    """(gamma, beta) as the firmware holds them: quantized (n,) float64; ones/zeros when absent."""
    n = layer.element_shape[-1]
    gamma = layer.gq.quantized(layer.ln_gamma.numpy()) if layer.scale else np.ones(n)
    beta = layer.bq.quantized(layer.ln_beta.numpy()) if layer.center else np.zeros(n)
    return np.asarray(gamma, np.float64), np.asarray(beta, np.float64)


def layernorm_steps(layer, x: Interval) -> dict:
    """Every type, the table (raw-bit order and by value), the weights and the intervals."""
    n = int(layer.element_shape[-1])
    if n == 1:
        raise UnsupportedLayerError(
            f"{layer.name}: HLayerNormalization over an axis of 1 element outputs beta alone (x - mean is 0); "
            "remove the layer (add a constant bias in the next layer instead) or normalize a longer axis")
    xc = x.covering()
    factor = Interval.of_constants(layer.factor)
    total = Interval(xc.lo * n, xc.hi * n, xc.f)
    mean = total * factor
    centered = xc + (-mean)
    diff_fmt = _one_format(layer, layer.diff_q)
    d = Interval.of_format(diff_fmt)
    square_max = float(max(d.lo**2, d.hi**2))
    sq_sum = Interval(0.0, square_max * n, 2 * int(d.f))
    var_fmt = _one_format(layer, layer.var_q)
    check_table_index(layer, "rsqrt", var_fmt, "Narrow variance_quantizer: lower its init_f, raise beta, or "
                      "calibrate on data without outliers")
    entries = layer.rsqrt_table(representable_values(var_fmt))
    r = Interval.of_constants(entries).covering()
    norm_prod = d * r
    norm_fmt = _one_format(layer, layer.norm_q)
    z = Interval.of_format(norm_fmt)
    gamma, beta = _weights(layer)
    affine = z * Interval.of_constants(gamma) if layer.scale else z.broadcast_to((n,))
    if layer.center:
        affine = affine + Interval.of_constants(beta)
    types = {
        "result": _one_format(layer, layer.oq), "sum": format_of(total), "factor": format_of(factor),
        "mean": format_of(mean), "centered": format_of(centered), "diff": diff_fmt, "sq_sum": format_of(sq_sum),
        "var": var_fmt, "rsqrt_table": format_of(r), "norm_prod": format_of(norm_prod),
        "norm": norm_fmt, "gamma": constant_format(gamma), "beta": constant_format(beta), "affine": format_of(affine),
    }
    return {"types": types, "n": n, "x": xc, "total": total, "mean": mean, "centered": centered, "sq_sum": sq_sum,
            "norm_prod": norm_prod, "affine": affine, "gamma": gamma, "beta": beta,
            "rsqrt": (representable_values(var_fmt), entries), "rsqrt_table": in_raw_bit_order(var_fmt, entries)}


def layernorm_float_values(layer, steps: dict) -> list[FloatValues]:
    """What Keras computes in floats besides the quantizer outputs, with the bits each needs:
    the row sums (any order of additions), the products by 1/n, x - mean, d x r, z x gamma + beta."""
    n, xc, d = steps["n"], steps["x"], Interval.of_format(steps["types"]["diff"])
    z = Interval.of_format(steps["types"]["norm"])
    magnitude_z = max(abs(float(z.lo)), abs(float(z.hi)))
    affine_terms = magnitude_z * np.abs(steps["gamma"] if layer.scale else 1.0) + np.abs(steps["beta"])
    return [
        FloatValues("row sum of x (any order)", sum_bits(n * max(abs(float(xc.lo)), abs(float(xc.hi))), xc.f)),
        FloatValues("mean (row sum x quantized 1/n)", interval_bits(steps["mean"])),
        FloatValues("x - mean", interval_bits(steps["centered"])),
        FloatValues("row sum of squares (any order)", sum_bits(float(steps["sq_sum"].hi), 2 * int(d.f))),
        FloatValues("products (x - mean) x rsqrt", interval_bits(steps["norm_prod"])),
        FloatValues("z x gamma + beta", sum_bits(affine_terms, steps["affine"].covering().f)),
    ]


def layernorm_operations(layer, steps: dict) -> list[Op]:
    """The firmware's operations for the estimate (facts.py), per row: the sum, its product by 1/n,
    x - mean, the diff cast, n squares, their sum, the sum-of-squares cast, one table
    read, n products d x r, the norm cast, n products by gamma, n additions of beta, the output cast."""
    t, n = steps["types"], steps["n"]
    elements = int(np.prod(layer.element_shape))
    rows = elements // n
    ops = [Add(out=_kif(t["sum"], rows), n_inputs=n),
           Product(a_width=t["sum"].width, b_width=t["factor"].width, out=_kif(t["mean"], rows)),
           Add(out=_kif(t["centered"], elements), n_inputs=2),
           _cast("diff", steps["centered"], t["diff"], elements),
           Product(a_width=t["diff"].width, b_width=t["diff"].width,
                   out=_kif(FixedFormat(0, 2 * (t["diff"].k + t["diff"].i), 2 * t["diff"].f), elements)),
           Add(out=_kif(t["sq_sum"], rows), n_inputs=n),
           _cast("variance", steps["sq_sum"], t["var"], rows),
           Table(index_width=t["var"].width, out_width=t["rsqrt_table"].width, elements=rows),
           Product(a_width=t["diff"].width, b_width=t["rsqrt_table"].width, out=_kif(t["norm_prod"], elements)),
           _cast("norm", steps["norm_prod"], t["norm"], elements)]
    if layer.scale:
        ops.append(Product(a_width=t["norm"].width, b_width=t["gamma"].width, out=_kif(t["affine"], elements)))
    if layer.center:
        ops.append(Add(out=_kif(t["affine"], elements), n_inputs=2))
    ops.append(_cast("output", steps["affine"].covering(), t["result"], elements))
    return ops


@rule(HLayerNormalization)
def hlayernorm_rule(layer, intervals):
    stage, x = quantizer_stage(quantizer_name(layer, layer.iq), layer.iq, layer.input.shape[1:])
    steps = layernorm_steps(layer, x)
    types = steps["types"]
    record = LayerRecord(layer.name, type(layer).__name__, Interval.of_format(types["result"]).broadcast_to(x.lo.shape),
                         [stage, HLSLayerTypes(layer.name, types)])
    record.ebops = layer.ebops_exact()
    record.tables.update(rsqrt_table=steps["rsqrt_table"], rsqrt=steps["rsqrt"], gamma=steps["gamma"],
                         beta=steps["beta"])
    record.estimate_ops = layernorm_operations(layer, steps)
    record.float_values.extend(layernorm_float_values(layer, steps))
    return record


@handler(HLayerNormalization)
def handle_hlayernorm(layer, in_tensors, out_tensors):
    in_tensor, out_tensor = in_tensors[0], out_tensors[0]
    q_configs, q_name = quantized_input(layer, in_tensor)
    record = record_of_layer(layer)
    tables, factor_fmt = record.tables, record.hls_layers[-1].types["factor"]
    n = int(layer.element_shape[-1])
    config = layer_dict(layer.name, [q_name], [out_tensor.name], class_name=HLS_CLASS_NAME, n_in=n,
                        n_outer=int(np.prod(layer.element_shape)) // n, scale=layer.scale, center=layer.center,
                        factor_raw=int(round(layer.factor * 2.0**factor_fmt.f)), output_shape=list(layer.element_shape),
                        rsqrt_table_data=tables["rsqrt_table"], gamma_data=tables["gamma"], beta_data=tables["beta"])
    return (*q_configs, config)


limits(HLayerNormalization, options=[io_types_option(("io_parallel",), IO_STREAM_ADVICE)])


CONFIG_TEMPLATE = """struct config{index} : nnet::hgq_layernorm_config {{
    static const unsigned n_in = {n_in};
    static const unsigned n_outer = {n_outer};
    static const bool scale = {scale};
    static const bool center = {center};
    static const unsigned table_size = {table_size};
    static const unsigned long long factor_raw = {factor_raw}ULL;
{typedefs}
}};
"""

FUNCTION_TEMPLATE = ("nnet::hgq_layernorm<{input_t}, {output_t}, {config}>({input}, {output}, {rsqrt_table}, "
                     "{gamma}, {beta});")

SPEC = custom_template(CustomHLSLayer(
    class_name=HLS_CLASS_NAME, header=HEADER_NAME, config_template=CONFIG_TEMPLATE,
    function_template=FUNCTION_TEMPLATE, io_advice=IO_STREAM_ADVICE, attributes=("n_in", "n_outer"),
    weights=tuple(Weight(name, f"{name}{{index}}") for name in WEIGHTS),
    declared_types=lambda attributes: DECLARED_TYPES,
    config_params=lambda node, params: {
        "scale": "true" if node.get_attr("scale") else "false",
        "center": "true" if node.get_attr("center") else "false",
        "table_size": len(node.get_attr("rsqrt_table_data")),
    },
))


def layernorm_rows(x, types: dict, tables: dict, factor: float, scale: bool, center: bool):
    """The layer normalization of each row of ``x`` (``(rows, n)``) step for step as
    ``nnet_hgq_layernorm.h`` computes it, with the record's ``types`` and ``tables``."""
    n = x.shape[-1]
    cast = _trace.cast
    mean = cast(cast(_trace.total([x[:, j] for j in range(n)]), types["sum"]) * factor, types["mean"])
    d = cast(cast(x - mean[:, None], types["centered"]), types["diff"])
    squares = cast(_trace.total([d[:, j] * d[:, j] for j in range(n)]), types["sq_sum"])
    v = cast(squares, types["var"])
    r = _trace.lookup(v, *tables["rsqrt"], types["rsqrt_table"])
    z = cast(cast(d * r[:, None], types["norm_prod"]), types["norm"])
    y = z * tables["gamma"] if scale else z
    if center:
        y = y + tables["beta"]
    return cast(cast(y, types["affine"]), types["result"])


@trace(HLayerNormalization)
def trace_hlayernorm(layer, record, inputs):
    """The input quantizer stage, then ``layernorm_rows`` over the last axis."""
    x = _trace.quantized_input(layer, record, inputs[0])
    shape = tuple(x.shape)
    y = layernorm_rows(x.reshape(-1, shape[-1]), _trace.stage_types(record)[layer.name], record.tables,
                       layer.factor, layer.scale, layer.center)
    return y.reshape(shape)
