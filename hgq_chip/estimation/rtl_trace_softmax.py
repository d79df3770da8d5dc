"""RTL trace of HSoftmax, step for step as ``firmware_templates/nnet_hgq_softmax.h`` computes it
(types and tables from ``conversion/rules/softmax.py``'s record).

Per row of n elements (the last axis), after the input quantizer stage:
``t = max(x) - x`` in ``diff_t`` (stable) or ``t = x``; ``e = exp_table[t]`` (a stable table
cut where its entries turn constant reads its last entry beyond: the same value as the full
table's); ``s = sum(e)`` in ``sum_t``; ``q = s`` cast to ``inv_in_t`` (the sum quantizer's
rounding and overflow); ``r = inv_table[q]``; ``y = e * r`` (a product of two variables, exact
in ``product_t``) cast to ``result_t`` (the output quantizer's modes).
"""

from __future__ import annotations

from ..conversion.precision import quantizer_name
from ..layers.softmax import HSoftmax
from .rtl_trace_cast import cast, lookup
from .rtl_trace_pooling import maximum, total
from .rtl_trace_registry import stage_types, traces


def softmax_rows(x, types: dict, tables: dict, stable: bool):
    """The softmax of each row of ``x`` (``(rows, n)``), with the record's ``types``
    (diff, exp_table, sum, inv_in, inv_table, product, result) and ``tables`` (exp, inverse)."""
    n = x.shape[-1]
    columns = [x[:, j] for j in range(n)]
    if stable:
        top = maximum(columns)
        index = cast(top[:, None] - x, types["diff"])
    else:
        index = x
    e = lookup(index, *tables["exp"], types["exp_table"])
    s = cast(total([e[:, j] for j in range(n)]), types["sum"])
    q = cast(s, types["inv_in"])
    r = lookup(q, *tables["inverse"], types["inv_table"])
    product = cast(e * r[:, None], types["product"])
    return cast(product, types["result"])


@traces(HSoftmax)
def trace_softmax(layer, record, inputs):
    x = cast(inputs[0], record.quantizer_formats[quantizer_name(layer, layer.iq)])
    shape = tuple(x.shape)
    y = softmax_rows(x.reshape(-1, shape[-1]), stage_types(record)[layer.name], record.tables, layer.stable)
    return y.reshape(shape)
