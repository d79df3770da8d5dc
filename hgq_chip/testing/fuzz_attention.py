"""The fuzzer grammar's attention steps (``model_fuzz`` draws them on sequences, shape (T, F)).

Steps (JSON-able dicts, built by ``fuzz_build``):

- ``einsum``: HEinsumDense ``"abc,cd->abd"`` (``units``: output (T, units)) or ``"abc,cde->abde"``
  (``heads``, ``units``: output (T, heads, units)), random bias axes and relu;
- ``attention``: HMultiHeadAttention self-attention ``layer(x, x)`` with ``heads``, ``key_dim``,
  ``value_dim``, ``output_dim`` (None: the input's features), random quantizers for the
  projections, the score operands and the softmax's input; in io_stream always refused (typed).

Each maker takes the ``_Draw`` of ``model_fuzz`` and the current shape (no batch axis) and
returns ``(step, output shape)``.
"""

from __future__ import annotations

ATTENTION_OPS = ("einsum", "attention")


def einsum_step(d, shape) -> tuple[dict, tuple]:
    ch = d.ch
    heads = ch.integer(1, 3) if ch.chance(50) else None
    units = ch.integer(1, 4)
    free = "de" if heads else "d"
    step = {"op": "einsum", "heads": heads, "units": units, "name": d.name("einsum"),
            "bias_axes": ch.choice((None, free, free[-1])), "activation": ch.choice(("linear", "relu")),
            "iq": d.act_q(), "kq": d.weight_q()}
    out = (shape[0], heads, units) if heads else (shape[0], units)
    return step, out


def attention_step(d, shape) -> tuple[dict, tuple]:
    ch = d.ch
    output_dim = ch.choice((None, ch.integer(1, 4)))
    step = {"op": "attention", "heads": ch.integer(1, 2), "key_dim": ch.integer(1, 3),
            "value_dim": ch.choice((None, ch.integer(1, 3))), "output_dim": output_dim,
            "use_bias": ch.chance(70), "name": d.name("mha"), "iq": d.act_q(), "kq": d.weight_q(),
            "score_q": d.act_q(), "softmax_iq": d.act_q(), "stable": not ch.chance(30)}
    return step, (shape[0], output_dim or shape[-1])


def attention_maker(op: str):
    return {"einsum": einsum_step, "attention": attention_step}[op]


def apply_attention_step(step: dict, x):
    """The output tensor of ``step`` applied to ``x``."""
    from .. import layers as hl

    common = {"input_quantizer": step["iq"], "kernel_quantizer": step["kq"], "name": step["name"]}
    if step["op"] == "einsum":
        if step["heads"]:
            equation, out = "abc,cde->abde", (None, step["heads"], step["units"])
        else:
            equation, out = "abc,cd->abd", (None, step["units"])
        return hl.HEinsumDense(equation, out, bias_axes=step["bias_axes"], activation=step["activation"], **common)(x)
    layer = hl.HMultiHeadAttention(step["heads"], step["key_dim"], value_dim=step["value_dim"],
                                   output_shape=step["output_dim"], use_bias=step["use_bias"],
                                   score_quantizer=step["score_q"], value_quantizer=step["score_q"],
                                   softmax={"stable": step["stable"], "input_quantizer": step["softmax_iq"]}, **common)
    return layer(x, x)
