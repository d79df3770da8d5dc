"""EBOPs of hgq_chip and HGQ2 MLPs under both projects' counting conventions.

The two projects count EBOPs (sum over multiplications of input bits x weight bits, HGQ
arXiv:2405.00645) differently:

- hgq_chip (``hgq_chip.ebops``): each operand's full two's-complement width k + i + f, sign
  bit included (a weight of -3 at f = 0 is 3 bits, +3 is 2); no bias term.
- HGQ2 (``hgq.utils.trace_minmax``, the layers' ``_compute_ebops``): the quantizers' ``bits``,
  which for its default weight (KBI, SAT_SYM) and activation (KIF, WRAP) quantizers is
  b = i + f, the sign bit excluded; plus, per layer, the mean bias bits times the number of
  outputs.

A front is only comparable with another counted the same way, so ``pareto_mnist16.py`` counts
every point both ways. Only Dense-like layers (the benchmark's MLPs) are handled here.
"""

from __future__ import annotations

import numpy as np

from hgq_chip.fixed.minimal import ceil_log2, integer_bits
from hgq_chip.model_walk import iter_costed_layers


def _magnitude_bits(q: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Bits of |q| * 2**f (an integer), i.e. i + f without the sign; 0 for q == 0."""
    m = np.abs(np.asarray(q, np.float64)) * 2.0 ** np.asarray(f, np.float64)
    return np.where(m == 0, 0, ceil_log2(np.maximum(m, 1.0) + 1.0))


def hgq_chip_model_in_hgq2_convention(model) -> int:
    """An hgq_chip model's EBOPs counted as HGQ2 counts: magnitude bits only, plus the bias term."""
    total = 0.0
    for layer in iter_costed_layers(model):
        fmt = layer.iq.fixed_format()
        bits_in = np.where(fmt.width > 0, fmt.width - fmt.k, 0)
        bits_in = np.broadcast_to(bits_in, bits_in.shape[:-1] + (layer.kernel.shape[0],))
        kernel = layer.fused_kernel()
        bits_w = _magnitude_bits(layer.kq.quantized(kernel), np.broadcast_to(layer.kq.rounded_f(), kernel.shape))
        total += float(np.sum(bits_in @ bits_w))
        bias = layer.fused_bias()
        if bias is not None:
            bits_b = _magnitude_bits(layer.bq.quantized(bias), np.broadcast_to(layer.bq.rounded_f(), bias.shape))
            total += float(np.mean(bits_b)) * layer.units
    return round(total)


def hgq2_model_in_hgq_chip_convention(model) -> int:
    """A traced HGQ2 QDense model's EBOPs counted as hgq_chip counts: full widths, no bias term."""
    from keras import ops

    total = 0
    for layer in model.layers:
        if not getattr(layer, "enable_ebops", False):
            continue
        n_in = layer.kernel.shape[0]
        k, i, f = (np.asarray(ops.convert_to_numpy(v), np.float64) for v in layer.iq.quantizer.kif)
        k, i, f = (np.broadcast_to(np.reshape(v, (-1,)), (n_in,)) for v in (k, i, f))
        bits_in = np.where(i + f > 0, k + i + f, 0)
        q = np.asarray(ops.convert_to_numpy(layer.qkernel), np.float64)
        fw = np.broadcast_to(np.asarray(ops.convert_to_numpy(layer.kq.quantizer.f), np.float64), q.shape)
        kw, iw = integer_bits(q, fw.astype(np.int64))
        bits_w = np.where(q == 0, 0, kw + iw + fw)
        total += int(np.sum(bits_in @ bits_w))
    return total
