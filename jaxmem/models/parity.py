"""The one-hidden-layer MLP of the explorable's sparse-parity task (docs/sources.md §3).

``z = ReLU([x, 1] W_in) w_out``: the input gets a constant 1 so the hidden bias is a
row of ``W_in`` (decayed like every weight, as in the explorable), and a single
output column gives the logit of label 1. ``apply`` returns the two-class logits
``[0, z]``, whose softmax cross-entropy is the binary cross-entropy of ``z``.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxmem.validate import positive_int


def init(key, n_bits: int, n_hidden: int, scale=1.0) -> dict:
    """``{"W_in": [n_bits + 1, h], "w_out": [h]}``, Gaussian with std ``scale / sqrt(fan_in)``."""
    positive_int("n_bits", n_bits)
    positive_int("n_hidden", n_hidden)
    k_in, k_out = jax.random.split(key)
    return {"W_in": jax.random.normal(k_in, (n_bits + 1, n_hidden)) * (scale / math.sqrt(n_bits + 1)),
            "w_out": jax.random.normal(k_out, (n_hidden,)) * (scale / math.sqrt(n_hidden))}


def hidden(params, x) -> jax.Array:
    """``ReLU([x, 1] W_in)``: ``[N, n_bits] -> [N, H]``."""
    x1 = jnp.concatenate([x, jnp.ones(x.shape[:-1] + (1,), x.dtype)], axis=-1)
    return jax.nn.relu(x1 @ params["W_in"])


def apply(params, x) -> jax.Array:
    """Two-class logits ``[0, z]``, ``[N, 2]``."""
    z = hidden(params, x) @ params["w_out"]
    return jnp.stack([jnp.zeros_like(z), z], axis=-1)
