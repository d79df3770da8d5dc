"""HSoftmax's own HLS template, declared as data (``hls_custom.CustomHLSLayer``).

The C++ lives in ``firmware_templates/nnet_hgq_softmax.h``; the tables are weight variables
whose contents the precision rule (``rules/softmax.py``) computes with the Keras layer's own ops,
and every type it uses is one that rule derived and put into the hls4ml configuration.
``hls_handlers.register_handlers`` registers :data:`SPEC` with hls4ml (``hls_custom.register_custom``).
"""

from __future__ import annotations

from .family import custom_template
from .hls_custom import CustomHLSLayer, Weight

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

# The one io_stream refusal of HSoftmax: the layer limit (rules/softmax.py) and the IR layer's check.
IO_STREAM_ADVICE = ("HSoftmax firmware (nnet_hgq_softmax.h) exists for io_parallel only; convert with "
                    "io_type='io_parallel', or end the io_stream model before the softmax")

SPEC = custom_template(CustomHLSLayer(
    class_name=HLS_CLASS_NAME, header=HEADER_NAME, config_template=CONFIG_TEMPLATE,
    function_template=FUNCTION_TEMPLATE, io_advice=IO_STREAM_ADVICE, attributes=("n_in", "n_outer"),
    weights=(Weight("exp_table", "exp_table{index}"), Weight("inv_table", "inv_table{index}")),
    declared_types=lambda attributes: DECLARED_TYPES,
    config_params=lambda node, params: {
        "stable": "true" if node.get_attr("stable") else "false",
        "exp_table_size": len(node.get_attr("exp_table_data")),
        "inv_table_size": len(node.get_attr("inv_table_data")),
    },
))
