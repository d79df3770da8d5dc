"""Which values the firmware actually computes: synthesis removes logic whose result is unused.

Pruning leaves activations no nonzero weight reads, and output columns nobody reads; their
casts, relus and adder trees disappear from the netlist (HLS and logic synthesis both drop
dead logic). Walking the layers backwards from the model outputs marks each operation's
output elements as live or not, as flat boolean masks in C order (so Flatten and Reshape
pass masks through unchanged). ``None`` means "all live" (a model output, or an operation
whose input-output map the facts do not describe, e.g. a convolution's spatial window).
"""

from __future__ import annotations

import numpy as np

from ..conversion.ops import CMVM, Cast, Op, Relu, Table

# Layers without operations whose output is their input in the same C order (masks pass
# through); other layers without operations move values (padding, cropping, up-sampling,
# permute, concatenate), so their inputs are conservatively all live.
SAME_ORDER = frozenset({"Flatten", "Reshape", "Dropout"})


def _widths(kif: dict) -> np.ndarray:
    return (np.asarray(kif["k"]) + np.asarray(kif["i"]) + np.asarray(kif["f"])).ravel()


def live_inputs(op: Op, live_out):
    """The input mask of ``op`` given its output mask. An operation with ``reads_previous`` False
    (inside a layer of several branches, e.g. attention) does not read the operation listed
    before it: nothing is known of that one's used outputs."""
    if not op.reads_previous:
        return None
    if isinstance(op, Cast):
        needed = _widths(op.out) > 0  # a zero-width result needs no input
        return needed if live_out is None else needed & live_out
    if isinstance(op, (Relu, Table)):
        return live_out
    if isinstance(op, CMVM) and int(op.positions) == 1:
        kernel = np.asarray(op.kernel)
        if live_out is not None:
            kernel = kernel[:, live_out]
        return np.any(kernel != 0, axis=1)
    return None


def _fits(mask, size) -> bool:
    return mask is not None and mask.size == size


def output_size(op: Op) -> int:
    return op.output_size()


def operation_liveness(layers) -> list[list]:
    """Per layer, per operation: the live mask of the operation's output (or None)."""
    consumers: dict[int, list] = {}
    result: list[list] = [[] for _ in layers]
    for index in reversed(range(len(layers))):
        facts = layers[index]
        masks = consumers.get(index)
        live = None if not masks or any(m is None for m in masks) else np.logical_or.reduce(masks)
        if not facts.ops and facts.layer_class not in SAME_ORDER:
            live = None
        per_op = [None] * len(facts.ops)
        for j in reversed(range(len(facts.ops))):
            op = facts.ops[j]
            live = live if _fits(live, output_size(op)) else None
            per_op[j] = live
            live = live_inputs(op, live)
        result[index] = per_op
        for producer in facts.inputs:
            if producer >= 0:
                consumers.setdefault(producer, []).append(live)
    return result
