"""Datasets of the grokking experiments (docs/sources.md §3): modular addition and sparse parity.

Each returns a ``Split``: fixed train and test sets as arrays, with per-example train
weights so that train sets of different sizes pad to one shape (and vmap together).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmem.validate import positive_int


class Split(NamedTuple):
    """One run's data: ``inputs`` are whatever the model's ``apply`` takes."""

    train_inputs: Any
    train_labels: jax.Array
    train_weights: jax.Array
    test_inputs: Any
    test_labels: jax.Array


def n_train_pairs(p: int, train_frac: float, symmetric: bool = True) -> int:
    """Training pairs of the split: ``int(train_frac * n_pairs)`` as the explorable's code
    rounds, with ``p (p + 1) / 2`` unordered pairs (``symmetric``) or ``p^2`` ordered ones."""
    if int(p) != p or p < 2:
        raise ValueError(f"p must be an integer >= 2, got {p!r}")
    if not 0.0 < train_frac < 1.0:
        raise ValueError(f"train_frac must lie in (0, 1), got {train_frac!r}")
    return max(1, int(train_frac * n_pairs(p, symmetric)))


def n_pairs(p: int, symmetric: bool = True) -> int:
    return p * (p + 1) // 2 if symmetric else p * p


def modular_addition(key, p: int, train_frac: float = 0.4, symmetric: bool = True) -> Split:
    """Pairs ``(a, b)`` with label ``(a + b) mod p``, split at random by ``key``; inputs
    are dicts ``{"a": int [N], "b": int [N]}``.

    ``symmetric`` (the explorable's ``is_symmetric_input``) keeps only ``a <= b``. With
    all ``p^2`` ordered pairs the split leaks: the model is symmetric in ``(a, b)``, so
    a test pair's mirror is in the training set with probability ``train_frac``.
    """
    n_train = n_train_pairs(p, train_frac, symmetric)
    a, b = np.divmod(np.arange(p * p, dtype=np.int32), p)
    if symmetric:
        a, b = a[a <= b], b[a <= b]
    order = jax.random.permutation(key, a.shape[0])
    a, b = jnp.asarray(a)[order], jnp.asarray(b)[order]
    labels = (a + b) % p
    return Split({"a": a[:n_train], "b": b[:n_train]}, labels[:n_train], jnp.ones(n_train),
                 {"a": a[n_train:], "b": b[n_train:]}, labels[n_train:])


def parity_labels(x, n_relevant: int) -> jax.Array:
    """Parity of the first ``n_relevant`` bits, int ``[N]``."""
    return (jnp.sum(x[..., :n_relevant], axis=-1) % 2).astype(jnp.int32)


def sparse_parity(key, n_train, n_train_max: int, n_test: int = 5000, n_bits: int = 30,
                  n_relevant: int = 3) -> Split:
    """Random ``n_bits``-bit strings labelled by the parity of the first ``n_relevant``.

    The train set has ``n_train_max`` rows of which the first ``n_train`` (may be traced)
    carry weight 1, so a smaller set is a prefix of a larger one with the same key.
    """
    for name, value in (("n_train_max", n_train_max), ("n_test", n_test), ("n_bits", n_bits)):
        positive_int(name, value)
    if not 1 <= n_relevant <= n_bits:
        raise ValueError(f"n_relevant must lie in [1, n_bits={n_bits}], got {n_relevant!r}")
    k_train, k_test = jax.random.split(key)
    x_train = jax.random.bernoulli(k_train, 0.5, (n_train_max, n_bits)).astype(jnp.float32)
    x_test = jax.random.bernoulli(k_test, 0.5, (n_test, n_bits)).astype(jnp.float32)
    weights = (jnp.arange(n_train_max) < n_train).astype(jnp.float32)
    return Split(x_train, parity_labels(x_train, n_relevant), weights, x_test, parity_labels(x_test, n_relevant))
