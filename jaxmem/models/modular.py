"""The one-hidden-layer MLP of the grokking explorable for ``(a + b) mod p`` (docs/sources.md §3).

Pearce et al. 2023, "Do Machine Learning Models Memorize or Generalize?" (PAIR):
``logits = act(W_input[a] + W_input[b]) W_output``. The factored model writes
``W_input = W_embed W_in_proj`` and ``W_output = W_out_proj W_unembed^T`` with the
unembedding tied to ``W_embed`` (or free); the unfactored model trains ``W_input``
``[p, h]`` and ``W_output`` ``[h, p]`` directly. Parameters are dicts of arrays; the
static choices (activation, init, precision) are arguments, so every function maps
any batch.

Each step needs only the collapsed ``[p, h]`` and ``[h, p]`` matrices: the per-example
work is two row gathers and an ``h x p`` matmul, never a one-hot matmul.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

ACTIVATIONS = {"relu": jax.nn.relu, "square": jnp.square}
#: ``"haiku"``: the explorable's code (haiku defaults, below); ``"normal"``: Gaussian with
#: std ``scale / sqrt(fan_in)``, the embedding's fan-in taken as 1
INITS = ("haiku", "normal")
#: ``"source"``: as the explorable's code runs under ``jax_enable_x64``: haiku stores the
#: embedding in float32 (``hk.get_parameter``'s default dtype) and the projections in
#: float64 (``hk.Linear`` takes its input's dtype, a float64 one-hot), computing in float64
PRECISIONS = ("source", "float64", "float32")
#: std of a standard normal truncated to [-2, 2] (scipy.stats.truncnorm(-2, 2).std())
TRUNCATED_STD = 0.87962566103423978


def _check(name: str, value, minimum: int = 1) -> int:
    if int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def dtypes(precision: str) -> tuple:
    """(embedding dtype, projection dtype) of a precision; float64 needs x64 enabled."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "float32" and not jax.config.jax_enable_x64:
        raise ValueError(f"precision={precision!r} needs float64: run inside `with jax.enable_x64(True):`")
    return {"source": (jnp.float32, jnp.float64), "float64": (jnp.float64,) * 2,
            "float32": (jnp.float32,) * 2}[precision]


def truncated_normal(key, shape, stddev, dtype) -> jax.Array:
    """haiku's ``TruncatedNormal(stddev)``: ``stddev`` times a standard normal cut at
    +-2, so the actual std is ``0.880 stddev``."""
    return stddev * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)


def init(key, p: int, n_embed: int = 500, n_hidden: int = 24, factored: bool = True,
         tied: bool = True, scale=1.0, init: str = "haiku", precision: str = "float32") -> dict:
    """Factored: ``{"embed": [p, d], "in_proj": [d, h], "out_proj": [h, d]}`` plus
    ``"unembed": [p, d]`` when not tied. Unfactored: ``{"W_in": [p, h], "W_out": [h, p]}``.

    ``init="haiku"`` is the explorable's: embeddings ``VarianceScaling(2.0)`` (fan-in
    ``p``, truncated normal of std ``sqrt(2 / p)`` after truncation), projections
    ``hk.Linear``'s default ``TruncatedNormal(1 / sqrt(fan_in))``. Its unfactored model
    is not in the published code: here it starts from the collapsed matrices of a
    factored init, the same function. Every matrix is multiplied by ``scale`` (may be
    traced).
    """
    p, n_embed, n_hidden = _check("p", p, 2), _check("n_embed", n_embed), _check("n_hidden", n_hidden)
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    embed_dtype, proj_dtype = dtypes(precision)
    shapes = {"embed": (p, n_embed), "in_proj": (n_embed, n_hidden), "out_proj": (n_hidden, n_embed)}
    if not tied:
        shapes["unembed"] = (p, n_embed)
    keys = dict(zip(shapes, jax.random.split(key, len(shapes))))
    embedding = ("embed", "unembed")
    if init == "haiku":
        params = {name: truncated_normal(keys[name], shape,
                                         math.sqrt(2.0 / p) / TRUNCATED_STD if name in embedding
                                         else 1.0 / math.sqrt(shape[0]),
                                         embed_dtype if name in embedding else proj_dtype)
                  for name, shape in shapes.items()}
        if not factored:
            params = {"W_in": input_weights(params).astype(proj_dtype), "W_out": output_weights(params).astype(proj_dtype)}
    else:
        if not factored:
            shapes, keys = {"W_in": (p, n_hidden), "W_out": (n_hidden, p)}, dict(zip(("W_in", "W_out"), jax.random.split(key)))
        fan_in = {"embed": 1, "unembed": n_embed, "W_in": 1}
        params = {name: jax.random.normal(keys[name], shape, embed_dtype if name in embedding else proj_dtype)
                  / math.sqrt(fan_in.get(name, shape[0])) for name, shape in shapes.items()}
    return jax.tree.map(lambda w: (w * scale).astype(w.dtype), params)


def _compute(params) -> dict:
    """The params cast to their widest dtype (float64 where any is)."""
    dtype = jnp.result_type(*jax.tree.leaves(params))
    return jax.tree.map(lambda w: jnp.asarray(w, dtype), params)


def input_weights(params) -> jax.Array:
    """``W_input`` ``[..., p, h]``: each neuron's weight on each input number."""
    params = _compute(params)
    if "W_in" in params:
        return params["W_in"]
    return params["embed"] @ params["in_proj"]


def output_weights(params) -> jax.Array:
    """``W_output`` ``[..., h, p]``: each neuron's weight on each answer."""
    params = _compute(params)
    if "W_out" in params:
        return params["W_out"]
    unembed = params.get("unembed", params["embed"])
    return params["out_proj"] @ jnp.swapaxes(unembed, -1, -2)


def collapsed(params) -> dict:
    """The unfactored params of the same function: ``{"W_in": [p, h], "W_out": [h, p]}``."""
    return {"W_in": input_weights(params), "W_out": output_weights(params)}


def hidden(params, a, b, activation: str = "relu") -> jax.Array:
    """``act(W_input[a] + W_input[b])``: int ``[N]`` pairs in ``[0, p)`` -> ``[N, h]`` (one run)."""
    w_PxH = input_weights(params)
    return ACTIVATIONS[activation](w_PxH.at[a].get(mode="promise_in_bounds") + w_PxH.at[b].get(mode="promise_in_bounds"))


def apply(params, a, b, activation: str = "relu") -> jax.Array:
    """Logits over the ``p`` answers, ``[N, p]`` (one run; vmap for many)."""
    return hidden(params, a, b, activation) @ output_weights(params)
