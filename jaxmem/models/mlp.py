"""One-hidden-layer ReLU MLP classifier: ``logits = ReLU(x W1 + b1) W2 + b2``.

The classifier of Hobbhahn's D* experiments on MNIST (docs/sources.md §2); D* is measured
on its hidden vectors ``ReLU(x W1 + b1)``. Parameters are a dict
``{"W1": [n_in, h], "b1": [h], "W2": [h, n_out], "b2": [n_out]}``; every
function maps one example ``[n_in]`` or any batch ``[..., n_in]``.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxmem.validate import positive_int


def init(key, n_in: int, n_hidden: int, n_out: int, scale=1.0) -> dict:
    """PyTorch's ``nn.Linear`` default: weights and biases uniform on
    ``±1/sqrt(fan_in)``, times ``scale`` (which may be traced).

    All four come from one uniform draw, cut in order W1, b1, W2, b2: one random
    kernel instead of four compiles about 4x faster on CPU.
    """
    n_in, n_hidden, n_out = (positive_int(k, v) for k, v in
                             (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out)))
    shapes = {"W1": ((n_in, n_hidden), n_in), "b1": ((n_hidden,), n_in),
              "W2": ((n_hidden, n_out), n_hidden), "b2": ((n_out,), n_hidden)}
    flat = jax.random.uniform(key, (sum(math.prod(shape) for shape, _ in shapes.values()),), minval=-1.0, maxval=1.0)
    params, start = {}, 0
    for name, (shape, fan_in) in shapes.items():
        size = math.prod(shape)
        params[name] = (scale / math.sqrt(fan_in)) * flat[start: start + size].reshape(shape)
        start += size
    return params


def _affine(x, W, b):
    z = jnp.einsum("...i,io->...o", x, W)
    return z + jnp.broadcast_to(b, z.shape)


def hidden(params, x):
    """``ReLU(x W1 + b1)``: ``[..., n_in] -> [..., h]``."""
    return jax.nn.relu(_affine(x, params["W1"], params["b1"]))


def apply(params, x):
    """Logits ``hidden(x) W2 + b2``: ``[..., n_in] -> [..., n_out]``."""
    return _affine(hidden(params, x), params["W2"], params["b2"])


def example_losses(params, x, labels):
    """Cross-entropy per example, ``[..., n_in], int [...] -> [...]``."""
    logp = jax.nn.log_softmax(apply(params, x), axis=-1)
    return -jnp.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]


def _weighted_mean(values, weights):
    if weights is None:
        return jnp.mean(values)
    return jnp.sum(weights * values) / jnp.sum(weights)


def loss(params, x, labels, weights=None):
    """Weighted mean cross-entropy ``sum(w * l) / sum(w)``; ``weights [N]`` masks padding."""
    return _weighted_mean(example_losses(params, x, labels), weights)


def correct(params, x, labels):
    """Whether the argmax logit is the label, bool ``[...]``."""
    return jnp.argmax(apply(params, x), axis=-1) == labels


def accuracy(params, x, labels, weights=None):
    """Weighted fraction of correct predictions."""
    return _weighted_mean(correct(params, x, labels).astype(jnp.float32), weights)
