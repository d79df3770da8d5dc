"""AdaQAT layers convert through the HDense/HConv rules, limits and traces (found along the class
hierarchy); hls4ml looks handlers up by exact class name, so they need their own handler entry."""

from __future__ import annotations

from ...layers.adaqat import ADAQAT_LAYERS
from ..family import handler
from .dense import handle_weighted

handler(*ADAQAT_LAYERS)(handle_weighted)
