"""Analysis of the toy autoencoder on the identity, ``ReLU(W^T W x + b)`` on ``X = I_n``.

"Optimization Failure" blog post on SMDD's toy model (docs/sources.md §4). Thresholds are
module constants so that a reader can see, and change, what each class means.
"""
from __future__ import annotations

import numpy as np

#: a one-hot e_j counts as reconstructed when its own output is within this of 1 and
#: every other output within this of 0.
RECON_TOL = 0.1
#: a column of W is dead when its norm is below this fraction of the largest column's.
DEAD_FRACTION = 0.1
#: a dead column's bias "sits at 1/n" when within this relative distance of 1/n.
BIAS_REL_TOL = 0.2

CLASSES = ("perfect", "symmetric_failure", "other")


def reconstruction(W_Mxn: np.ndarray, b_n: np.ndarray | None) -> np.ndarray:
    """``R[i, j]`` = output i for input ``e_j``: ``ReLU(W^T W + b)``, ``[..., n, n]``."""
    pre = np.einsum("...mi,...mj->...ij", W_Mxn, W_Mxn)
    if b_n is not None:
        pre = pre + b_n[..., :, None]
    return np.maximum(pre, 0.0)


def reconstructed(W, b, ignore_outputs=None) -> np.ndarray:
    """Which one-hots are reconstructed (see ``RECON_TOL``), ``[..., n]`` bool; outputs
    flagged in ``ignore_outputs [..., n]`` are not checked as off-diagonal entries."""
    R = reconstruction(W, b)
    n = R.shape[-1]
    skip = np.eye(n, dtype=bool)
    if ignore_outputs is not None:
        skip = skip | ignore_outputs[..., :, None]
    diag_ok = np.abs(np.diagonal(R, axis1=-2, axis2=-1) - 1.0) < RECON_TOL
    off_ok = np.all(np.where(skip, True, np.abs(R) < RECON_TOL), axis=-2)
    return diag_ok & off_ok


def dead_columns(W) -> np.ndarray:
    """Columns of ``W [..., m, n]`` with norm below ``DEAD_FRACTION`` of the largest."""
    norms = np.linalg.norm(W, axis=-2)
    return norms < DEAD_FRACTION * norms.max(axis=-1, keepdims=True)


def classify(W, b) -> dict:
    """Per run: ``cls`` (index into ``CLASSES``), ``n_learned``, ``n_dead``, ``dead_bias``
    (mean bias of dead columns, NaN if none).

    perfect: every one-hot reconstructed. symmetric failure: not perfect, at least one
    dead column, every dead column's bias within ``BIAS_REL_TOL`` of 1/n, and every other
    feature reconstructed (the dead outputs' constant 1/n aside). other: the rest.
    ``n_learned`` counts the features reconstructed, dead outputs aside.
    """
    n = W.shape[-1]
    dead = dead_columns(W)
    ok = reconstructed(W, b, ignore_outputs=dead)
    n_dead = dead.sum(-1)
    bias_at_mean = np.ones_like(dead) if b is None else np.abs(b * n - 1.0) < BIAS_REL_TOL
    symmetric = (n_dead > 0) & np.all(np.where(dead, bias_at_mean, ok), axis=-1)
    perfect = reconstructed(W, b).all(-1)
    cls = np.where(perfect, 0, np.where(symmetric, 1, 2))
    dead_bias = (np.full(n_dead.shape, np.nan) if b is None else
                 np.where(n_dead > 0, (b * dead).sum(-1) / np.maximum(n_dead, 1), np.nan))
    return {"cls": cls, "n_learned": ok.sum(-1), "n_dead": n_dead, "dead_bias": dead_bias}


def angle_gaps(W) -> np.ndarray:
    """Angles (degrees) between angularly consecutive live columns of one ``W [2, n]``."""
    live = W[:, ~dead_columns(W)]
    angles = np.sort(np.degrees(np.arctan2(live[1], live[0])))
    return np.diff(np.append(angles, angles[0] + 360.0))


def wilson_interval(successes, trials, z: float = 1.96):
    """95% Wilson score interval of a binomial proportion (Wilson 1927)."""
    successes, trials = np.asarray(successes, float), np.asarray(trials, float)
    p = successes / trials
    centre = (p + z**2 / (2 * trials)) / (1 + z**2 / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / (1 + z**2 / trials)
    return centre - half, centre + half
