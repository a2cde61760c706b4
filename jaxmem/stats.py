"""Rank statistics: average ranks and Spearman rank correlation.

Spearman's rho is the Pearson correlation of the ranks, with tied values given
the mean of the ranks they span (as `scipy.stats.rankdata(method="average")`
and `scipy.stats.spearmanr`). NaN inputs give NaN; a constant input has no
defined correlation and gives NaN, like scipy.
"""

import jax
import jax.numpy as jnp


def _float(x) -> jax.Array:
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))


def _rank_1d(x_N: jax.Array) -> jax.Array:
    sorted_N = jnp.sort(x_N)
    below_N = jnp.searchsorted(sorted_N, x_N, side="left", method="sort")
    upto_N = jnp.searchsorted(sorted_N, x_N, side="right", method="sort")
    # A value occupying sorted positions below+1 .. upto gets their mean rank.
    return (below_N + upto_N + 1) / 2


@jax.jit
def rankdata(x) -> jax.Array:
    """Average ranks (1-based) along the last axis: [..., N] -> float [..., N]."""
    x = _float(x)
    if x.ndim < 1:
        raise ValueError(f"rankdata needs at least 1 dimension, got shape {x.shape}")
    ranks = jnp.vectorize(_rank_1d, signature="(n)->(n)")(x)
    nan_row = jnp.any(jnp.isnan(x), axis=-1, keepdims=True)
    return jnp.where(nan_row, jnp.nan, ranks.astype(jnp.promote_types(x.dtype, jnp.float32)))


def _standardised_ranks(x) -> jax.Array:
    ranks = rankdata(x)
    centred = ranks - (ranks.shape[-1] + 1) / 2  # the mean of average ranks, exactly
    return centred / jnp.linalg.norm(centred, axis=-1, keepdims=True)


@jax.jit
def spearman(a, b) -> jax.Array:
    """Spearman rank correlation of a and b along the last axis.

    Args:
      a, b: [..., N] arrays of the same shape (1-D for one pair).

    Returns:
      [...] rho in [-1, 1]; equals `scipy.stats.spearmanr(a, b).statistic`.
    """
    a, b = _float(a), _float(b)
    if a.shape != b.shape or a.ndim < 1:
        raise ValueError(f"a and b must have the same shape [..., N], got {a.shape} and {b.shape}")
    rho = jnp.sum(_standardised_ranks(a) * _standardised_ranks(b), axis=-1)
    return jnp.clip(rho, -1, 1)


@jax.jit
def spearman_matrix(curves) -> jax.Array:
    """Spearman correlation between every pair of rows: [R, N] -> [R, R].

    Symmetric with unit diagonal (NaN rows and constant rows aside).
    """
    curves = _float(curves)
    if curves.ndim != 2:
        raise ValueError(f"curves must have shape [R, N], got {curves.shape}")
    z_RxN = _standardised_ranks(curves)
    rho_RxR = jnp.matmul(z_RxN, z_RxN.T, precision=jax.lax.Precision.HIGHEST)
    rho_RxR = jnp.clip((rho_RxR + rho_RxR.T) / 2, -1, 1)
    diagonal_RxR = jnp.eye(curves.shape[0], dtype=bool)
    return jnp.where(diagonal_RxR & ~jnp.isnan(rho_RxR), 1, rho_RxR)
