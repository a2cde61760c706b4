"""Geometry of features and data points (SMDD, Henighan et al. 2023)."""
from __future__ import annotations

import jax.numpy as jnp

#: A feature counts as learned when its dimensionality exceeds this. Pentagon features
#: sit near (a bit below) 2/5 and ignored ones near 0, so 0.1 separates them.
LEARNED_THRESHOLD = 0.1


def dimensionality(v):
    """``D_i = ||v_i||^2 / sum_j (v^_i . v_j)^2`` for rows ``v [..., N, d]`` -> ``[..., N]``.

    Computed as ``||v_i||^4 / (v_i^T M v_i)`` with ``M = sum_j v_j v_j^T`` (``d x d``), so
    the cost is ``O(N d^2)`` with no ``N x N`` matrix; zero rows get 0. Applied to the
    columns of ``W`` it is the feature dimensionality, to the hidden vectors ``W x_t``
    the data dimensionality.
    """
    M_DxD = jnp.einsum("...nd,...ne->...de", v, v)
    sq_norm_N = jnp.sum(v**2, axis=-1)
    quad_N = jnp.einsum("...nd,...de,...ne->...n", v, M_DxD, v)
    return jnp.where(sq_norm_N > 0, sq_norm_N**2 / jnp.where(quad_N > 0, quad_N, 1.0), 0.0)


def feature_dimensionality(params):
    """Dimensionality of each column of ``W [..., m, n]`` -> ``[..., n]``."""
    return dimensionality(jnp.swapaxes(params["W"], -1, -2))


def n_learned(dims, threshold: float = LEARNED_THRESHOLD):
    """How many dimensionalities exceed ``threshold``, ``[..., N] -> [...]``."""
    return jnp.sum(dims > threshold, axis=-1)


def weight_norm(params):
    """``||W||_F``, ``[...]``."""
    return jnp.sqrt(jnp.sum(params["W"] ** 2, axis=(-2, -1)))
