"""ASQDense (and the shared part of ASQConv1D/2D): LSQ/ASQ activations, LSQ/POT/POST weights.

Source: "Precision Neural Network Quantization via Learnable Adaptive Modules", arXiv:2504.17263.

The input quantizer turns x into b-bit integer codes m and a per-sample scale
s' = β·2**e_a (β ≡ 1 for LSQ); the kernel is "units" times 2**e_w: b-bit integers for LSQ,
±u_j (shifts of 1 or of c) for POT/POST. Then

    y = (m ⊛ units) · β · 2**(e_a + e_w) + bias       (⊛: matmul or convolution)

In training the layer fake-quantizes x and w in float32 (STE, LSQ gradients). At
inference it computes exactly the fixed-point steps above in float64, which the firmware
repeats bit for bit (``hgq_chip/conversion/rules/asq_post.py``).

Bit-widths are chosen up front (LSQ/ASQ/POST have no trainable bit-width), so the layer
adds no EBOPs term to the loss; it owns ``beta`` only so ``hgq_chip.cost.set_beta`` works on
models that mix it with HGQ layers.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from ..errors import UnsupportedConfigurationError
from ..fixed.interval import Interval
from ..fixed.minimal import bits_of_constant
from ..fixed.quantize_ops import pow2
from ..quantizers.asq import ASQActivationQuantizer
from ..quantizers.dtype_policy import check_float64_available
from ..quantizers.hgq import WeightQuantizer
from ..quantizers.lsq import LSQActivationQuantizer, LSQWeightQuantizer
from ..quantizers.post import LogWeightQuantizer, level_shift_and_odd
from .base import QuantizedLayerMixin, merged_config

DEFAULT_ASQ_INPUT = {"kind": "asq", "bits": 4, "signed": False}
DEFAULT_ASQ_KERNEL = {"kind": "post", "bits": 4}
# Biases stay fixed point with 8 fractional bits (not trained: nothing would hold them down).
DEFAULT_ASQ_BIAS = {"granularity": "per-layer", "init_f": 8.0, "rounding": "RND", "trainable_f": False}

ACTIVATION_KINDS = ("lsq", "asq")
WEIGHT_KINDS = ("lsq", "pot", "post")


def make_activation_quantizer(config: dict, dtype=None):
    options = dict(config, dtype=dtype)
    kind = options.pop("kind")
    if kind not in ACTIVATION_KINDS:
        raise ValueError(f"input_quantizer kind must be one of {ACTIVATION_KINDS}, got {kind!r}")
    cls = ASQActivationQuantizer if kind == "asq" else LSQActivationQuantizer
    return cls(name="iq", **options)


def make_weight_quantizer(config: dict, dtype=None):
    options = dict(config, dtype=dtype)
    kind = options.pop("kind")
    if kind not in WEIGHT_KINDS:
        raise ValueError(f"kernel_quantizer kind must be one of {WEIGHT_KINDS}, got {kind!r}")
    if kind == "lsq":
        return LSQWeightQuantizer(name="kq", **options)
    return LogWeightQuantizer(kind=kind, name="kq", **options)


class ASQPostMixin(QuantizedLayerMixin):
    """What ASQDense and ASQConv1D/2D share: quantizers, exact inference, EBOPs, overhead.

    The layer supplies ``_apply_kernel`` (matmul or convolution) and the element counts of
    one input and one output sample; the kernel is seen as a matrix (taps x channels, units).
    """

    def _make_quantizers(self, input_quantizer, kernel_quantizer, bias_quantizer, beta0):
        check_float64_available(self, "computes its exact inference in float64 (codes times levels, the ASQ rescale)")
        self.input_quantizer_config = merged_config(DEFAULT_ASQ_INPUT, input_quantizer)
        self.kernel_quantizer_config = merged_config(DEFAULT_ASQ_KERNEL, kernel_quantizer)
        self.bias_quantizer_config = merged_config(DEFAULT_ASQ_BIAS, bias_quantizer)
        self.beta0 = float(beta0)
        self.iq = make_activation_quantizer(self.input_quantizer_config, self.dtype_policy)
        try:
            self.kq = make_weight_quantizer(self.kernel_quantizer_config, self.dtype_policy)
        except UnsupportedConfigurationError as error:
            raise UnsupportedConfigurationError(f"layer {self.name!r} ({type(self).__name__}): {error}") from None
        self.bq = WeightQuantizer(name="bq", dtype=self.dtype_policy, **self.bias_quantizer_config)

    def _build_asq_post(self, input_shape):
        self._build_quantizers(input_shape, self.kernel.shape, self.bias.shape if self.use_bias else None)
        self.kq.initialize_from(self.kernel.numpy())

    # ---- what kind of layer this is -------------------------------------------------------------
    @property
    def adaptive(self) -> bool:
        return isinstance(self.iq, ASQActivationQuantizer)

    @property
    def weight_kind(self) -> str:
        return self.kernel_quantizer_config["kind"]

    @property
    def n_out_channels(self) -> int:
        return int(self.kernel.shape[-1])

    def output_exponent(self) -> int:
        """E with y = acc · β · 2**E + bias."""
        return self.iq.exponent() + self.kq.scale_exponent()

    def kernel_units(self) -> np.ndarray:
        """The kernel in units of 2**e_w: integers (LSQ) or ±u_j / 0 (POT, POST); exact."""
        return self.kq.units(self.kernel.numpy())

    def quantized_bias(self) -> np.ndarray:
        return self.bq.quantized(self.bias.numpy()) if self.use_bias else np.zeros(self.n_out_channels)

    def accumulator_interval(self) -> Interval:
        """Bounds of one accumulator per output channel (every code m in [Q_n, Q_p])."""
        units = Interval.of_constants(self.kernel_units().reshape(-1, self.n_out_channels))
        codes = Interval(float(self.iq.q_n), float(self.iq.q_p), 0)
        return (codes * units).sum(axis=0)

    # ---- forward ----------------------------------------------------------------------------------
    def call(self, inputs, training=None):
        if training:
            x = self.iq(inputs, training=True)
            y = self._apply_kernel(x, self.kq(self.kernel))
            if self.use_bias:
                y = y + self.bq(self.bias)
        else:
            y = ops.cast(self._exact_inference(inputs), inputs.dtype)
        return self.activation(y)

    def _exact_inference(self, inputs):
        """The firmware's fixed-point steps in float64 (exact: the converter checks widths < 53 bits)."""
        x64 = ops.cast(inputs, "float64")
        codes, beta = self.iq.codes_exact(x64)
        weight_exponent = self.kq.exponent_tensor()
        units = ops.cast(self.kq(self.kernel) * pow2(-weight_exponent), "float64")
        acc = self._apply_kernel(codes, units)
        y = acc * ops.cast(pow2(self.iq.exponent_tensor() + weight_exponent), "float64")
        if beta is not None:
            y = y * beta
        if self.use_bias:
            y = y + ops.cast(self.bq(self.bias), "float64")
        return y

    # ---- cost ---------------------------------------------------------------------------------------
    def ebops_exact(self) -> int:
        """Bit operations of the firmware's arithmetic (see ``ebops_terms``)."""
        return int(sum(self.ebops_terms().values()))

    def ebops_terms(self) -> dict[str, int]:
        """EBOPs by part, summed over output positions. Uniform weights: Σ b_a·bits(k_ij), as HGQ
        counts constant multiplications. POT/POST: a shift costs nothing, so each nonzero weight
        costs one add of its operand's width (b_a, or b_a + F for x·c), plus the shared x·c
        product b_a·F per input element that needs it. ASQ adds the per-output rescale acc·β."""
        units = self.kernel_units()
        b_a = self.iq.bits
        positions = self.n_output_elements() // self.n_out_channels
        terms = {}
        if self.weight_kind == "lsq":
            terms["products"] = int(positions * b_a * bits_of_constant(units).sum())
        else:
            codes = self.kq.codes(self.kernel.numpy())
            _, odd = level_shift_and_odd(codes, self.weight_kind)
            live = codes != 0
            f_c = self.kq.sqrt2_bits
            terms["shift_adds"] = int(positions * np.sum(live * np.where(odd, b_a + f_c, b_a)))
            # Kernel as (taps, input channels, units): an input element needs x·c when any
            # tap of its channel has a live odd level.
            channels_needing_c = (live & odd).reshape(-1, codes.shape[-2], codes.shape[-1]).any(axis=(0, 2))
            elements_per_channel = self.n_input_elements() // codes.shape[-2]
            terms["shared_sqrt_half_products"] = int(
                b_a * f_c * elements_per_channel * np.count_nonzero(channels_needing_c)
            )
        if self.adaptive:
            acc_width = Interval.covering(self.accumulator_interval()).to_format()[()].width
            terms["rescale"] = int(self.n_output_elements() * acc_width * (self.iq.beta_bits + 1))
        return terms

    def ebops_surrogate(self):
        """The exact value as a constant: with fixed bit-widths there is nothing to differentiate."""
        return ops.convert_to_tensor(float(self.ebops_exact()))

    def adapter_overhead(self) -> dict:
        """Extra parameters and operations of ASQ over LSQ for this layer (paper Table 1 style).

        Parameters: adapter weights and the 1/β table entries. Operations: adapter multiplies,
        the per-input x·r product and the per-output acc·β rescale (LSQ needs only shifts).
        """
        n_in, n_out = self.n_input_elements(), self.n_output_elements()
        kernel_size = int(np.prod(self.kernel.shape))
        layer_parameters = kernel_size + (self.n_out_channels if self.use_bias else 0)
        layer_macs = kernel_size * (n_out // self.n_out_channels)
        if not self.adaptive:
            adapter_parameters = table_entries = multiplies = adds = 0
        else:
            h = self.iq.adapter_hidden
            adapter_parameters = self.iq.adapter_parameters()
            table_entries = len(self.iq.reciprocal_table())
            multiplies = (2 * h if h else 1) + n_in + n_out
            adds = (n_in - 1) + (2 * h if h else 1)
        return {
            "adapter_parameters": adapter_parameters,
            "table_entries": table_entries,
            "extra_multiplies": multiplies,
            "extra_adds": adds,
            "parameter_percent": 100.0 * (adapter_parameters + table_entries) / layer_parameters,
            "operation_percent": 100.0 * (multiplies + adds) / (2 * layer_macs),
        }

    def get_config(self):
        config = super().get_config()
        config.update(self._quantizer_config())
        return config


@keras.saving.register_keras_serializable(package="hgq_chip")
class ASQDense(ASQPostMixin, keras.layers.Dense):
    """``keras.layers.Dense`` with LSQ or ASQ input codes and LSQ, POT or POST weights.

    ``input_quantizer``: ``{"kind": "lsq"|"asq", "bits", "signed", "init_step", ...}`` (ASQ also
    takes ``adapter_hidden``, ``adapter_bits``, ``beta_bits``, ``reciprocal_bits``);
    ``kernel_quantizer``: ``{"kind": "lsq"|"pot"|"post", "bits", ...}`` (POST: ``sqrt2_bits``);
    ``bias_quantizer``: :class:`~hgq_chip.quantizers.WeightQuantizer` arguments.
    """

    def __init__(self, units, *args, input_quantizer=None, kernel_quantizer=None, bias_quantizer=None, beta0=0.0, **kwargs):
        super().__init__(units, *args, **kwargs)
        self._check_keras_options()
        self._make_quantizers(input_quantizer, kernel_quantizer, bias_quantizer, beta0)

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"{self.name}: ASQDense takes (batch, features) inputs, got {tuple(input_shape)}; Flatten first")
        super().build(input_shape)
        self._build_asq_post(input_shape)

    def _apply_kernel(self, x, kernel):
        return ops.matmul(x, kernel)

    def n_input_elements(self) -> int:
        return int(self.kernel.shape[0])

    def n_output_elements(self) -> int:
        return self.units
