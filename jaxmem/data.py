"""Synthetic data of SMDD (Henighan et al. 2023, docs/sources.md §1) and small fixed datasets.

Each feature is 0 with probability ``sparsity`` and otherwise uniform on [0, 1); every
row is then rescaled to unit L2 norm (an all-zero row stays zero). Row ``t`` of a set is
drawn from ``fold_in(key, t)``, so a set of T rows is the first T rows of any larger set
made with the same key, whatever the chunking, and the dense and sparse forms hold the
same numbers.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmem.validate import in_range, positive_int


class SparseRows(NamedTuple):
    """Rows of a ``[..., T, n]`` matrix as ``k`` (index, value) pairs per row.

    Unused slots hold index 0 and value 0, so they add nothing to any sum.
    """

    indices: jax.Array  # int32 [..., T, k]
    values: jax.Array  # float32 [..., T, k]


def check_sizes(n_samples: int, n_features: int, sparsity: float) -> None:
    """Raise a ``ValueError`` naming the bad value."""
    positive_int("n_samples", n_samples)
    positive_int("n_features", n_features)
    in_range("sparsity", sparsity, 0.0, 1.0)


def max_nonzeros(n_features: int, sparsity: float) -> int:
    """Slots per row of the sparse form: the Binomial(n, 1 - S) mean plus 10 sd plus 10.

    A row with more non-zeros has probability below 1e-20; ``sparse_rows`` checks anyway.
    """
    p = 1.0 - sparsity
    mean, sd = n_features * p, math.sqrt(n_features * p * (1.0 - p))
    return int(min(n_features, math.ceil(mean + 10.0 * sd + 10.0)))


def _row(key: jax.Array, n_features: int, sparsity: float, normalize: bool) -> jax.Array:
    key_mask, key_value = jax.random.split(key)
    mask_N = jax.random.bernoulli(key_mask, 1.0 - sparsity, (n_features,))
    x_N = jnp.where(mask_N, jax.random.uniform(key_value, (n_features,)), 0.0)
    if normalize:
        norm = jnp.sqrt(jnp.sum(x_N**2))
        x_N = x_N / jnp.where(norm > 0, norm, 1.0)
    return x_N


@jax.jit(static_argnums=(2, 3, 4, 5))
def _rows(key, first_row, n_rows, n_features, sparsity, normalize):
    row_ids = first_row + jnp.arange(n_rows)
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, row_ids)
    return jax.vmap(_row, in_axes=(0, None, None, None))(keys, n_features, sparsity, normalize)


def sparse_features(key, n_samples, n_features, sparsity, normalize=True) -> jax.Array:
    """Dense ``float32 [n_samples, n_features]`` sparse-feature data (see module doc)."""
    check_sizes(n_samples, n_features, sparsity)
    return _rows(key, 0, int(n_samples), int(n_features), float(sparsity), normalize)


def compress(x_TxN: jax.Array, k: int) -> tuple[SparseRows, jax.Array]:
    """Dense rows -> ``SparseRows`` of their first ``k`` non-zeros (in index order), and the
    count of non-zeros per row (more than ``k``: some were dropped)."""
    n = x_TxN.shape[-1]
    nonzero = x_TxN != 0
    # top_k of a decreasing score puts the non-zero columns first, in index order.
    score = jnp.where(nonzero, n - jnp.arange(n), 0)
    _, idx_TxK = jax.lax.top_k(score, k)
    val_TxK = jnp.take_along_axis(x_TxN, idx_TxK, axis=-1)
    idx_TxK = jnp.where(val_TxK != 0, idx_TxK, 0)
    return SparseRows(idx_TxK.astype(jnp.int32), val_TxK), nonzero.sum(-1)


def sparse_rows(key, n_samples, n_features, sparsity, normalize=True, k=None, chunk=1024):
    """The same data as ``sparse_features`` in ``SparseRows`` form, never dense in full.

    Rows are made ``chunk`` at a time, so memory stays ``O(chunk * n + T * k)``.
    Returns ``SparseRows`` with ``indices``/``values`` of shape ``[n_samples, k]``.
    """
    check_sizes(n_samples, n_features, sparsity)
    k = max_nonzeros(n_features, sparsity) if k is None else int(k)
    rows, chunk = int(n_samples), int(min(chunk, n_samples))
    n_chunks = -(-rows // chunk)
    out, count = sparse_chunks(key, n_chunks, chunk, int(n_features), float(sparsity), normalize, k)
    if int(count.max()) > k:  # cannot happen in practice; never truncate silently
        return sparse_rows(key, n_samples, n_features, sparsity, normalize, int(count.max()), chunk)
    return jax.tree.map(lambda a: a.reshape(n_chunks * chunk, k)[:rows], out)


@jax.jit(static_argnums=(1, 2, 3, 4, 5, 6))
def sparse_chunks(key, n_chunks, chunk, n_features, sparsity, normalize, k):
    """``(SparseRows [n_chunks, chunk, k], counts [n_chunks, chunk])``: rows ``0 ..
    n_chunks * chunk - 1`` of ``sparse_rows``, made ``chunk`` at a time (jitted, the
    sizes static)."""
    def one_chunk(c):
        return compress(_rows(key, c * chunk, chunk, n_features, sparsity, normalize), k)

    return jax.lax.map(one_chunk, jnp.arange(n_chunks))


def to_dense(rows: SparseRows, n_features: int) -> jax.Array:
    """``SparseRows [..., T, k]`` -> dense ``[..., T, n_features]``."""
    one_hot = jax.nn.one_hot(rows.indices, n_features, dtype=rows.values.dtype)
    return jnp.einsum("...tk,...tkn->...tn", rows.values, one_hot)


def identity(n_features: int) -> jax.Array:
    """The one-hot dataset ``X = I_n`` of the optimisation-failure post (docs/sources.md §4)."""
    positive_int("n_features", n_features)
    return jnp.eye(int(n_features), dtype=jnp.float32)
