"""Precision rules, one module per family of layers; importing them registers them.

A new layer type gets a rule here (``@rule(LayerClass)`` from ``..precision``) and an hls4ml
handler (``@handler(LayerClass)`` from ``..hls_handlers``); registering a class twice raises
``hgq_chip.registry.DuplicateRegistrationError``. ``tests/test_registries.py`` checks that every
ruled class also has a handler (or hls4ml's own, listed there) and operations in the estimate.
"""

from . import activation, conv, dense, merge, movement, pooling, structure  # noqa: F401
from . import adaqat  # noqa: F401,E402  (AdaQAT layers: handler registration only)
from . import asq_post  # noqa: F401,E402  (ASQDense: LSQ/ASQ inputs, LSQ/POT/POST weights)
from . import softmax  # noqa: F401,E402  (HSoftmax: our own table template)
from . import einsum_dense  # noqa: F401,E402  (HEinsumDense: hls4ml's Dense on the flattened view)
from . import attention  # noqa: F401,E402  (HMultiHeadAttention: projections, hls4ml Einsum, our softmax)
from . import inference  # noqa: F401,E402  (identity at inference: noise, dropout, augmentation; ReLU, Activation)
