"""hls4ml side of HSoftmax: the IR layer, its C++ templates and header, registered through hls4ml's
public extension API (``register_layer``, ``Backend.register_template``, ``Backend.register_source``),
as ``asq_post_hls.py`` does for the ASQ/POST layers.

The C++ lives in ``firmware_templates/nnet_hgq_softmax.h``; the tables are weight variables
whose contents the precision rule (``rules/softmax.py``) computes with the Keras layer's own ops,
and every type it uses is one that rule derived and put into the hls4ml configuration.
"""

from __future__ import annotations

from ..errors import HGQChipError, UnsupportedConfigurationError
from .asq_post_hls import BACKENDS, header_path

HEADER_NAME = "nnet_hgq_softmax.h"
HLS_CLASS_NAME = "HgqSoftmax"
# Types the template declares besides the result and the two table types.
DECLARED_TYPES = ("diff", "sum", "inv_in", "product")

CONFIG_TEMPLATE = """struct config{index} : nnet::hgq_softmax_config {{
    static const unsigned n_in = {n_in};
    static const unsigned n_outer = {n_outer};
    static const bool stable = {stable};
    static const unsigned exp_table_size = {exp_table_size};
    static const unsigned inv_table_size = {inv_table_size};
{typedefs}
}};
"""

FUNCTION_TEMPLATE = "nnet::hgq_softmax<{input_t}, {output_t}, {config}>({input}, {output}, {exp_table}, {inv_table});"

# The one io_stream refusal of HSoftmax: the layer limit (rules/softmax.py) and this layer's check.
IO_STREAM_ADVICE = ("HSoftmax firmware (nnet_hgq_softmax.h) exists for io_parallel only; convert with "
                    "io_type='io_parallel', or end the io_stream model before the softmax")

_registered = False


def register_softmax_hls() -> None:
    """Register the IR layer, templates and header with hls4ml (once per process)."""
    global _registered
    if _registered:
        return
    import hls4ml
    from hls4ml.backends.template import FunctionCallTemplate, LayerConfigTemplate
    from hls4ml.model.attributes import Attribute, TypeAttribute, WeightAttribute
    from hls4ml.model.layers import Layer, register_layer
    from hls4ml.model.types import NamedType

    class HgqSoftmax(Layer):
        _expected_attributes = [
            Attribute("n_in"),
            Attribute("n_outer"),
            WeightAttribute("exp_table"),
            WeightAttribute("inv_table"),
            TypeAttribute("exp_table"),
            TypeAttribute("inv_table"),
        ]

        def initialize(self):
            if self.model.config.get_config_value("IOType") != "io_parallel":
                raise UnsupportedConfigurationError(f"{self.name}: {IO_STREAM_ADVICE}")
            self.add_output_variable(list(self.attributes["output_shape"]))
            self.add_weights_variable(name="exp_table", var_name="exp_table{index}", data="exp_table")
            self.add_weights_variable(name="inv_table", var_name="inv_table{index}", data="inv_table")
            known = self.model.config.layer_name_precision
            for key in DECLARED_TYPES:
                if f"{self.name.lower()}_{key}" not in known:
                    raise HGQChipError(f"internal error: no derived type {key!r} for {self.name}")
                precision, _ = self.model.config.get_precision(self, key)
                self.set_attr(f"{key}_t", NamedType(f"{self.name.lower()}_{key}_t", precision))

    class HgqSoftmaxConfigTemplate(LayerConfigTemplate):
        def __init__(self):
            super().__init__(HgqSoftmax)

        def format(self, node):
            params = self._default_config_params(node)
            params["stable"] = "true" if node.get_attr("stable") else "false"
            params["exp_table_size"] = len(node.get_attr("exp_table_data"))
            params["inv_table_size"] = len(node.get_attr("inv_table_data"))
            keys = list(DECLARED_TYPES) + ["exp_table", "inv_table"]
            params["typedefs"] = "\n".join(f"    typedef {node.get_attr(key + '_t').name} {key}_t;" for key in keys)
            return CONFIG_TEMPLATE.format(**params)

    class HgqSoftmaxFunctionTemplate(FunctionCallTemplate):
        def __init__(self):
            super().__init__(HgqSoftmax, include_header=[f"nnet_utils/{HEADER_NAME}"])

        def format(self, node):
            params = self._default_function_params(node)
            params["exp_table"] = node.get_weights("exp_table").name
            params["inv_table"] = node.get_weights("inv_table").name
            return FUNCTION_TEMPLATE.format(**params)

    header = header_path(HEADER_NAME)
    register_layer(HLS_CLASS_NAME, HgqSoftmax)
    for name in BACKENDS:
        backend = hls4ml.backends.get_backend(name)
        backend.register_template(HgqSoftmaxConfigTemplate)
        backend.register_template(HgqSoftmaxFunctionTemplate)
        backend.register_source(header)
    _registered = True
