"""Hand-built solutions of the opt-failure (identity) toy model, to compare trained ones against."""
from __future__ import annotations

import numpy as np


def circle(n_features: int, dtype=np.float32) -> dict:
    """Henighan's exact solution of ``ReLU(W^T W x + b) = x`` on one-hot inputs, m = 2: the
    post quotes columns ``(cos k phi, sin k phi)`` and a bias that subtracts ``cos phi``
    (seed 004); the scale ``1 / sqrt(1 - cos phi)``, which makes the diagonal exactly 1, is ours.

    ``W_k = (cos k phi, sin k phi) / sqrt(1 - cos phi)`` with ``phi = 2 pi / n`` and
    ``b_i = -cos phi / (1 - cos phi)``: then ``(W^T W + b)_ij = (cos((i - j) phi) - cos phi)
    / (1 - cos phi)``, which is 1 on the diagonal and <= 0 elsewhere, so
    ``ReLU(W^T W + b) = I`` and the loss is 0 for every n >= 3 (docs/sources.md §4).
    """
    if int(n_features) != n_features or n_features < 3:
        raise ValueError(f"the circle needs n_features >= 3, got {n_features!r}")
    phi = 2 * np.pi / n_features
    angles = phi * np.arange(n_features)
    W = np.stack([np.cos(angles), np.sin(angles)]) / np.sqrt(1 - np.cos(phi))
    b = np.full(n_features, -np.cos(phi) / (1 - np.cos(phi)))
    return {"W": W.astype(dtype), "b": b.astype(dtype)}


def symmetric_failure(n_features: int, n_dead: int = 1, dtype=np.float32) -> dict:
    """The "symmetric failure" (the post, seed 004, calls it a local optimum;
    ``opt_failure.symmetric_state_test`` finds a saddle): the circle of ``n - n_dead``
    features, and ``n_dead`` columns of ``W`` at 0 whose bias is the mean of their target,
    ``1 / n``."""
    if not 1 <= n_dead <= n_features - 3:
        raise ValueError(f"n_dead must lie in [1, n_features - 3], got {n_dead!r} for n = {n_features}")
    live = circle(n_features - n_dead, np.float64)
    W = np.concatenate([live["W"], np.zeros((2, n_dead))], axis=1)
    b = np.concatenate([live["b"], np.full(n_dead, 1.0 / n_features)])
    return {"W": W.astype(dtype), "b": b.astype(dtype)}


def cross(n_features: int, dtype=np.float32) -> dict:
    """A no-bias model ``ReLU(W^T W x)`` reconstructing ``2m = 4`` one-hots exactly:
    columns ``+e1, -e1, +e2, -e2`` (opposite pairs cancel under the ReLU), the rest 0."""
    if int(n_features) != n_features or n_features < 1:
        raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
    W = np.zeros((2, int(n_features)))
    axes = np.array([[1, -1, 0, 0], [0, 0, 1, -1]], float)
    k = min(4, int(n_features))
    W[:, :k] = axes[:, :k]
    return {"W": W.astype(dtype)}


