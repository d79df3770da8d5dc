"""ASQDense's and ASQConv1D/2D's own HLS templates, declared as data (``hls_custom.CustomHLSLayer``:
:data:`DENSE_SPEC`, :data:`CONV_SPEC`; ``hls_handlers.register_handlers`` registers them).

The C++ lives in ``firmware_templates/nnet_asq_post.h`` (found by ``templates.template_path``: in
the installed package, else the source checkout); every type it uses is one the
precision rule (``rules/asq_post.py``) derived and put into the hls4ml configuration.
"""

from __future__ import annotations

from pathlib import Path

from .family import custom_template
from .hls_custom import BACKENDS, CustomHLSLayer, Weight  # noqa: F401  (BACKENDS: re-exported)
from .templates import template_path

HEADER_NAME = "nnet_asq_post.h"
HLS_CLASS_NAME = "AsqPostDense"
HLS_CONV_CLASS_NAME = "AsqPostConv"
# Sizes a convolution adds to the config (a dense layer keeps the defaults of 1).
CONV_SIZES = ("in_height", "in_width", "n_chan", "filt_height", "filt_width", "stride_height", "stride_width",
              "out_height", "out_width")
# The one io_stream refusal of ASQ/POST layers: the layer limit (rules/asq_post.py) and the IR layer's check.
IO_STREAM_ADVICE = "ASQ/POST firmware exists for io_parallel only; convert with io_type='io_parallel'"

# Types every ASQ/POST layer declares (besides result/weight/bias/accum, which hls4ml handles itself).
COMMON_TYPES = ("in", "code", "code_wide", "out_wide")
LOG_TYPES = ("xc", "term", "sqrt_half")
ADAPTIVE_TYPES = ("sum", "z", "beta", "product", "rescaled", "hidden")

CONFIG_TEMPLATE = """struct config{index} : nnet::asq_post_config {{
    static const unsigned n_in = {n_in};
    static const unsigned n_out = {n_out};
    static const unsigned n_hidden = {n_hidden};
    static const int code_shift = {code_shift};
    static const int out_shift = {out_shift};
    static const bool sqrt2_levels = {sqrt2_levels};
    static const unsigned beta_min_code = {beta_min_code};
{size_lines}
{constant_lines}
    typedef nnet::{weight_kind} weight_kind;
    typedef {weight_t.name} weight_t;
    typedef {bias_t.name} bias_t;
    typedef {accum_t.name} accum_t;
{typedefs}
}};
"""

# {arguments}: the weight arrays, ", {adapter}, {table}" more for an adaptive (ASQ) input.
FUNCTION_TEMPLATE = "nnet::{function}<{input_t}, {output_t}, {config}>({input}, {output}, {weight}, {bias}{more});"


def header_path(name: str = HEADER_NAME) -> Path:
    """The template header ``name`` (default ``nnet_asq_post.h``; HGQChipError when the installation lacks it)."""
    return template_path(name)


def declared_types(adaptive: bool, log_weights: bool, hidden: int) -> tuple[str, ...]:
    types = COMMON_TYPES + (LOG_TYPES if log_weights else ())
    if adaptive:
        types += tuple(t for t in ADAPTIVE_TYPES if t != "hidden" or hidden)
    return types


def _config_params(node, params, sizes=()) -> dict:
    return {
        "size_lines": "\n".join(f"    static const unsigned {name} = {node.get_attr(name)};" for name in sizes),
        "sqrt2_levels": "true" if node.get_attr("sqrt2_levels") else "false",
        # Exact dyadic constants: repr round-trips the double, so C++ reads the same value.
        "constant_lines": "\n".join(f"    static constexpr double {name} = {value!r};"
                                    for name, value in node.get_attr("constants").items()),
    }


def _function_params(function: str):
    def params_of(node, params) -> dict:
        adaptive = node.get_attr("adaptive")
        return {"function": f"{function}_adaptive" if adaptive else function,
                "more": f", {params['adapter']}, {params['table']}" if adaptive else ""}

    return params_of


def _conv_output_shape(attributes) -> list:
    spatial = [attributes["out_width"]]
    if not attributes["one_dimensional"]:
        spatial.insert(0, attributes["out_height"])
    return [*spatial, attributes["n_out"]]


_COMMON = dict(
    header=HEADER_NAME, config_template=CONFIG_TEMPLATE, function_template=FUNCTION_TEMPLATE,
    io_advice=IO_STREAM_ADVICE, attributes=("n_in", "n_out"), weight_types=("accum",),
    weights=(Weight("weight", "w{index}", typedef=False), Weight("bias", "b{index}", typedef=False),
             Weight("adapter", "a{index}", when="adaptive"), Weight("table", "t{index}", when="adaptive")),
    declared_types=lambda attributes: tuple(attributes["declared_types"]),
)
DENSE_SPEC = custom_template(CustomHLSLayer(
    class_name=HLS_CLASS_NAME, output_shape=lambda attributes: [attributes["n_out"]],
    config_params=_config_params, function_params=_function_params("asq_post_dense"), **_COMMON))
CONV_SPEC = custom_template(CustomHLSLayer(
    class_name=HLS_CONV_CLASS_NAME, output_shape=_conv_output_shape,
    config_params=lambda node, params: _config_params(node, params, CONV_SIZES),
    function_params=_function_params("asq_post_conv"), **_COMMON))
