"""HActivation: keras Activation on quantized inputs; exact directly (relu, linear) or via a table.

relu and linear map fixed-point values to fixed-point values, so the layer only quantizes
its input: ``act(iq(x))``. Any other elementwise activation becomes a lookup table in
firmware: ``oq(T(iq(x)))`` with ``T(x) = fl32(act(x))``: the activation evaluated in NumPy
float64 at the exact input value and rounded once to float32 (also in a float64 model, which
holds the same float32 values). The table is computed once, backend-independently
(``layers/tables.py``), and the Keras forward pass (inference, training and calibration)
gathers from it by the input's code, so TensorFlow, JAX (with or without x64) and PyTorch give
the same bits, and the converter writes the same entries into the firmware (issue 33: the
backends' own float32 kernels differ in the last bit for some inputs, flipping ``oq``'s
rounding). In training the gradient is the backend activation's (a surrogate); the value is
the table's.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from ..errors import CalibrationError, UnsupportedLayerError
from ..fixed.format import FixedFormat
from ..quantizers.dtype_policy import check_exact_dtype_policy
from ..quantizers.hgq import ActivationQuantizer
from .base import DEFAULT_INPUT_QUANTIZER, EXACT_FUSED_ACTIVATIONS, merged_config
from .tables import DEFAULT_INTEGER_BITS, CodeTable, choose_grid, numpy_activation, with_surrogate_gradient

# A table's input may be at most this wide: 2**16 entries per table already cost many BRAMs.
MAX_TABLE_INPUT_BITS = 16

# keras.activations entries that mix elements (normalise or split an axis): no table can do them.
NON_ELEMENTWISE_ACTIVATIONS = ("softmax", "log_softmax", "sparsemax", "glu")

# A table's input saturates: wrapping would feed e.g. tanh a value of the opposite sign.
DEFAULT_TABLE_INPUT_QUANTIZER = {"granularity": "per-element", "init_f": 6.0, "rounding": "RND", "overflow": "SAT"}
# One output format per tensor: the firmware then needs a single table for all elements.
DEFAULT_OUTPUT_QUANTIZER = {"granularity": "per-layer", "init_f": 6.0, "rounding": "RND", "overflow": "SAT"}


def activation_name(activation) -> str:
    return getattr(activation, "__name__", str(activation))


def representable_values(fmt: FixedFormat) -> np.ndarray:
    """Every value of ``fmt`` in increasing order (one entry for a zero-width format: 0)."""
    scale = 2.0**fmt.f
    lo = int(round(fmt.min * scale))
    hi = int(round(fmt.max * scale))
    return np.arange(lo, hi + 1, dtype=np.float64) / scale


@keras.saving.register_keras_serializable(package="hgq_chip")
class HActivation(keras.layers.Activation):
    """``keras.layers.Activation`` with a quantized input and, for tables, a quantized output.

    Args:
        activation: as for ``keras.layers.Activation``; any elementwise activation.
        input_quantizer: ``ActivationQuantizer`` arguments for the input (``iq``). Default
            overflow is WRAP for relu/linear (as HDense's input) and SAT for tables.
        output_quantizer: ``ActivationQuantizer`` arguments for the table's output (``oq``);
            only for table activations (relu and linear outputs are already exact).

    It has no multiplications, so it contributes no EBOPs and has no ``beta``.

    Input shape: ``(batch, *features)``; output shape: the same. Raises
    :class:`~hgq_chip.errors.UnsupportedLayerError` for an activation that mixes elements
    (softmax, ...), ValueError for an ``output_quantizer`` on relu/linear, and
    :class:`~hgq_chip.errors.UnsupportedConfigurationError` for a dtype policy that does not
    compute in float32/float64.
    """

    def __init__(self, activation, input_quantizer=None, output_quantizer=None, **kwargs):
        super().__init__(activation, **kwargs)
        check_exact_dtype_policy(self)
        name = activation_name(self.activation)
        if name in NON_ELEMENTWISE_ACTIVATIONS:
            exact = "use hgq_chip.layers.HSoftmax (exact exp and inverse tables), or " if name == "softmax" else ""
            raise UnsupportedLayerError(
                f"{self.name}: activation {name!r} mixes elements and has no exact fixed-point table; "
                f"{exact}end the model with a linear output (e.g. HDense without activation) and take the "
                f"argmax / apply {name} outside the firmware"
            )
        self.uses_table = name not in EXACT_FUSED_ACTIVATIONS
        self.table_function = numpy_activation(name, self.name) if self.uses_table else None
        self.table = None
        if not self.uses_table and output_quantizer is not None:
            raise ValueError(
                f"{self.name}: activation {name!r} is exact on fixed-point inputs and has no output "
                f"quantizer; remove output_quantizer (or add an HQuantize layer after this one)"
            )
        input_defaults = DEFAULT_TABLE_INPUT_QUANTIZER if self.uses_table else DEFAULT_INPUT_QUANTIZER
        self.input_quantizer_config = merged_config(input_defaults, input_quantizer)
        self.iq = ActivationQuantizer(name="iq", dtype=self.dtype_policy, **self.input_quantizer_config)
        self.output_quantizer_config = None
        self.oq = None
        if self.uses_table:
            self.output_quantizer_config = merged_config(DEFAULT_OUTPUT_QUANTIZER, output_quantizer)
            self.oq = ActivationQuantizer(name="oq", dtype=self.dtype_policy, **self.output_quantizer_config)

    def build(self, input_shape):
        # Per-sample shape: tables are evaluated on all elements even when iq.f is shared.
        self.element_shape = tuple(int(d) for d in input_shape[1:])
        self.iq.build(input_shape)
        if self.oq is not None:
            self.oq.build(input_shape)
            self.table = CodeTable(self, "activation", self.table_function)
            self.iq.refresh_after_load(self)
            self.refresh_tables()

    def call(self, inputs, training=None):
        x = self.iq(inputs, training=training)
        if not self.uses_table:
            return self.activation(x)
        y = with_surrogate_gradient(self.table.lookup(x), ops.cast(self.activation(x), x.dtype))
        return self.oq(y, training=training)

    # ---- the table --------------------------------------------------------------------------

    def table_grid(self) -> tuple[int, int]:
        """(F, lowest code) of the Keras table: every value of the input quantizer's current
        covering format lies on it (``tables.choose_grid``); without a recorded range it covers
        [-16, 16) at the format's resolution."""
        f = int(np.max(self.iq.rounded_f()))
        if self.iq.range_recorded:
            fmt = self.iq.fixed_format().covering()
            lo, hi = float(fmt.min), float(fmt.max)
        else:
            lo, hi = -(2.0**DEFAULT_INTEGER_BITS), 2.0**DEFAULT_INTEGER_BITS - 2.0**-f
        return choose_grid(f, lo, hi)

    def refresh_tables(self) -> int:
        """Recompute the table for the current input format (``tables.refresh_tables``); 1 if it changed."""
        if self.table is None:
            return 0
        return int(self.table.refresh(*self.table_grid()))

    def save_own_variables(self, store):
        """Nothing: the layer's own variables are its table, derived from its quantizers (whose
        variables are saved) and recomputed when they are loaded."""

    def load_own_variables(self, store):
        """Nothing to load (see ``save_own_variables``); the table follows the loaded quantizers."""

    def quantizers(self):
        return [self.iq] if self.oq is None else [self.iq, self.oq]

    # ---- what the converter uses to build the table -------------------------------------

    def _check_table_layer(self):
        if not self.uses_table:
            raise ValueError(f"{self.name}: {activation_name(self.activation)!r} is exact and needs no table")
        missing = [q.name for q in self.quantizers() if not q.built or not q.calibrated]
        if missing:
            raise CalibrationError(
                f"{self.name}: quantizer(s) {missing} have no recorded range; run "
                f"hgq_chip.calibrate(model, x) before building tables"
            )

    def table_input_format(self, element=None) -> FixedFormat:
        """The input format a table must cover: one element's (index into ``iq.f``'s shape),
        or by default the covering format of all elements, which holds every element's values."""
        self._check_table_layer()
        formats = self.iq.fixed_format()
        return formats.covering() if element is None else formats[element]

    def table_size(self, element=None) -> int:
        """Number of table entries: 2**(input width)."""
        return 2 ** self.table_input_format(element).width

    def check_table_size(self, element=None, max_input_bits: int = MAX_TABLE_INPUT_BITS) -> None:
        fmt = self.table_input_format(element)
        if fmt.width > max_input_bits:
            raise UnsupportedLayerError(
                f"{self.name}: the {activation_name(self.activation)} table's input {fmt.to_hls()} is "
                f"{fmt.width} bits wide ({2**fmt.width} entries); at most {max_input_bits} bits are "
                f"supported. Narrow the input: lower input_quantizer init_f, raise beta, or "
                f"calibrate on data without outliers"
            )

    def table_inputs(self, element=None) -> np.ndarray:
        """Every representable quantized input, increasing, as float64 (1-D).

        With ``element=None`` these are the covering format's values, a superset of each
        element's; evaluating an element at a value outside its own format is harmless (the
        firmware never looks it up) and equals what this layer computes for that input.
        """
        self.check_table_size(element)
        return representable_values(self.table_input_format(element))

    def table_outputs(self, inputs) -> np.ndarray:
        """``oq(fl32(act(x)))`` at exact input values x (1-D float64 in and out): the firmware
        table's entries, from the same NumPy function the Keras table holds (``oq``: the layer's
        uniform output quantizer, an exact op)."""
        self._check_table_layer()
        inputs = np.asarray(inputs, np.float64)
        y = self.table.entries(inputs).reshape((-1,) + (1,) * len(self.element_shape))
        y = np.broadcast_to(y, (len(inputs),) + self.element_shape).astype(self.compute_dtype)
        out = np.asarray(ops.convert_to_numpy(self.oq(ops.convert_to_tensor(y), training=False)), np.float64)
        return out.reshape(len(inputs), -1)[:, 0]

    def evaluate_table(self, inputs, batch_size: int = 4096) -> np.ndarray:
        """Run this layer's inference path (``training=False``) on table inputs.

        ``inputs`` has shape (N,) (each value fed to every element) or (N,) + element shape.
        Returns float64 outputs of shape (N,) + element shape, bit-identical to ``call``.
        """
        self._check_table_layer()
        self.refresh_tables()
        inputs = np.asarray(inputs, dtype=np.float64)
        if inputs.ndim == 1:
            inputs = inputs.reshape((-1,) + (1,) * len(self.element_shape))
        values = np.broadcast_to(inputs, (inputs.shape[0],) + self.element_shape)
        if not np.array_equal(values.astype(np.float32), values):
            raise ValueError(f"{self.name}: table inputs must be exact float32 values")
        outputs = [
            ops.convert_to_numpy(self(values[start : start + batch_size].astype(np.float32), training=False))
            for start in range(0, values.shape[0], batch_size)
        ]
        return np.concatenate(outputs).astype(np.float64)

    def get_config(self):
        config = super().get_config()
        config.update(input_quantizer=self.input_quantizer_config, output_quantizer=self.output_quantizer_config)
        return config
