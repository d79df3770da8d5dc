"""Every trainable layer class hgq_chip exports trains under ``fit`` with its family's callbacks.

The classes come from ``hgq_chip.layers.__all__`` and Keras' registry of hgq_chip layers,
so a new class is covered without editing this file (a class whose Keras parent no case
below knows fails, naming the class). Each class gets a tiny model (the layer, then a
float head), a short ``fit`` (2 epochs of 2 batches) with the callbacks its family uses,
and these checks: the loss of every batch is finite, every activation quantizer of the
layer recorded a range, and every quantizer with learned state (trainable variables, or
AdaQAT's bit-width N moved by the controller) changed it. The same runs under XLA
(``jit_compile=True``) for the AdaQAT family here and for every class under ``-m slow``.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import hgq_chip.layers
from hgq_chip.layers.adaqat import AdaQATLayerMixin
from hgq_chip.layers.asq_post import ASQPostMixin
from hgq_chip.testing.families import case_of_class
from hgq_chip.training import AdaQATController, EBOPsMetric, LogRampBeta, ResetRanges

pytestmark = pytest.mark.keras_level  # also run under JAX in CI (docs/backends.md, "Backends in CI")

EPOCHS = 2
SAMPLES = 32
BATCH = 16
N_CLASSES = 3

# Keras parent -> (per-sample input shape, variants: (id, constructor args, keyword args)).
# Most specific parent first: every hgq_chip layer is also a keras.layers.Layer. Only
# options every class of that parent accepts (ASQ convolutions refuse 'same' and dilation).
CONV_VARIANTS = (("", (3, 3), {}), ("strided", (3, 3), {"strides": 2}))
DEPTHWISE_VARIANTS = (("", (3,), {}), ("strided", (3,), {"strides": 2}), ("multiplier", (3,), {"depth_multiplier": 2}))
# Merges: called on two HDense branches of the input (build_model).
MERGES = (keras.layers.Add, keras.layers.Subtract, keras.layers.Multiply, keras.layers.Maximum, keras.layers.Minimum)
CASES_BY_PARENT = (
    (keras.layers.Conv2D, (5, 5, 2), CONV_VARIANTS),
    (keras.layers.Conv1D, (8, 2), CONV_VARIANTS),
    (keras.layers.DepthwiseConv2D, (5, 5, 2), DEPTHWISE_VARIANTS),
    (keras.layers.DepthwiseConv1D, (8, 2), DEPTHWISE_VARIANTS),
    (keras.layers.Dense, (6,), (("", (4,), {}),)),
    (keras.layers.Activation, (6,), (("relu", ("relu",), {}), ("tanh-table", ("tanh",), {}))),
    (MERGES, (6,), (("", (), {}),)),
    # Attention layers (Keras Layer subclasses): a sequence of 4 tokens x 6 features; self-attention.
    (hgq_chip.layers.HEinsumDense, (4, 6), (("", ("abc,cd->abd", (4, 5)), {}),)),
    (hgq_chip.layers.HMultiHeadAttention, (4, 6), (("", (2, 3), {}),)),
    (keras.layers.Layer, (6,), (("", (), {}),)),
)


def layer_classes() -> list[type]:
    """Layer classes exported by hgq_chip.layers or registered by its modules, by name."""
    exported = [getattr(hgq_chip.layers, name) for name in hgq_chip.layers.__all__]
    registered = [obj for obj in keras.saving.get_custom_objects().values()
                  if isinstance(obj, type) and obj.__module__.startswith("hgq_chip.layers")]
    classes = {cls for cls in exported + registered if isinstance(cls, type) and issubclass(cls, keras.layers.Layer)}
    return sorted(classes, key=lambda cls: cls.__name__)


def family(cls) -> str:
    if issubclass(cls, AdaQATLayerMixin):
        return "adaqat"
    if issubclass(cls, ASQPostMixin):
        return "asq"
    return "hgq"


def cases() -> list:
    """Per class: the variants of its nearest Keras parent in CASES_BY_PARENT, else (only the
    generic keras.layers.Layer fits) its family's FamilyCase (hgq_chip/testing/families)."""
    found = []
    for cls in layer_classes():
        case = case_of_class(cls)
        specific = any(issubclass(cls, parent) for parent, _, _ in CASES_BY_PARENT[:-1])
        if case is not None and not specific:
            found.append(pytest.param(cls, case.shape_of(cls), case.args, case.kwargs, id=cls.__name__))
            continue
        for parent, shape, variants in CASES_BY_PARENT:
            if issubclass(cls, parent):
                for variant, args, kwargs in variants:
                    case_id = f"{cls.__name__}-{variant}" if variant else cls.__name__
                    found.append(pytest.param(cls, shape, args, kwargs, id=case_id))
                break
    return found


def build_model(cls, shape, args, kwargs, seed=0):
    """Input -> the layer under test (merges: of two HDense branches) -> Flatten -> float Dense head."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    if issubclass(cls, MERGES):
        branches = [hgq_chip.layers.HDense(shape[-1], name=f"branch{i}")(inputs) for i in range(2)]
        layer = cls(*args, name="under_test", **kwargs)
        x = layer(branches)
    elif issubclass(cls, hgq_chip.layers.HMultiHeadAttention):
        layer = cls(*args, name="under_test", **kwargs)
        x = layer(inputs, inputs)
    else:
        layer = cls(*args, name="under_test", **kwargs)
        x = layer(inputs)
    x = keras.layers.Flatten()(x) if len(x.shape) > 2 else x
    return keras.Model(inputs, keras.layers.Dense(N_CLASSES, name="head")(x)), layer


def callbacks_for(kind: str, data) -> list:
    """The callbacks each family's examples train with."""
    if kind == "hgq":
        return [ResetRanges(), LogRampBeta(1e-6, 1e-4, stop=EPOCHS - 1), EBOPsMetric()]
    if kind == "adaqat":
        return [AdaQATController(data, lam=1e-4, lr=1.0, every=1, batch_size=BATCH)]
    return []  # ASQ/POST: bit-widths are fixed up front; steps and adapters train by gradient


class BatchLosses(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


def learned_state(quantizer) -> list:
    """Variables training is meant to move: trainable ones, plus AdaQAT's N (its controller sets it)."""
    driven = [quantizer.bits] if hasattr(quantizer, "set_bits") else []
    return [v for v in quantizer.variables if v.trainable] + driven


def quantizers_of(layer) -> list:
    return list(layer.quantizers()) if hasattr(layer, "quantizers") else []


def train_and_check(cls, shape, args, kwargs, jit_compile: bool):
    model, layer = build_model(cls, shape, args, kwargs)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (SAMPLES,) + tuple(shape)).astype(np.float32)
    y = rng.integers(0, N_CLASSES, SAMPLES)
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit_compile)
    model(x[:2])  # build every variable before the snapshot
    quantizers = quantizers_of(layer)
    before = {id(v): np.array(v.numpy()) for q in quantizers for v in learned_state(q)}
    weights_before = [np.array(v.numpy()) for v in model.trainable_variables]
    losses = BatchLosses()
    kind = family(cls)
    model.fit(x, y, epochs=EPOCHS, batch_size=BATCH, verbose=0, callbacks=callbacks_for(kind, (x, y)) + [losses])

    name = f"{cls.__name__} ({kind})"
    assert len(losses.losses) == EPOCHS * SAMPLES // BATCH
    assert np.all(np.isfinite(losses.losses)), f"{name}: non-finite loss {losses.losses}"
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(weights_before, model.trainable_variables)), \
        f"{name}: no trainable variable moved"
    for q in quantizers:
        if hasattr(q, "record_range"):
            assert q.range_recorded, f"{name}: {q.name} recorded no activation range in training"
        state = learned_state(q)
        if state:
            moved = [v.name for v in state if not np.array_equal(before[id(v)], v.numpy())]
            assert moved, f"{name}: none of {q.name}'s bit-width/step variables {[v.name for v in state]} changed"
            assert all(np.all(np.isfinite(v.numpy())) for v in state), f"{name}: {q.name} has non-finite state"
    return model, layer


def test_every_exported_layer_class_has_a_training_case():
    covered = {param.values[0] for param in cases()}
    missing = [cls.__name__ for cls in layer_classes() if cls not in covered]
    assert not missing, f"no Keras parent in CASES_BY_PARENT fits {missing}: add a case for them"
    assert {"ADense", "AConv1D", "AConv2D", "HAdd", "HQuantize", "ASQConv2D"} <= {c.__name__ for c in covered}


@pytest.mark.parametrize(("cls", "shape", "args", "kwargs"), cases())
def test_layer_trains_with_fit_and_moves_its_bit_widths(cls, shape, args, kwargs):
    train_and_check(cls, shape, args, kwargs, jit_compile=False)


@pytest.mark.parametrize(("cls", "shape", "args", "kwargs"), [c for c in cases() if family(c.values[0]) == "adaqat"])
def test_adaqat_layer_trains_under_xla(cls, shape, args, kwargs):
    model, layer = train_and_check(cls, shape, args, kwargs, jit_compile=True)
    assert layer.bit_widths() != {"w": 8.0, "a": 8.0}  # the controller moved N (lam > 0)


@pytest.mark.slow
@pytest.mark.parametrize(("cls", "shape", "args", "kwargs"), [c for c in cases() if family(c.values[0]) != "adaqat"])
def test_layer_trains_under_xla(cls, shape, args, kwargs):
    train_and_check(cls, shape, args, kwargs, jit_compile=True)
