"""Gradients for the tests on every Keras backend, behind one function.

Keras 3 has no backend-neutral gradient API, so :func:`gradients` calls each backend's own:
``tf.GradientTape`` (TensorFlow), ``jax.value_and_grad`` over Keras variables mapped through
``keras.StatelessScope`` (JAX: variables, and losses added by ``add_loss``, live in the scope, so they
are differentiable arguments), ``torch.autograd.grad`` (PyTorch: variables are parameters).
"""

from __future__ import annotations

import keras
import numpy as np


def gradients(loss_fn, variables=(), inputs=()):
    """``loss_fn(*inputs)`` (a scalar) and its gradients w.r.t. ``variables`` and ``inputs``.

    ``variables``: Keras variables the loss reads (built before the call: JAX cannot create
    variables inside the stateless scope). ``inputs``: NumPy arrays, passed to ``loss_fn`` as
    backend tensors. Returns ``(loss, variable_grads, input_grads)`` as NumPy arrays (float64
    loss); a variable the loss does not depend on gets zeros (TensorFlow and PyTorch would give
    None, JAX zeros: one convention for the tests).
    """
    variables = list(variables)
    inputs = [np.asarray(x) for x in inputs]
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        xs = [tf.constant(x) for x in inputs]
        with tf.GradientTape() as tape:
            tape.watch(xs)
            loss = loss_fn(*xs)
        grads = tape.gradient(loss, variables + xs)
    elif backend == "jax":
        import jax
        import jax.numpy as jnp

        def traced(values, xs):
            with keras.StatelessScope(state_mapping=list(zip(variables, values)), collect_losses=True):
                return loss_fn(*xs)

        values = [jnp.asarray(v.value) for v in variables]
        loss, (var_grads, input_grads) = jax.value_and_grad(traced, argnums=(0, 1))(
            values, [jnp.asarray(x) for x in inputs])
        grads = list(var_grads) + list(input_grads)
    elif backend == "torch":
        import torch

        xs = [torch.tensor(x, requires_grad=True) for x in inputs]
        loss = loss_fn(*xs)
        grads = torch.autograd.grad(loss, [v.value for v in variables] + xs, allow_unused=True)
    else:
        raise NotImplementedError(f"no gradient route for the {backend!r} backend")
    shapes = [tuple(v.shape) for v in variables] + [x.shape for x in inputs]
    arrays = [np.zeros(shape, np.float32) if g is None else np.asarray(keras.ops.convert_to_numpy(g))
              for g, shape in zip(grads, shapes)]
    return float(keras.ops.convert_to_numpy(loss)), arrays[:len(variables)], arrays[len(variables):]
