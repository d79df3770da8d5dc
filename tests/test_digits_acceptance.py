"""Acceptance (issue 3): with a log-ramped beta on sklearn digits, exact EBOPs fall at least
5x from their calibrated initial value while validation accuracy stays within 2 points of a
float Keras MLP of the same shape trained the same way. Offline; about 20 s on one CPU core.
"""

import keras
import numpy as np
import pytest

from hgq_chip import cost
from hgq_chip.calibration import calibrate
from hgq_chip.data import load_split
from hgq_chip.layers import HDense, HQuantize
from hgq_chip.training import EBOPsMetric, LogRampBeta, ResetRanges

HIDDEN = 32
EPOCHS = 40
BATCH = 32
LEARNING_RATE = 0.02
BETA0, BETA1, RAMP_STOP = 1e-6, 2e-5, 30


def _compile(model, steps_per_epoch):
    # Cosine decay lets weights and bit-widths settle at the end of the ramp.
    lr = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, EPOCHS * steps_per_epoch, alpha=0.05)
    model.compile(keras.optimizers.Adam(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def _mlp(n_in, n_out, quantized):
    inputs = keras.Input((n_in,))
    if quantized:
        x = HQuantize()(inputs)
        x = HDense(HIDDEN, activation="relu")(x)
        x = HDense(HIDDEN, activation="relu")(x)
        outputs = HDense(n_out)(x)
    else:
        x = keras.layers.Dense(HIDDEN, activation="relu")(inputs)
        x = keras.layers.Dense(HIDDEN, activation="relu")(x)
        outputs = keras.layers.Dense(n_out)(x)
    return keras.Model(inputs, outputs)


@pytest.mark.slow
def test_log_ramped_beta_cuts_ebops_5x_within_2_points_of_float():
    data = load_split()
    steps = int(np.ceil(len(data.x_train) / BATCH))

    keras.utils.set_random_seed(0)
    float_model = _compile(_mlp(data.n_features, data.n_classes, quantized=False), steps)
    float_model.fit(data.x_train, data.y_train, epochs=EPOCHS, batch_size=BATCH, verbose=0)
    float_accuracy = float_model.evaluate(data.x_val, data.y_val, verbose=0)[1]

    keras.utils.set_random_seed(0)
    model = _compile(_mlp(data.n_features, data.n_classes, quantized=True), steps)
    calibrate(model, data.x_train)
    initial_ebops = cost.ebops(model)
    callbacks = [ResetRanges(), LogRampBeta(BETA0, BETA1, stop=RAMP_STOP), EBOPsMetric()]
    history = model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), epochs=EPOCHS,
                        batch_size=BATCH, verbose=0, callbacks=callbacks)
    final_ebops = history.history["ebops"][-1]
    accuracy = model.evaluate(data.x_val, data.y_val, verbose=0)[1]

    print(f"float accuracy {float_accuracy:.4f}, HGQ accuracy {accuracy:.4f}, EBOPs {initial_ebops} -> {final_ebops}")
    assert final_ebops == cost.ebops(model)
    assert final_ebops * 5 <= initial_ebops
    assert accuracy >= float_accuracy - 0.02
