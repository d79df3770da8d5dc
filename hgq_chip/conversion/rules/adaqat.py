"""AdaQAT layers convert through the HDense/HConv rules (found along the class hierarchy);
hls4ml looks handlers up by exact class name, so they need their own handler entry."""

from __future__ import annotations

from ...layers.adaqat import ADAQAT_LAYERS
from ..hls_handlers import handle_weighted, handler

handler(*ADAQAT_LAYERS)(handle_weighted)
