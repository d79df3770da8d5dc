"""Random model specifications over the grammar ``hgq_chip.convert`` accepts (the fuzzer's input).

A *spec* is a JSON-able dict: an input shape, a list of layer steps, conversion options and
a seed for weights, bit-widths and data. ``draw_spec`` writes one from any source of choices
(a ``Chooser``): Hypothesis in the tests (``model_specs()``), or a seeded
``random.Random`` in ``benchmarks/fuzz_converter.py`` (each example reproducible from its
seed). ``hgq_chip.testing.fuzz_build.build_model`` turns a spec into a calibrated model.

Some specs are invalid on purpose (per-element activation bits with io_stream, a
per-element table output, non-power-of-two average pools (windowed or global), layers without quantized
inputs, distributed arithmetic right after HQuantize, dilated convolutions, a layer called
twice, names that are no C++ identifiers, reuse factors or clock periods <= 0, HSoftmax or
HLayerNormalization in io_stream, ...):
``convert`` must refuse those with a typed error before writing anything. Kinds that are
always refused are drawn rarely, so they do not hide the faults of the rest of the model.
Data movement (padding, cropping, up-sampling, permute), global pooling and concatenation
steps come from ``fuzz_movement``; the layer families' own steps from their
``testing/families`` cases (``FuzzStep``). ``spec["keras_backend"]`` names the Keras backend the check
runs under (None: the process' own; ``fuzz_check`` runs another in a child process);
``fuzz_qkeras`` writes the QKeras twin of a spec expressible in QKeras, for the importer.
``spec_kinds`` names the notable kinds a spec shows (for the benchmark's statistics and its
``--kinds`` filter).
"""

from __future__ import annotations

from .fuzz_attention import ATTENTION_OPS, attention_maker
from .fuzz_choosers import Chooser, HypothesisChooser, RandomChooser  # noqa: F401  (RandomChooser: public here)
from .fuzz_movement import MOVEMENT_OPS, concat_step, movement_maker

# Kinds ``spec_kinds`` names that a few dozen random examples may well miss (each shows in
# about 1-5 % of specs); tests/test_fuzz_converter.py checks the first spec of each.
RARE_KINDS = ("adaqat_conv_training", "other_backend", "bad_build_option", "dilation", "max_pool_same_padding", "non_identifier_name",
              "shared_layer", "stream_cast_after_reshape", "stream_pool_limits", "stream_softmax",
              "stream_attention")

# The Keras backend the spec's model is built, calibrated, converted and verified under (None:
# the process' own). Another backend runs the whole check in a child process (fuzz_check.py),
# about 10 s more: drawn rarely, so the fuzzer's CI time stays; "other_backend" is a rare kind.
KERAS_BACKENDS = ("tensorflow", "jax", "torch")
OTHER_BACKEND_PERCENT = 4
ACT_GRANULARITIES = ("per-element", "per-channel", "per-layer")
ROUNDINGS = ("RND", "TRN", "RND_CONV")
OVERFLOWS = ("WRAP", "SAT", "SAT_SYM")
EXACT_ACTIVATIONS = ("relu", "linear")
TABLE_ACTIVATIONS = ("tanh", "sigmoid", "softsign", "gelu")
CONV_FAMILIES = ("h", "hbn", "a", "asq", "dw")  # dw: HDepthwiseConv1D/2D
MERGE_KINDS = ("subtract", "multiply", "maximum", "minimum")
DENSE_FAMILIES = ("h", "hbn", "a", "asq")


def model_specs(other_backends: bool = True):
    """Hypothesis strategy of specs over the whole grammar (``draw_spec``). ``other_backends=False``
    checks every spec under this process's backend (the draws stay the same; a spec drawn for another
    backend costs a child process of ~60-130 s, which the fast CI profile leaves to its rare-kind test)."""
    from hypothesis import strategies as st

    @st.composite
    def specs(draw):
        spec = draw_spec(HypothesisChooser(draw))
        if not other_backends:
            spec["keras_backend"] = None
        return spec

    return specs()


# ---- drawing a spec ---------------------------------------------------------------------


class _Draw:
    """Holds the chooser, the io type and a layer-name counter."""

    def __init__(self, ch: Chooser, io_type: str):
        self.ch, self.io_type = ch, io_type
        self.names = 0
        self.reading_input = True  # while drawing the first step: its quantizers read the model input

    def name(self, stem: str) -> str:
        """A unique layer name; about 1 in 200 is no C++ identifier ('-' or '.': always refused)."""
        self.names += 1
        if self.ch.chance(1) and self.ch.chance(50):
            return f"{stem}-{self.names}" if self.ch.chance(50) else f"{stem}.{self.names}"
        return f"{stem}{self.names}"

    def act_q(self, overflow=True) -> dict:
        """Activation quantizer options; mostly valid ones where io_stream or the model input restricts them."""
        granularity = self.ch.choice(ACT_GRANULARITIES)
        if self.io_type == "io_stream" and not self.ch.chance(15):
            granularity = "per-layer"  # io_stream refuses per-element/per-channel bits
        rounding = self.ch.choice(ROUNDINGS)
        if self.reading_input and rounding == "RND_CONV" and not self.ch.chance(10):
            rounding = "RND"  # ties-to-even on raw float inputs is refused
        q = {"granularity": granularity, "rounding": rounding}
        if overflow:
            q["overflow"] = self.ch.choice(OVERFLOWS)
        return q

    def weight_q(self) -> dict:
        return {"granularity": self.ch.choice(ACT_GRANULARITIES), "rounding": self.ch.choice(ROUNDINGS)}


def _adaqat_q(d: _Draw) -> tuple[dict, dict]:
    iq = {"init_bits": d.ch.integer(2, 8), "signed": d.ch.chance(50), "init_alpha": d.ch.choice((0.5, 1.0, 2.0, 4.0))}
    return iq, {"init_bits": d.ch.integer(2, 8)}


def _asq_q(d: _Draw) -> tuple[dict, dict]:
    kind = d.ch.choice(("lsq", "asq"))
    iq = {"kind": kind, "bits": d.ch.integer(2, 5), "signed": d.ch.chance(50)}
    if kind == "asq" and d.ch.chance(30):
        iq["adapter_hidden"] = 2
    return iq, {"kind": d.ch.choice(("lsq", "pot", "post")), "bits": d.ch.integer(3, 4)}


def _quantizers(d: _Draw, family: str) -> dict:
    if family == "a":
        iq, kq = _adaqat_q(d)
        return {"iq": iq, "kq": kq}
    if family == "asq":
        iq, kq = _asq_q(d)
        return {"iq": iq, "kq": kq}
    return {"iq": d.act_q(), "kq": d.weight_q(), "bq": d.weight_q()}


def _conv_out(size, kernel, stride, padding, dilation=1):
    if padding == "same":
        return -(-size // stride)
    return (size - ((kernel - 1) * dilation + 1)) // stride + 1


def _family(d: _Draw, families) -> str:
    family = d.ch.choice(families)
    if family == "asq" and d.io_type == "io_stream" and not d.ch.chance(20):
        family = "h"  # io_stream refuses ASQ/POST layers: mostly drawn valid
    return family


def _conv_step(d: _Draw, shape, shape_preserving=False) -> tuple[dict, tuple]:
    ch, spatial = d.ch, shape[:-1]
    family = _family(d, CONV_FAMILIES if not shape_preserving else ("h", "hbn", "a", "dw"))
    kernel = [ch.integer(1, min(3, n)) for n in spatial]
    padding = "same" if shape_preserving else ch.choice(("valid", "same"))
    strides = [1 if shape_preserving else ch.choice((1, 1, 2, 3)) for _ in spatial]
    dilation = 1
    if family != "asq" and not shape_preserving and ch.chance(4):  # always refused: rare
        dilation, strides = 2, [1] * len(spatial)
        kernel = [k if (k - 1) * 2 + 1 <= n else 1 for k, n in zip(kernel, spatial)]
    if family == "asq":
        padding = "valid"
    filters = shape[-1] if shape_preserving else ch.integer(1, 3)
    extra = {}
    if family == "dw":  # outputs channels * depth_multiplier
        extra["depth_multiplier"] = 1 if shape_preserving else ch.choice((1, 1, 2))
        filters = shape[-1] * extra["depth_multiplier"]
    out = tuple(_conv_out(n, k, s, padding, dilation) for n, k, s in zip(spatial, kernel, strides)) + (filters,)
    step = {"op": "conv", "family": family, "filters": filters, "kernel": kernel, "strides": strides,
            "padding": padding, "dilation": dilation, "activation": ch.choice(EXACT_ACTIVATIONS),
            "use_bias": ch.chance(70), "name": d.name("conv"), **_quantizers(d, family), **extra}
    return step, out


def _dense_step(d: _Draw, shape, shape_preserving=False) -> tuple[dict, tuple]:
    ch = d.ch
    family = _family(d, DENSE_FAMILIES if not shape_preserving and len(shape) == 1 else ("h", "hbn", "a"))
    units = shape[-1] if shape_preserving else ch.integer(1, 6)
    step = {"op": "dense", "family": family, "units": units, "activation": ch.choice(EXACT_ACTIVATIONS),
            "use_bias": ch.chance(70), "name": d.name("dense"), **_quantizers(d, family)}
    return step, tuple(shape[:-1]) + (units,)


def _activation_step(d: _Draw, shape) -> tuple[dict, tuple]:
    ch = d.ch
    activation = ch.choice(EXACT_ACTIVATIONS + TABLE_ACTIVATIONS)
    step = {"op": "activation", "activation": activation, "name": d.name("act"), "iq": d.act_q()}
    if activation in TABLE_ACTIVATIONS:
        step["oq"] = {"granularity": "per-element" if ch.chance(10) else "per-layer",
                      "rounding": ch.choice(ROUNDINGS), "overflow": ch.choice(OVERFLOWS)}
    return step, shape


def _quantize_step(d: _Draw, shape) -> tuple[dict, tuple]:
    return {"op": "quantize", "name": d.name("quant"), "q": d.act_q()}, shape


def _pool_step(d: _Draw, shape) -> tuple[dict, tuple]:
    ch, spatial = d.ch, shape[:-1]
    kind = ch.choice(("max", "avg"))
    pool = [ch.integer(1, min(3, n)) for n in spatial]
    strides = list(pool) if ch.chance(60) else [ch.integer(1, 2) for _ in spatial]
    padding = ch.choice(("valid", "same"))
    if d.io_type == "io_stream" and not ch.chance(15):
        strides = list(pool)  # io_stream refuses pool size != strides: mostly drawn equal
    out = tuple(_conv_out(n, p, s, padding) for n, p, s in zip(spatial, pool, strides)) + (shape[-1],)
    return {"op": "pool", "kind": kind, "pool": pool, "strides": strides, "padding": padding,
            "name": d.name("pool")}, out


def _branch(d: _Draw, shape) -> list:
    """0-2 shape-preserving steps (an empty branch is the tensor itself)."""
    branch = []
    for _ in range(d.ch.integer(0, 2)):
        kind = d.ch.choice(("activation", "quantize", "weighted"))
        if kind == "weighted":
            step, _ = (_conv_step if len(shape) > 1 else _dense_step)(d, shape, shape_preserving=True)
        else:
            step, _ = (_activation_step if kind == "activation" else _quantize_step)(d, shape)
        branch.append(step)
    return branch


def _residual_step(d: _Draw, shape) -> tuple[dict, tuple]:
    """HAdd of two shape-preserving branches of the current tensor."""
    return {"op": "add", "branches": [_branch(d, shape), _branch(d, shape)], "name": d.name("add")}, shape


def _merge_step(d: _Draw, shape) -> tuple[dict, tuple]:
    """HSubtract/HMultiply/HMaximum/HMinimum of shape-preserving branches (2, or 3 but for
    subtract); input quantizers optional except for HMultiply, which always has them."""
    kind = d.ch.choice(MERGE_KINDS)
    step, _ = _residual_step(d, shape)
    if kind != "subtract" and d.ch.chance(25):
        step["branches"].append([])
    iq = d.act_q() if kind == "multiply" or d.ch.chance(50) else None
    return {"op": "merge", "kind": kind, "iq": iq, "branches": step["branches"], "name": d.name(kind)}, shape


def _reshape_step(d: _Draw, shape) -> tuple[dict, tuple]:
    size = 1
    for n in shape:
        size *= n
    if len(shape) > 1:
        kind = d.ch.choice(("flatten", "reshape"))
        return {"op": kind, "target": [size], "name": d.name(kind)}, (size,)
    channels = d.ch.choice([c for c in (1, 2, 3) if size % c == 0 and size // c >= 2] or [1])
    target = [size // channels, channels]
    return {"op": "reshape", "target": target, "name": d.name("reshape")}, tuple(target)


def _softmax_step(d: _Draw, shape) -> tuple[dict, tuple]:
    """HSoftmax over the last axis: stable or not, random rounding/overflow of its four per-layer quantizers."""
    ch = d.ch

    def table_q() -> dict:
        return {"rounding": ch.choice(ROUNDINGS), "overflow": ch.choice(OVERFLOWS)}

    step = {"op": "softmax", "stable": not ch.chance(30), "name": d.name("softmax"), "iq": d.act_q()}
    step.update({key: table_q() for key in ("exp_q", "sum_q", "inv_q", "oq")})
    return step, shape


def _shared_step(d: _Draw, shape) -> tuple[dict, tuple]:
    step, _ = _dense_step(d, shape, shape_preserving=True)
    return {**step, "op": "shared_dense"}, shape


def _next_step(d: _Draw, shape) -> tuple[dict, tuple]:
    ch = d.ch
    ops = ["activation", "quantize", "dropout", "add", "merge", "reshape", "concat"]
    ops += ["conv", "conv", "pool", "movement"] if len(shape) > 1 else ["dense", "dense"]
    if d.io_type == "io_parallel":
        ops.append("softmax")
    family_steps = _family_steps()
    ops += [name for name, step in family_steps.items() if len(shape) in step.ranks and d.io_type in step.io_types]
    if len(shape) == 2 and (d.io_type == "io_parallel" or ch.chance(5)):  # io_stream: always refused
        ops += list(ATTENTION_OPS)
    if len(shape) == 1 and ch.chance(2):
        op = "shared"  # a layer called twice: always refused
    elif d.io_type == "io_stream" and ch.chance(2):
        # io_parallel only (HSoftmax, families without io_stream): always refused
        op = ch.choice(("softmax", *sorted(n for n, step in family_steps.items() if d.io_type not in step.io_types)))
    elif len(shape) > 1 and ch.chance(3):
        op = "dense"  # a Dense on a feature map (last axis)
    else:
        op = ch.choice(ops)
    makers = {"activation": _activation_step, "quantize": _quantize_step, "add": _residual_step, "merge": _merge_step,
              "reshape": _reshape_step, "conv": _conv_step, "dense": _dense_step, "pool": _pool_step,
              "shared": _shared_step, "concat": lambda d, shape: concat_step(d, shape, _branch),
              "movement": lambda d, shape: movement_maker(d.ch.choice(MOVEMENT_OPS[:-1]))(d, shape),
              "softmax": _softmax_step, **{op: attention_maker(op) for op in ATTENTION_OPS},
              "dropout": lambda d, shape: ({"op": "dropout", "rate": 0.25, "name": d.name("drop")}, shape),
              **{name: step.draw for name, step in family_steps.items()}}
    return makers[op](d, shape)


def _family_steps() -> dict:
    """The fuzz steps the layer families declare (``testing/families``: imports the layers)."""
    from .families import fuzz_steps

    return fuzz_steps()


def _convert_options(d: _Draw) -> dict:
    ch = d.ch
    strategy = "distributed_arithmetic" if ch.chance(20) else "latency"
    # Distributed arithmetic refuses reuse factors other than 1: draw one only now and then.
    reuse = ch.choice((1, 1, 2, 4)) if strategy == "latency" or ch.chance(10) else 1
    options = {"backend": ch.choice(("Vitis", "Vivado")), "io_type": d.io_type, "strategy": strategy,
               "reuse_factor": reuse}
    if ch.chance(3):  # an option that cannot build: always refused
        bad = ch.choice(("reuse_factor", "clock_period", "project_name"))
        options[bad] = {"reuse_factor": ch.choice((0, -1)), "clock_period": ch.choice((0.0, -5.0)),
                        "project_name": ch.choice(("my-project", "1proj", "my project"))}[bad]
    return options


def draw_spec(ch: Chooser) -> dict:
    """One random model spec (see the module docstring); JSON-able."""
    io_type = "io_stream" if ch.chance(35) else "io_parallel"
    d = _Draw(ch, io_type)
    kind = ch.choice(("flat", "seq", "image"))
    shape = {"flat": lambda: (ch.integer(2, 8),),
             "seq": lambda: (ch.integer(4, 9), ch.integer(1, 3)),
             "image": lambda: (ch.integer(3, 6), ch.integer(3, 6), ch.integer(1, 2))}[kind]()
    layers, current = [], shape
    if not ch.chance(10):  # otherwise the first layer reads the raw input (refused unless it quantizes)
        step, current = _quantize_step(d, current)
        layers.append(step)
        d.reading_input = False
    for _ in range(ch.integer(1, 4)):
        step, current = _next_step(d, current)
        d.reading_input = False
        layers.append(step)
    if len(current) == 1 and ch.chance(50):
        step, current = _dense_step(d, current)
        layers.append(step)
    train = ch.chance(10)
    spec = {
        "seed": ch.integer(0, 2**16),
        "input_shape": list(shape),
        "layers": layers,
        "bits": {"act_f": sorted((ch.integer(-1, 5), ch.integer(0, 5))),
                 "weight_f": sorted((ch.integer(-3, 5), ch.integer(0, 6))),
                 "prune_percent": ch.choice((0, 0, 20, 60))},
        "data_scale": ch.choice((0.25, 1.0, 4.0, 30.0)),
        "train": train,
        "convert": _convert_options(d),
    }
    # Drawn last, so every earlier choice (and each earlier spec of a seed) stays as it was.
    spec["keras_backend"] = ch.choice(KERAS_BACKENDS) if ch.chance(OTHER_BACKEND_PERCENT) else None
    return spec


def _all_steps(steps):
    for step in steps:
        yield step
        for branch in step.get("branches", ()):
            yield from _all_steps(branch)


def first_spec_showing(kind: str, seed: int = 0, tries: int = 20_000) -> dict:
    """The first spec of ``RandomChooser(seed * 1_000_003 + i)``, i = 0, 1, ..., that shows ``kind``."""
    for index in range(tries):
        spec = draw_spec(RandomChooser(seed * 1_000_003 + index))
        if kind in spec_kinds(spec):
            return spec
    raise LookupError(f"no spec of the first {tries} shows {kind!r}")


def spec_kinds(spec: dict) -> list[str]:
    """Names of the notable kinds a spec shows (for the benchmark's statistics; no filtering)."""
    kinds, stream = set(), spec["convert"]["io_type"] == "io_stream"
    steps = list(_all_steps(spec["layers"]))
    for step in steps:
        if step["op"] == "pool" and step["kind"] == "max" and step["padding"] == "same":
            kinds.add("max_pool_same_padding")
        if stream and step["op"] == "pool" and (step["padding"] == "same" or step["pool"] != step["strides"]):
            kinds.add("stream_pool_limits")
        if step["op"] == "conv" and step["dilation"] > 1:
            kinds.add("dilation")
        if step["op"] == "shared_dense":
            kinds.add("shared_layer")
        if "-" in step["name"] or "." in step["name"]:
            kinds.add("non_identifier_name")
        if spec["train"] and step["op"] == "conv" and step["family"] == "a":
            kinds.add("adaqat_conv_training")
        if step["op"] == "activation" and step["activation"] in TABLE_ACTIVATIONS:
            kinds.add("table_activation")
        if step["op"] == "add":
            kinds.add("residual")
        if step["op"] == "merge":
            kinds.add(f"merge_{step['kind']}")
        if step["op"] == "conv" and step["family"] == "dw":
            kinds.add("depthwise" if step["depth_multiplier"] == 1 else "depthwise_multiplier")
        if step["op"] in MOVEMENT_OPS:
            kinds.add(step["op"] if step["op"] in ("concat", "global") else "movement")
        if step["op"] == "softmax":
            kinds.add("stream_softmax" if stream else "softmax")
        if step["op"] in ATTENTION_OPS:
            kinds.add(f"stream_{step['op']}" if stream else step["op"])
        if step["op"] in _family_steps():
            kinds.add(step["op"])
        if any(q.get("granularity") == "per-element" for q in (step.get(k) for k in ("q", "iq", "oq")) if q):
            kinds.add("per_element_bits")
    after_reshape = False
    for step in spec["layers"]:
        firsts = [step] if step["op"] not in ("add", "merge", "concat") else [b[0] for b in step["branches"] if b]
        if stream and after_reshape and any(s["op"] in ("activation", "quantize") for s in firsts):
            kinds.add("stream_cast_after_reshape")
        after_reshape = step["op"] in ("flatten", "reshape") or (after_reshape and step["op"] == "dropout")
    if spec.get("keras_backend"):
        kinds.add("other_backend")
    options = spec["convert"]
    kinds.update(k for k, on in (("io_stream", stream), ("train", spec["train"]),
                                 ("distributed_arithmetic", options["strategy"] == "distributed_arithmetic")) if on)
    if (options.get("reuse_factor", 1) <= 0 or options.get("clock_period", 5.0) <= 0
            or not options.get("project_name", "myproject").isidentifier()):
        kinds.add("bad_build_option")
    return sorted(kinds)
