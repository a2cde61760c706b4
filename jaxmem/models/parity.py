"""The one-hidden-layer MLP of the explorable's sparse-parity task (SPEC §3).

``z = ReLU([x, 1] W_in) w_out``: the input gets a constant 1 so the hidden bias is a
row of ``W_in`` (decayed like every weight, as in the explorable), and a single
output column gives the logit of label 1. ``apply`` returns the two-class logits
``[0, z]``, whose softmax cross-entropy is the binary cross-entropy of ``z``.

A grid over hidden sizes is one program: ``init`` draws ``n_hidden_max`` neurons and
zeroes those at or beyond the traced ``n_hidden``. A zero neuron gets zero gradient
and zero decay, so it stays exactly zero under SGD, Adam and both decays.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def init(key, n_bits: int, n_hidden_max: int, n_hidden=None, scale=1.0) -> dict:
    """``{"W_in": [n_bits + 1, H], "w_out": [H]}``, Gaussian with std ``scale / sqrt(fan_in)``;
    ``n_hidden`` (traced or None for all ``H``) live neurons."""
    for name, value in (("n_bits", n_bits), ("n_hidden_max", n_hidden_max)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    n_hidden = n_hidden_max if n_hidden is None else n_hidden
    live_H = (jnp.arange(n_hidden_max) < n_hidden).astype(jnp.float32)
    k_in, k_out = jax.random.split(key)
    w_in = jax.random.normal(k_in, (n_bits + 1, n_hidden_max)) * (scale / jnp.sqrt(n_bits + 1.0))
    w_out = jax.random.normal(k_out, (n_hidden_max,)) * (scale / jnp.sqrt(jnp.asarray(n_hidden, jnp.float32)))
    return {"W_in": w_in * live_H[None, :], "w_out": w_out * live_H}


def hidden(params, x) -> jax.Array:
    """``ReLU([x, 1] W_in)``: ``[N, n_bits] -> [N, H]``."""
    x1 = jnp.concatenate([x, jnp.ones(x.shape[:-1] + (1,), x.dtype)], axis=-1)
    return jax.nn.relu(x1 @ params["W_in"])


def apply(params, x) -> jax.Array:
    """Two-class logits ``[0, z]``, ``[N, 2]``."""
    z = hidden(params, x) @ params["w_out"]
    return jnp.stack([jnp.zeros_like(z), z], axis=-1)
