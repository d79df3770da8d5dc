"""Precision rules for HQuantize and HDense (HDenseBatchNorm too, through HDense)."""

from __future__ import annotations

import numpy as np

from ...fixed.interval import Interval
from ...layers import HDense, HQuantize
from ..precision import quantizer_name, quantizer_stage, rule, weight_table, weighted_layer_record
from ..records import LayerRecord


@rule(HQuantize)
def hquantize_rule(layer, intervals):
    stage, out = quantizer_stage(layer.name, layer.q, layer.output.shape[1:])
    return LayerRecord(layer.name, type(layer).__name__, out, [stage])


@rule(HDense)
def hdense_rule(layer, intervals):
    stage, x = quantizer_stage(quantizer_name(layer, layer.iq), layer.iq, layer.input.shape[1:])
    kernel = weight_table(layer.kq, layer.fused_kernel())
    products = Interval(x.lo[..., None], x.hi[..., None], x.f[..., None]) * Interval.of_constants(kernel.values)
    magnitudes = np.maximum(np.abs(products.lo), np.abs(products.hi)).sum(axis=-2)
    return weighted_layer_record(layer, stage, kernel, products.sum(axis=-2), magnitudes)
