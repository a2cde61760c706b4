"""The one-hidden-layer MLP of the grokking explorable for ``(a + b) mod p`` (SPEC §3).

Pearce et al. 2023, "Do Machine Learning Models Memorize or Generalize?" (PAIR):
``logits = act(W_input[a] + W_input[b]) W_output``. The factored model writes
``W_input = W_embed W_in_proj`` and ``W_output = W_out_proj W_unembed^T`` with the
unembedding tied to ``W_embed`` (or free); the unfactored model trains ``W_input``
``[p, h]`` and ``W_output`` ``[h, p]`` directly. Parameters are dicts of arrays; the
static choices (activation) are arguments, so every function maps any batch.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

ACTIVATIONS = {"relu": jax.nn.relu, "square": jnp.square}


def _check(name: str, value, minimum: int = 1) -> int:
    if int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def init(key, p: int, n_embed: int = 32, n_hidden: int = 24, factored: bool = True,
         tied: bool = True, scale=1.0) -> dict:
    """Gaussian init, each matrix with std ``scale / sqrt(fan_in)`` (``scale`` may be traced).

    Factored: ``{"embed": [p, d], "in_proj": [d, h], "out_proj": [h, d]}`` plus
    ``"unembed": [p, d]`` when not tied. Unfactored: ``{"W_in": [p, h], "W_out": [h, p]}``.
    """
    p, n_embed, n_hidden = _check("p", p, 2), _check("n_embed", n_embed), _check("n_hidden", n_hidden)
    if factored:
        shapes = {"embed": (p, n_embed), "in_proj": (n_embed, n_hidden), "out_proj": (n_hidden, n_embed)}
        if not tied:
            shapes["unembed"] = (p, n_embed)
    else:
        shapes = {"W_in": (p, n_hidden), "W_out": (n_hidden, p)}
    fan_in = {"embed": 1, "unembed": n_embed, "W_in": 1}
    keys = jax.random.split(key, len(shapes))
    return {name: jax.random.normal(k, shape) * (scale / math.sqrt(fan_in.get(name, shape[0])))
            for k, (name, shape) in zip(keys, shapes.items())}


def input_weights(params) -> jax.Array:
    """``W_input`` ``[..., p, h]``: each neuron's weight on each input number."""
    if "W_in" in params:
        return params["W_in"]
    return params["embed"] @ params["in_proj"]


def output_weights(params) -> jax.Array:
    """``W_output`` ``[..., h, p]``: each neuron's weight on each answer."""
    if "W_out" in params:
        return params["W_out"]
    unembed = params.get("unembed", params["embed"])
    return params["out_proj"] @ jnp.swapaxes(unembed, -1, -2)


def hidden(params, a, b, activation: str = "relu") -> jax.Array:
    """``act(W_input[a] + W_input[b])``: int ``[N]`` pairs -> ``[N, h]`` (one run)."""
    w_PxH = input_weights(params)
    return ACTIVATIONS[activation](w_PxH[a] + w_PxH[b])


def apply(params, a, b, activation: str = "relu") -> jax.Array:
    """Logits over the ``p`` answers, ``[N, p]`` (one run; vmap for many)."""
    return hidden(params, a, b, activation) @ output_weights(params)
