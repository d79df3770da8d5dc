"""The layer families, one module each; importing them fills the registries of ``family.py``.

A family module owns everything keyed by its classes: the precision rule (``@rule``), the
hls4ml handler (``@handler`` / ``@keras_handler``), the option limits (``limits(...)``) and the
RTL trace (``@trace``), all from ``..family``; its helpers come from ``_stages.py`` and
``_trace.py``. A family imports only leaves (``family``, ``option``, ``ops``, ``records``, the
template specs, ``_stages``, other families), never a driver (``precision``, ``hls_handlers``,
``layer_options``, ``stream``, ``project``, ``facts``): ``tests/test_import_order.py`` checks it.
Registering a class twice raises ``hgq_chip.registry.DuplicateRegistrationError``;
``tests/test_registries.py`` checks that every ruled class also has a handler (or hls4ml's own,
listed there) and operations in the estimate.
"""

from . import activation, conv, dense, merge, movement, pooling, structure  # noqa: F401
from . import adaqat  # noqa: F401,E402  (AdaQAT layers: handler registration only)
from . import asq_post  # noqa: F401,E402  (ASQDense: LSQ/ASQ inputs, LSQ/POT/POST weights)
from . import softmax  # noqa: F401,E402  (HSoftmax: our own table template)
from . import einsum_dense  # noqa: F401,E402  (HEinsumDense: hls4ml's Dense on the flattened view)
from . import attention  # noqa: F401,E402  (HMultiHeadAttention: projections, hls4ml Einsum, our softmax)
from . import layernorm  # noqa: F401,E402  (HLayerNormalization: our own rsqrt-table template)
from . import inference  # noqa: F401,E402  (identity at inference: noise, dropout, augmentation; ReLU, Activation)
from . import separable  # noqa: F401,E402  (HSeparableConv1D/2D: depthwise, intermediate cast, pointwise)
