"""Names that become C++ identifiers: layer names, model input names, the project name.

hls4ml writes Keras layer names into the firmware as they are: an input's name is an
argument of the top function (and ``<name>_ap`` in the bridge), a weighted layer's name
prefixes its types (``<name>_weight_t``), a per-element quantizer becomes the function
``nnet::<name>``. hgq_chip adds stages named ``<layer>_iq``, ``<layer>_relu``,
``<layer>_table``, and hls4ml its own ``layer<N>_out``, ``w<N>``, ``config<N>``, ...
Keras accepts names that none of this survives (``"conv-1"``, ``"a.b"``, ``"2nd"``, ``"int"``).

hls4ml 1.3 itself renames or rejects some names before any C++ is written:

- its Keras 3 parser gives every hls4ml layer a unique name through ``UniqueName``, whose
  set of used names starts as ``set('input')`` -- the letters ``i``, ``n``, ``p``, ``u``,
  ``t`` -- so a layer or input with one of those names becomes ``<name>_0``, a layer
  hgq_chip has no types for; a name already given to another hls4ml layer is renamed the same way;
- ``Layer.__init__`` rejects a layer (or input) named ``input`` with a bare RuntimeError;
- a layer's output variable is stored among its attributes under the layer's name
  (``Layer.add_output_variable``: ``self.set_attr(out_name, out)``), so a layer named like
  one of its attributes (a Permute called ``perm``, any layer called ``strategy`` or
  ``reuse_factor``) loses that attribute or its output, and conversion fails or writes
  wrong code;
- its optimizer passes insert layers named ``clone_<layer>`` (a stream read more than once),
  ``repack_<layer>`` (a streamed Reshape), ``zp1d_``/``zp2d_<layer>`` (padding of a streamed
  convolution), ``bnbt_<layer>`` and ``broadcast_<layer>``; a user layer of such a name would
  replace the inserted one in hls4ml's graph.

``convert`` therefore refuses, before writing anything, every layer or input name that is
not a plain C++ identifier, is a C++ keyword or a macro of the firmware's headers, looks like
a name hls4ml generates, is one hls4ml renames or rejects, has the name of a layer hls4ml
inserts for another layer, collides with another layer's stage, or (for a per-element
quantizer) is a function of hls4ml's ``nnet_utils``, is an attribute name of hls4ml's layers,
and suggests a valid unique name
(UnsupportedLayerError; UnsupportedConfigurationError for the project name).
"""

from __future__ import annotations

import functools
import keyword
import re
from pathlib import Path

import keras

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
    r"|\w+_index|dense_da_\d+|da_comblogic_\d+|einsum_\d+_da_\w+)\Z"
)
# Prefixes of the layers hls4ml's optimizer passes insert, followed by the name of the layer
# they are inserted for (hls4ml/backends/fpga/passes/clone.py, repack_stream.py,
# backends/vivado/passes/conv_same_pad.py, bn_quant.py, broadcast_stream.py).
INSERTED_PREFIXES = ("clone_", "repack_", "zp1d_", "zp2d_", "bnbt_", "broadcast_")
# hls4ml's Layer.__init__ raises for a layer of this name (hls4ml/model/layers.py).
HLS4ML_REJECTED = frozenset({"input"})


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


# Attribute names hls4ml 1.3's optimizer passes and backends set on layers after parsing
# (every ``set_attr('<name>', ...)`` in hls4ml/; tests/test_names_options.py re-reads hls4ml's
# sources and fails when a new one appears): refused for every layer. The attributes a layer's
# hls4ml class declares and those hls4ml's Keras parser gives it are checked per layer, on the
# parsed model (:func:`check_parsed_attributes`).
HLS4ML_PASS_ATTRIBUTES = frozenset("""
    _weights_transposed _winograd_transformation_applied accum_t activation axis bfpad bias_quantizer bitwidth
    da_codegen data_format depth dim dw_line_buffer_codegen dw_output_t expr_t height impl_filt_height
    impl_filt_width implementation in_height in_width include_header index index_t instructions
    line_buffer_codegen mask_fn_codegen merge_mode min_height min_width n_chan n_in n_partitions name
    new_attribute out_height out_width pad_bottom pad_left pad_right pad_top parallelization
    parallelization_factor param_t perm perm_str pool_op pw_line_buffer_codegen quantizer recurrent_activation
    recurrent_reuse_factor resource_unrolled_dense_codegen resource_unrolled_dense_codegen_1
    resource_unrolled_dense_codegen_2 reuse_factor rfpad scale scale_quantizer shift_t slope_t strategy
    table_size table_t target_cycles target_shape threshold time_step_loop_parallelism value weight weight_quantizer
    width wrapped_layer zeropt
""".split())


def check_parsed_attributes(layer_dicts) -> None:
    """UnsupportedLayerError for an hls4ml layer whose name is one of its own attribute names:
    a key hls4ml's Keras parser gave it (``layer_dicts``: the dicts of ``parse_keras_v3_model``)
    or an attribute its hls4ml class declares (``expected_attributes`` of
    ``hls4ml.model.layers.layer_map[class_name]``). hls4ml would store the layer's output under
    that name and lose the attribute (or the other way round)."""
    from hls4ml.model.layers import layer_map

    taken = {entry.get("name") for entry in layer_dicts}
    for entry in layer_dicts:
        name = entry.get("name")
        # ModelGraph hands a layer its 'inputs' and 'outputs' as arguments; the copies among its
        # attributes are never read again (a layer named 'inputs' converts exactly: test_names_options).
        if not isinstance(name, str) or name in ("name", "inputs", "outputs"):
            continue
        cls = layer_map.get(entry.get("class_name"))
        declared = {attribute.name for attribute in cls.expected_attributes} if cls is not None else set()
        if name in entry or name in declared:
            raise UnsupportedLayerError(
                f"layer {name!r} has the name of one of its own hls4ml attributes ({name!r}), which hls4ml "
                f"replaces with the layer's output; rename it, e.g. name={suggest(name, taken)!r}"
            )


@functools.lru_cache(maxsize=1)
def hls4ml_renamed_names() -> frozenset[str]:
    """The names hls4ml 1.3's Keras 3 parser renames on sight (``UniqueName``'s initial set)."""
    from hls4ml.converters.keras_v3_to_hls import UniqueName

    return frozenset(UniqueName().used_names)


def layer_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be the name of a layer or input in the firmware, or None if it can:
    :func:`name_problem`, or a name hls4ml renames or rejects."""
    problem = name_problem(name)
    if problem is None and name in HLS4ML_REJECTED:
        problem = "is reserved by hls4ml (its converter rejects a layer of that name)"
    if problem is None and name in HLS4ML_PASS_ATTRIBUTES:
        problem = ("is the name of an attribute hls4ml keeps on its layers, and hls4ml stores a layer's output "
                   "under the layer's name, which would replace that attribute")
    if problem is None and name in hls4ml_renamed_names():
        renamed = ", ".join(repr(n) for n in sorted(hls4ml_renamed_names()))
        problem = (f"is one of the names hls4ml 1.3 reserves ({renamed}: the letters of 'input'), so its "
                   f"converter would rename it {name + '_0'!r}, a layer hgq_chip derived no types for")
    return problem


def inserted_for(name: str, names) -> str | None:
    """The layer of ``names`` that hls4ml would insert a layer called ``name`` for (e.g.
    'clone_dense' for 'dense', 'clone_repack_flatten' for 'flatten'), or None."""
    rest = name
    while True:
        prefix = next((p for p in INSERTED_PREFIXES if rest.startswith(p)), None)
        if prefix is None:
            return None
        rest = rest[len(prefix):]
        if rest in names:
            return rest


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


def check_names_kept(hls_model, hls_config) -> None:
    """UnsupportedLayerError if hls4ml renamed one of our layers to ``<name>_<N>`` (its
    ``UniqueName`` does so for a name it already holds): the up-front checks refuse every
    name hls4ml 1.3 is known to rename, this catches any other before the project is written."""
    ours = set(hls_config["LayerName"])
    for name in hls_model.graph:
        match = re.fullmatch(r"(\w+)_\d+", name)
        if name not in ours and match and match.group(1) in ours and match.group(1) not in hls_model.graph:
            raise UnsupportedLayerError(
                f"hls4ml renamed layer {match.group(1)!r} to {name!r} (a name it holds reserved or already gave "
                f"another layer), so the derived types would not apply; rename {match.group(1)!r}, e.g. "
                f"name={suggest(match.group(1), ours | set(hls_model.graph))!r}"
            )


def suggest(name: str, taken: set[str]) -> str:
    """A valid name close to ``name`` that is not in ``taken``."""
    base = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", name)).strip("_") or "layer"
    if not IDENTIFIER.match(base) or name_problem(base):
        base = f"l_{base}"
    base = re.sub(r"_(t|ap|index)\Z", r"_\1x", base)
    base = re.sub(r"_+", "_", base)
    candidate, counter = base, 1
    while candidate in taken or layer_name_problem(candidate) or inserted_for(candidate, taken):
        candidate, counter = f"{base}_{counter}", counter + 1
    return candidate


def check_layer_names(model, records) -> None:
    """UnsupportedLayerError for the first layer (or input) name that cannot be a C++ name,
    that hls4ml renames or rejects, that hls4ml gives a layer it inserts for another layer
    (``clone_<layer>``, ...), or that equals a stage name hgq_chip derives for another
    layer (``<layer>_iq``, ...).

    ``model``: the functional Keras model; ``records``: its LayerRecords (``hls_layers``).
    """
    names = [layer.name for layer in model.layers]
    taken = set(names)
    for record in records:
        taken.update(h.name for h in record.hls_layers)
    inputs = {layer.name for layer in model.layers if isinstance(layer, keras.layers.InputLayer)}
    for layer_name in names:
        what = "input" if layer_name in inputs else "layer"
        problem = name_problem(layer_name)
        if problem:
            raise UnsupportedLayerError(
                f"{what} {layer_name!r} {problem}, so the firmware would not compile; rename it, e.g. "
                f"name={suggest(layer_name, taken)!r} (Keras names become C++ names in the hls4ml project)"
            )
        problem = layer_name_problem(layer_name)
        if problem:
            raise UnsupportedLayerError(
                f"{what} {layer_name!r} {problem}; rename it, e.g. name={suggest(layer_name, taken)!r}"
            )
        target = inserted_for(layer_name, taken - {layer_name})
        if target is not None:
            raise UnsupportedLayerError(
                f"{what} {layer_name!r} has the name hls4ml gives a layer it may insert for {target!r} (a copy, "
                f"repack or padding of its stream), which would replace that layer; rename it, e.g. "
                f"name={suggest(layer_name, taken)!r}"
            )
    owner: dict[str, str] = {}
    for layer_name in names:
        owner[layer_name] = layer_name
    for record in records:
        for stage in record.hls_layers:
            target = inserted_for(stage.name, taken - {stage.name})
            # A stage named for the layer hls4ml inserts for this very layer is the type of that
            # layer (stream.prepare_stream types the Repack of a streamed Reshape): not a clash.
            if target is not None and target != record.layer_name and stage.name not in owner:
                raise UnsupportedLayerError(
                    f"layer {record.layer_name!r} gets the stage {stage.name!r}, the name hls4ml gives a layer it may "
                    f"insert for {target!r}; rename {record.layer_name!r}, e.g. "
                    f"name={suggest(record.layer_name, taken)!r}"
                )
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
