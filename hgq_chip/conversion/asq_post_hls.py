"""hls4ml side of ASQDense and ASQConv1D/2D: IR layers, their C++ templates and header, registered through
hls4ml's public extension API (``register_layer``, ``Backend.register_template``,
``Backend.register_source``), as hls4ml's own extension test does.

The C++ lives in ``firmware_templates/nnet_asq_post.h`` (found by ``templates.template_path``: in
the installed package, else the source checkout); every type it uses is one the
precision rule (``rules/asq_post.py``) derived and put into the hls4ml configuration.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import HGQChipError, UnsupportedConfigurationError
from .templates import template_path

HEADER_NAME = "nnet_asq_post.h"
HLS_CLASS_NAME = "AsqPostDense"
HLS_CONV_CLASS_NAME = "AsqPostConv"
# Sizes a convolution adds to the config (a dense layer keeps the defaults of 1).
CONV_SIZES = ("in_height", "in_width", "n_chan", "filt_height", "filt_width", "stride_height", "stride_width",
              "out_height", "out_width")
BACKENDS = ("Vivado", "Vitis")
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

FUNCTION_TEMPLATE = "nnet::{function}<{input_t}, {output_t}, {config}>({input}, {output}, {w}, {b});"
ADAPTIVE_FUNCTION_TEMPLATE = (
    "nnet::{function}_adaptive<{input_t}, {output_t}, {config}>({input}, {output}, {w}, {b}, {adapter}, {table});"
)


def header_path(name: str = HEADER_NAME) -> Path:
    """The template header ``name`` (default ``nnet_asq_post.h``; HGQChipError when the installation lacks it)."""
    return template_path(name)


def declared_types(adaptive: bool, log_weights: bool, hidden: int) -> tuple[str, ...]:
    types = COMMON_TYPES + (LOG_TYPES if log_weights else ())
    if adaptive:
        types += tuple(t for t in ADAPTIVE_TYPES if t != "hidden" or hidden)
    return types


_registered = False


def register_asq_post_hls() -> None:
    """Register the IR layer, templates and header with hls4ml (once per process)."""
    global _registered
    if _registered:
        return
    import hls4ml
    from hls4ml.backends.template import FunctionCallTemplate, LayerConfigTemplate
    from hls4ml.model.attributes import Attribute, TypeAttribute, WeightAttribute
    from hls4ml.model.layers import Layer, register_layer
    from hls4ml.model.types import NamedType

    class AsqPostDense(Layer):
        _expected_attributes = [
            Attribute("n_in"),
            Attribute("n_out"),
            WeightAttribute("weight"),
            WeightAttribute("bias"),
            TypeAttribute("weight"),
            TypeAttribute("bias"),
            TypeAttribute("accum"),
        ]

        def initialize(self):
            if self.model.config.get_config_value("IOType") != "io_parallel":
                raise UnsupportedConfigurationError(
                    f"{self.name}: {IO_STREAM_ADVICE}"
                )
            self._add_output()
            self.add_weights_variable(name="weight", var_name="w{index}", data="weight")
            self.add_weights_variable(name="bias", var_name="b{index}", data="bias")
            if self.attributes["adaptive"]:
                self.add_weights_variable(name="adapter", var_name="a{index}", data="adapter")
                self.add_weights_variable(name="table", var_name="t{index}", data="table")
            known = self.model.config.layer_name_precision
            for key in self.attributes["declared_types"]:
                if f"{self.name.lower()}_{key}" not in known:
                    raise HGQChipError(f"internal error: no derived type {key!r} for {self.name}")
                precision, _ = self.model.config.get_precision(self, key)
                self.set_attr(f"{key}_t", NamedType(f"{self.name.lower()}_{key}_t", precision))

        def _add_output(self):
            self.add_output_variable([self.attributes["n_out"]])

    class AsqPostConv(AsqPostDense):
        def _add_output(self):
            spatial = [self.attributes["out_width"]]
            if not self.attributes["one_dimensional"]:
                spatial.insert(0, self.attributes["out_height"])
            self.add_output_variable([*spatial, self.attributes["n_out"]])

    class AsqPostDenseConfigTemplate(LayerConfigTemplate):
        def __init__(self):
            super().__init__((AsqPostDense, AsqPostConv))

        def format(self, node):
            params = self._default_config_params(node)
            sizes = CONV_SIZES if node.class_name == HLS_CONV_CLASS_NAME else ()
            params["size_lines"] = "\n".join(f"    static const unsigned {name} = {node.get_attr(name)};" for name in sizes)
            params["sqrt2_levels"] = "true" if node.get_attr("sqrt2_levels") else "false"
            # Exact dyadic constants: repr round-trips the double, so C++ reads the same value.
            params["constant_lines"] = "\n".join(
                f"    static constexpr double {name} = {value!r};" for name, value in node.get_attr("constants").items()
            )
            # adapter_t/table_t are the types of the adapter/table weight variables.
            keys = list(node.get_attr("declared_types")) + (["adapter", "table"] if node.get_attr("adaptive") else [])
            params["typedefs"] = "\n".join(f"    typedef {node.get_attr(key + '_t').name} {key}_t;" for key in keys)
            return CONFIG_TEMPLATE.format(**params)

    class AsqPostDenseFunctionTemplate(FunctionCallTemplate):
        def __init__(self):
            super().__init__((AsqPostDense, AsqPostConv), include_header=[f"nnet_utils/{HEADER_NAME}"])

        def format(self, node):
            params = self._default_function_params(node)
            params["function"] = "asq_post_conv" if node.class_name == HLS_CONV_CLASS_NAME else "asq_post_dense"
            params["w"] = node.get_weights("weight").name
            params["b"] = node.get_weights("bias").name
            if node.get_attr("adaptive"):
                params["adapter"] = node.get_weights("adapter").name
                params["table"] = node.get_weights("table").name
                return ADAPTIVE_FUNCTION_TEMPLATE.format(**params)
            return FUNCTION_TEMPLATE.format(**params)

    header = header_path()
    register_layer(HLS_CLASS_NAME, AsqPostDense)
    register_layer(HLS_CONV_CLASS_NAME, AsqPostConv)
    for name in BACKENDS:
        backend = hls4ml.backends.get_backend(name)
        backend.register_template(AsqPostDenseConfigTemplate)
        backend.register_template(AsqPostDenseFunctionTemplate)
        backend.register_source(header)
    _registered = True
