"""Names that become C++ identifiers: layer names, model input names, the project name.

hls4ml writes Keras layer names into the firmware as they are: an input's name is an
argument of the top function (and ``<name>_ap`` in the bridge), a weighted layer's name
prefixes its types (``<name>_weight_t``), a per-element quantizer becomes the function
``nnet::<name>``. hgq_chip adds stages named ``<layer>_iq``, ``<layer>_relu``,
``<layer>_table``, and hls4ml its own ``layer<N>_out``, ``w<N>``, ``config<N>``, ...
Keras accepts names that none of this survives (``"conv-1"``, ``"a.b"``, ``"2nd"``, ``"int"``).

``convert`` therefore refuses, before writing anything, every name that is not a plain
C++ identifier, is a C++ keyword or a macro of the firmware's headers, looks like a name
hls4ml generates, collides with another layer's stage, or (for a per-element quantizer)
is a function of hls4ml's ``nnet_utils``, and suggests a valid unique name
(UnsupportedLayerError; UnsupportedConfigurationError for the project name).
"""

from __future__ import annotations

import functools
import keyword
import re
from pathlib import Path

from ..errors import UnsupportedConfigurationError, UnsupportedLayerError

IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
CPP_KEYWORDS = frozenset("""
    alignas alignof and and_eq asm atomic_cancel atomic_commit atomic_noexcept auto bitand bitor bool break case
    catch char char8_t char16_t char32_t class compl concept const consteval constexpr constinit const_cast continue
    co_await co_return co_yield decltype default delete do double dynamic_cast else enum explicit export extern
    false float for friend goto if inline int long mutable namespace new noexcept not not_eq nullptr operator or
    or_eq private protected public reflexpr register reinterpret_cast requires return short signed sizeof static
    static_assert static_cast struct switch synchronized template this thread_local throw true try typedef typeid
    typename union unsigned using virtual void volatile wchar_t while xor xor_eq final override import module
""".split())
# Names the firmware or its standard headers already use at global or nnet scope.
RESERVED = frozenset("""
    main std nnet hls ap_fixed ap_ufixed ap_int ap_uint input_t result_t model_default_t defines parameters
    assert NULL EOF errno stdin stdout stderr offsetof size_t WEIGHTS_DIR loaded_weights trace_enabled
    trace_outputs trace_type_size trace_data
""".split())
# Identifiers hls4ml generates (variables, weights, configs, types, bridge copies).
GENERATED = re.compile(
    r"(layer\d+(_\w*)?|[wbsz]\d+|table\d+|config\d+|\w+_config\d+|input\d*_t|result\d*_t|\w+_t|\w+_ap|\w+_cpy\d+"
    r"|\w+_index)\Z"
)


@functools.lru_cache(maxsize=1)
def _template_names() -> tuple[frozenset[str], frozenset[str]]:
    """(macros of hls4ml's C++ templates, function names of its ``nnet_utils``), read once."""
    import hls4ml

    templates = Path(hls4ml.__file__).parent / "templates" / "vivado"
    macros, functions = set(), set()
    for path in templates.rglob("*.h"):
        text = path.read_text(errors="replace")
        macros.update(re.findall(r"#\s*define\s+(\w+)", text))
        if "nnet_utils" in path.parts:
            functions.update(re.findall(r"\bvoid\s+(\w+)\s*\(", text))
    return frozenset(macros), frozenset(functions)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a name in the firmware, or None if it can."""
    if not IDENTIFIER.match(name):
        return "is not a C++ identifier (letters, digits and '_' only, starting with a letter)"
    if "__" in name:
        return "contains '__' (reserved in C++)"
    if name in CPP_KEYWORDS or keyword.iskeyword(name):
        return "is a C++ keyword"
    if name in RESERVED or name.lower() in ("defines", "parameters") or name in _template_names()[0]:
        return "is a name the firmware's headers already use"
    if GENERATED.match(name):
        return "has the form of a name hls4ml generates (layer<N>..., w<N>, config<N>, ..._t, ..._ap)"
    return None


def check_quantizer_functions(hls_model) -> None:
    """hls4ml writes each per-element quantizer as the function ``nnet::<its layer name>``:
    UnsupportedLayerError if that name is already a function of hls4ml's ``nnet_utils``."""
    functions = _template_names()[1]
    for name, node in hls_model.graph.items():
        if node.class_name == "FixedPointQuantizer" and name in functions:
            raise UnsupportedLayerError(
                f"layer {name!r} would become the C++ function nnet::{name}, which hls4ml's library already "
                f"defines; rename it, e.g. name={name + '_q'!r}"
            )


def suggest(name: str, taken: set[str]) -> str:
    """A valid name close to ``name`` that is not in ``taken``."""
    base = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", name)).strip("_") or "layer"
    if not IDENTIFIER.match(base) or name_problem(base):
        base = f"l_{base}"
    base = re.sub(r"_(t|ap|index)\Z", r"_\1x", base)
    base = re.sub(r"_+", "_", base)
    candidate, counter = base, 1
    while candidate in taken or name_problem(candidate):
        candidate, counter = f"{base}_{counter}", counter + 1
    return candidate


def check_layer_names(model, records) -> None:
    """UnsupportedLayerError for the first layer (or input) name that cannot be a C++ name,
    or that equals a stage name hgq_chip derives for another layer (``<layer>_iq``, ...).

    ``model``: the functional Keras model; ``records``: its LayerRecords (``hls_layers``).
    """
    names = [layer.name for layer in model.layers]
    taken = set(names)
    for record in records:
        taken.update(h.name for h in record.hls_layers)
    for layer_name in names:
        problem = name_problem(layer_name)
        if problem:
            raise UnsupportedLayerError(
                f"layer {layer_name!r} {problem}, so the firmware would not compile; rename it, e.g. "
                f"name={suggest(layer_name, taken)!r} (Keras names become C++ names in the hls4ml project)"
            )
    owner: dict[str, str] = {}
    for layer_name in names:
        owner[layer_name] = layer_name
    for record in records:
        for stage in record.hls_layers:
            other = owner.setdefault(stage.name, record.layer_name)
            if other != record.layer_name:
                raise UnsupportedLayerError(
                    f"layer {other!r} has the name of a stage hgq_chip derives from layer {record.layer_name!r} "
                    f"({stage.name!r}); rename {other!r}, e.g. name={suggest(other, taken)!r}"
                )


def check_project_name(project_name, model=None) -> str:
    """The project name if it can be the firmware's top function (and file) name.

    UnsupportedConfigurationError otherwise, also when it equals a layer or input name of
    ``model`` (the bridge would then call an argument instead of the function).
    """
    if not isinstance(project_name, str):
        raise UnsupportedConfigurationError(f"project_name must be a string, got {project_name!r}")
    layer_names = {layer.name for layer in model.layers} if model is not None else set()
    problem = name_problem(project_name)
    if problem is None and project_name in layer_names:
        problem = "is also the name of a layer of the model"
    if problem:
        raise UnsupportedConfigurationError(
            f"project name {project_name!r} {problem}; it names the C++ top function and its files. "
            f"Use e.g. {suggest(project_name, layer_names)!r}"
        )
    return project_name
