"""Every quantized layer keeps its Keras parent's constructor arguments (larq style).

For each H layer and each Keras class it stands in for, every ``__init__`` parameter of
that class is either given a non-default value -- which must reach ``get_config`` exactly
as the Keras class itself serialises it and survive ``from_config`` -- or listed as
rejected with a ValueError (what the firmware cannot do), or, for a secondary parent,
declared not applicable with a reason. A parameter Keras adds later fails the coverage
check until it is handled. To cover a new layer, append an ``ArgCase`` to ``CASES``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import keras
import pytest

from hgq_chip import layers as L
from hgq_chip.layers import (
    HConv1D,
    HConv1DBatchNorm,
    HConv2D,
    HConv2DBatchNorm,
    HDense,
    HDenseBatchNorm,
)

pytestmark = pytest.mark.keras_level  # also run under JAX in CI (docs/backends.md, "Backends in CI")

# Non-default values valid for Dense and Conv alike (activation: only exact fused ones).
COMMON = dict(
    activation="relu",
    use_bias=False,
    kernel_initializer="he_normal",
    bias_initializer="ones",
    kernel_regularizer="l2",
    bias_regularizer="l1",
    activity_regularizer="l1",
    kernel_constraint="non_neg",
    bias_constraint="non_neg",
    name="custom_name",
    trainable=False,
)
DENSE_REJECTED = [
    dict(lora_rank=2, lora_alpha=4),
    dict(quantization_config=keras.quantizers.Int8QuantizationConfig()),
]
CONV_VALUES = [
    dict(COMMON, strides=2, padding="same", data_format="channels_last", groups=1),
    dict(dilation_rate=2),
]
CONV_REJECTED = [dict(data_format="channels_first"), dict(groups=2), dict(lora_rank=2)]
BATCHNORM_VALUES = dict(
    momentum=0.9,
    epsilon=1e-2,
    center=False,
    scale=False,
    beta_initializer="ones",
    gamma_initializer="zeros",
    moving_mean_initializer="ones",
    moving_variance_initializer="zeros",
    beta_regularizer="l2",
    gamma_regularizer="l1",
    beta_constraint="non_neg",
    gamma_constraint="non_neg",
)
BATCHNORM_NOT_APPLICABLE = {
    "axis": "the fold is per output channel, always the last axis",
    "renorm": "batch renormalisation has no folded fixed-point form",
    "renorm_clipping": "batch renormalisation has no folded fixed-point form",
    "renorm_momentum": "batch renormalisation has no folded fixed-point form",
    "synchronized": "cross-replica statistics are a training-distribution concern, not supported",
}
QUANTIZER_ARGS = dict(
    input_quantizer={"granularity": "per-channel", "init_f": 3.0},
    kernel_quantizer={"init_f": 5.0},
    bias_quantizer={"rounding": "TRN"},
    beta0=1e-5,
)


@dataclass
class ArgCase:
    h_class: type
    parent: type
    required: dict
    values: list  # several dicts when some non-default values exclude each other
    rejected: list = field(default_factory=list)
    # Further Keras classes whose arguments the layer also takes: (class, {param: reason not applicable}).
    extra_parents: list = field(default_factory=list)
    own_args: dict = field(default_factory=dict)  # the layer's own (non-Keras) arguments


CASES = [
    ArgCase(HDense, keras.layers.Dense, dict(units=3), [COMMON], DENSE_REJECTED, own_args=QUANTIZER_ARGS),
    ArgCase(HConv1D, keras.layers.Conv1D, dict(filters=4, kernel_size=2), CONV_VALUES,
            CONV_REJECTED + [dict(padding="causal")], own_args=QUANTIZER_ARGS),
    ArgCase(HConv2D, keras.layers.Conv2D, dict(filters=4, kernel_size=(3, 2)), CONV_VALUES, CONV_REJECTED,
            own_args=QUANTIZER_ARGS),
    ArgCase(HDenseBatchNorm, keras.layers.Dense, dict(units=3), [dict(COMMON, **BATCHNORM_VALUES)], DENSE_REJECTED,
            [(keras.layers.BatchNormalization, BATCHNORM_NOT_APPLICABLE)], QUANTIZER_ARGS),
    ArgCase(HConv1DBatchNorm, keras.layers.Conv1D, dict(filters=4, kernel_size=2),
            [dict(CONV_VALUES[0], **BATCHNORM_VALUES), CONV_VALUES[1]], CONV_REJECTED,
            [(keras.layers.BatchNormalization, BATCHNORM_NOT_APPLICABLE)], QUANTIZER_ARGS),
    ArgCase(HConv2DBatchNorm, keras.layers.Conv2D, dict(filters=4, kernel_size=(3, 2)),
            [dict(CONV_VALUES[0], **BATCHNORM_VALUES), CONV_VALUES[1]], CONV_REJECTED,
            [(keras.layers.BatchNormalization, BATCHNORM_NOT_APPLICABLE)], QUANTIZER_ARGS),
]


def init_params(cls) -> set:
    return {
        name
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def parents(case):
    return [(case.parent, {})] + list(case.extra_parents)


def keras_config(cls, kwargs):
    """The config the Keras class itself writes for the arguments it accepts."""
    accepted = init_params(cls) | {"name", "trainable"}
    return cls(**{k: v for k, v in kwargs.items() if k in accepted}).get_config()


def case_id(case):
    return case.h_class.__name__


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_every_parent_argument_is_covered(case):
    covered = set(case.required)
    for values in case.values + case.rejected:
        covered |= set(values)
    for parent, not_applicable in parents(case):
        missing = init_params(parent) - covered - set(not_applicable)
        assert not missing, f"{case.h_class.__name__}: {parent.__name__} arguments {sorted(missing)} are not tested"
        assert set(not_applicable) <= init_params(parent)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_arguments_round_trip_as_keras_writes_them(case):
    rejected_keys = {k for r in case.rejected for k in r}
    for values in case.values:
        kwargs = dict(case.required, **values)
        config = case.h_class(**kwargs).get_config()
        restored = case.h_class.from_config(config).get_config()
        assert restored == config
        for parent, _ in parents(case):
            required = {k: v for k, v in case.required.items() if k in init_params(parent)}
            expected = keras_config(parent, kwargs)
            default = keras_config(parent, required)
            for key in (set(kwargs) & (init_params(parent) | {"name", "trainable"})) - set(case.required):
                assert config[key] == expected[key], key
                assert restored[key] == expected[key], key
                # A value equal to Keras' default proves nothing unless the other values are rejected.
                assert expected[key] != default.get(key) or key in rejected_keys, key


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_unsupported_arguments_raise_value_error(case):
    for values in case.rejected:
        kwargs = dict(case.required, **values)
        case.parent(**{k: v for k, v in kwargs.items() if k in init_params(case.parent) | {"lora_rank"}})
        with pytest.raises(ValueError):
            case.h_class(**kwargs)


@pytest.mark.parametrize("case", [c for c in CASES if c.own_args], ids=case_id)
def test_own_arguments_round_trip(case):
    config = case.h_class(**case.required, **case.own_args).get_config()
    restored = case.h_class.from_config(config).get_config()
    for key, value in case.own_args.items():
        if isinstance(value, dict):
            assert value.items() <= config[key].items(), key
        else:
            assert config[key] == value, key
        assert restored[key] == config[key], key


@pytest.mark.parametrize("make", [
    lambda: L.HConv1D(2, 3, padding="causal", name="conv"),
    lambda: L.HDepthwiseConv1D(3, padding="causal", name="conv"),
    lambda: L.HSeparableConv1D(2, 3, padding="causal", name="conv"),
    lambda: L.HSeparableConv1D(2, 3, 1, "causal", name="conv"),  # padding given by position
], ids=["conv", "depthwise", "separable", "separable-positional"])
def test_causal_padding_names_the_layer_and_the_zero_padding_fix(make):
    """Keras' DepthwiseConv1D/SeparableConv1D refuse 'causal' in their own constructor with a message
    naming neither the layer nor a fix: ours come first."""
    with pytest.raises(ValueError, match=r"conv: padding='causal' is not supported.*ZeroPadding1D\(\(k - 1, 0\)\)"):
        make()


@pytest.mark.parametrize("bits", [0, 25, 2.5, True])
def test_layer_normalization_takes_a_whole_number_of_mean_factor_bits(bits):
    from hgq_chip.errors import UnsupportedLayerError

    with pytest.raises(UnsupportedLayerError, match=r"whole number of mean_factor_bits.*give 8 \(the default\)"):
        L.HLayerNormalization(mean_factor_bits=bits)
    assert L.HLayerNormalization(mean_factor_bits=8.0).mean_factor_bits == 8
