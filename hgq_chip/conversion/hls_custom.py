"""Our own HLS templates as data: one :class:`CustomHLSLayer` spec per hls4ml IR class, registered by one loop.

A family whose firmware is our own C++ (``firmware_templates/nnet_*.h``) declares a spec (the
IR class name, its attributes, weight variables, the types its rule derived, the config and
function-call template strings) and hands it to ``family.custom_template``.
:func:`register_custom` does the rest once for every spec, through hls4ml's public extension
API (``register_layer``, ``Backend.register_template``, ``Backend.register_source``, as
hls4ml's own extension test does): the IR class, the two templates on every backend of
:data:`BACKENDS`, the header, the io_type refusal (``io_types``/``io_advice``: the family's layer limit
quotes the same text) and the check that every declared type was
derived by the rule (else an internal HGQChipError).

The templates' format strings get hls4ml's default parameters (``index``, ``n_in``,
``input_t``, ``output_t``, ``config``, ``input``, ``output``, ``weight_t``...), the name of
every weight variable under its own key, ``typedefs`` (one ``typedef <name>_t <key>_t;`` line
per declared type and per weight marked ``typedef``) and what the spec's ``config_params`` /
``function_params`` add.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import HGQChipError, UnsupportedConfigurationError
from .templates import template_path

# The hls4ml backends our templates are registered with.
BACKENDS = ("Vivado", "Vitis")


@dataclass(frozen=True)
class Weight:
    """A weight variable of the IR layer: its data is the layer dict's ``<name>_data``, its C++
    array ``var_name`` (``{index}``: the layer's index). ``when``: the boolean attribute that
    must be set for the layer to have it (None: always). ``typedef``: the config declares its
    type as ``<name>_t``."""

    name: str
    var_name: str
    when: str | None = None
    typedef: bool = True


@dataclass(frozen=True)
class CustomHLSLayer:
    """One hls4ml IR class on our own template.

    ``class_name``: the IR class (the ``class_name`` of the handler's layer dict); ``header``:
    the template file in ``firmware_templates/``; ``attributes``: plain attributes the layer dict
    carries; ``weights``: its weight variables; ``weight_types``: types hls4ml declares itself
    (``weight``, ``bias``, ``accum``: TypeAttributes without a rule-derived declaration);
    ``declared_types``: ``fn(attributes) -> tuple of keys`` whose ``<layer>_<key>`` types the rule
    derived; ``output_shape``: ``fn(attributes) -> list`` (no batch axis); ``config_params`` /
    ``function_params``: ``fn(node, params) -> dict`` of extra template parameters;
    ``io_types``/``io_advice``: the io types the template exists for and what to do otherwise.
    """

    class_name: str
    header: str
    config_template: str
    function_template: str
    io_advice: str
    attributes: tuple[str, ...] = ()
    weights: tuple[Weight, ...] = ()
    weight_types: tuple[str, ...] = ()
    declared_types: Callable[[dict], tuple] = lambda attributes: ()
    output_shape: Callable[[dict], list] = lambda attributes: list(attributes["output_shape"])
    config_params: Callable = lambda node, params: {}
    function_params: Callable = lambda node, params: {}
    io_types: tuple[str, ...] = ("io_parallel",)


_registered: set[str] = set()


def register_custom(spec: CustomHLSLayer) -> None:
    """Register ``spec``'s IR class, templates and header with hls4ml (once per process and spec)."""
    if spec.class_name in _registered:
        return
    import hls4ml
    from hls4ml.backends.template import FunctionCallTemplate, LayerConfigTemplate
    from hls4ml.model.attributes import Attribute, TypeAttribute, WeightAttribute
    from hls4ml.model.layers import Layer, register_layer
    from hls4ml.model.types import NamedType

    def initialize(self):
        io_type = self.model.config.get_config_value("IOType")
        if io_type not in spec.io_types:
            raise UnsupportedConfigurationError(f"{self.name}: {spec.io_advice}")
        self.add_output_variable(spec.output_shape(self.attributes))
        for weight in _present_weights(spec, self.attributes):
            self.add_weights_variable(name=weight.name, var_name=weight.var_name, data=weight.name)
        known = self.model.config.layer_name_precision
        for key in spec.declared_types(self.attributes):
            if f"{self.name.lower()}_{key}" not in known:
                raise HGQChipError(f"internal error: no derived type {key!r} for {self.name}")
            precision, _ = self.model.config.get_precision(self, key)
            self.set_attr(f"{key}_t", NamedType(f"{self.name.lower()}_{key}_t", precision))

    expected = ([Attribute(name) for name in spec.attributes]
                + [WeightAttribute(w.name) for w in spec.weights if w.when is None]
                + [TypeAttribute(name) for name in (*spec.weight_types,
                                                    *(w.name for w in spec.weights if w.when is None))])
    layer_class = type(spec.class_name, (Layer,), {"_expected_attributes": expected, "initialize": initialize})

    def format_config(self, node):
        params = self._default_config_params(node)
        keys = [*spec.declared_types(node.attributes),
                *(w.name for w in _present_weights(spec, node.attributes) if w.typedef)]
        params["typedefs"] = "\n".join(f"    typedef {node.get_attr(key + '_t').name} {key}_t;" for key in keys)
        params.update(spec.config_params(node, params))
        return spec.config_template.format(**params)

    def format_function(self, node):
        params = self._default_function_params(node)
        for weight in _present_weights(spec, node.attributes):
            params[weight.name] = node.get_weights(weight.name).name
        params.update(spec.function_params(node, params))
        return spec.function_template.format(**params)

    def config_init(self):
        LayerConfigTemplate.__init__(self, layer_class)

    def function_init(self):
        FunctionCallTemplate.__init__(self, layer_class, include_header=[f"nnet_utils/{spec.header}"])

    config_template = type(f"{spec.class_name}ConfigTemplate", (LayerConfigTemplate,),
                           {"__init__": config_init, "format": format_config})
    function_template = type(f"{spec.class_name}FunctionTemplate", (FunctionCallTemplate,),
                             {"__init__": function_init, "format": format_function})
    header = template_path(spec.header)
    register_layer(spec.class_name, layer_class)
    for name in BACKENDS:
        backend = hls4ml.backends.get_backend(name)
        backend.register_template(config_template)
        backend.register_template(function_template)
        backend.register_source(header)
    _registered.add(spec.class_name)


def _present_weights(spec: CustomHLSLayer, attributes) -> list[Weight]:
    return [w for w in spec.weights if w.when is None or attributes.get(w.when)]
