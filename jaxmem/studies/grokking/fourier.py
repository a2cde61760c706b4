"""Fourier analysis of modular-addition models (docs/sources.md §3; Nanda et al. 2023, "Progress
measures for grokking via mechanistic interpretability"; PAIR's explorable).

Along an axis of length ``p`` (odd) a vector ``w`` is
``w_i = c_0 + sum_k c_k cos(2 pi k i / p) + s_k sin(2 pi k i / p)`` for frequencies
``k = 1 .. (p - 1) / 2``; by Parseval ``sum_i w_i^2 = p c_0^2 + (p / 2) sum_k (c_k^2 + s_k^2)``.
Frequencies here are numbered from 1, as in the explorable.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

#: neurons whose input-weight norm is below this fraction of the largest are ignored
#: when collecting key frequencies
LIVE_NEURON_FRACTION = 0.1


def frequencies(p: int) -> np.ndarray:
    return np.arange(1, (p - 1) // 2 + 1)


def basis(p: int) -> tuple[jax.Array, jax.Array]:
    """``cos`` and ``sin`` of ``2 pi k i / p``, each ``[K, p]``."""
    angle = 2 * np.pi * np.outer(frequencies(p), np.arange(p)) / p
    return jnp.asarray(np.cos(angle), jnp.float32), jnp.asarray(np.sin(angle), jnp.float32)


def coefficients(w, axis: int = -1) -> jax.Array:
    """``(c_k, s_k)`` of ``w`` along ``axis`` (length ``p``): ``[..., K, 2]`` with that axis removed."""
    w = jnp.moveaxis(w, axis, -1)
    cos_KxP, sin_KxP = basis(w.shape[-1])
    scale = 2.0 / w.shape[-1]
    return scale * jnp.stack([w @ cos_KxP.T, w @ sin_KxP.T], axis=-1)


def frequency_norms(w, axis: int = -1) -> jax.Array:
    """``sqrt(c_k^2 + s_k^2)``, ``[..., K]``."""
    return jnp.linalg.norm(coefficients(w, axis), axis=-1)


def dominant_frequency(w, axis: int = -1) -> jax.Array:
    """The frequency (from 1) with the largest amplitude, ``[...]``."""
    return jnp.argmax(frequency_norms(w, axis), axis=-1) + 1


def neuron_frequencies(w_in_PxH) -> dict:
    """Per neuron (a column of ``W_input``, one run): dominant frequency, the share of its
    squared norm at that frequency, and whether it is live; the run's key frequencies
    (dominant for some live neuron) and the share of the total squared norm they carry."""
    w = np.asarray(w_in_PxH, np.float64)
    p = w.shape[0]
    power_HxK = np.asarray(frequency_norms(jnp.asarray(w.T))) ** 2 * (p / 2)
    norm_H = np.sum(w ** 2, axis=0)
    dominant_H = np.argmax(power_HxK, axis=-1) + 1
    live_H = np.sqrt(norm_H) >= LIVE_NEURON_FRACTION * np.sqrt(norm_H.max())
    key = np.unique(dominant_H[live_H])
    return {"dominant": dominant_H, "dominant_share": power_HxK.max(axis=-1) / np.maximum(norm_H, 1e-30),
            "live": live_H, "key_frequencies": key,
            "key_share": float(power_HxK[:, key - 1].sum() / max(norm_H.sum(), 1e-30))}


def group_logits(h_NxH, w_out_HxP, group_H, groups) -> jax.Array:
    """Each group's contribution to the logits, ``[G, N, p]``: the logits from only the
    neurons with ``group_H == g``, for each ``g`` in ``groups``."""
    mask_GxH = (jnp.asarray(group_H)[None, :] == jnp.asarray(groups)[:, None]).astype(h_NxH.dtype)
    return jnp.einsum("nh,gh,hp->gnp", h_NxH, mask_GxH, w_out_HxP)


def mode_losses(logits_NxP, labels_N) -> jax.Array:
    """Cross-entropy of the logits restricted to each output frequency, ``[K]``.

    The logits over answers ``c`` are projected onto ``c_k cos(2 pi k c / p) + s_k sin(...)``
    for one ``k`` at a time (the constant is irrelevant to cross-entropy); a mode that
    computes ``cos(2 pi k (a + b - c) / p)`` gets low loss on its own.
    """
    cos_KxP, sin_KxP = basis(logits_NxP.shape[-1])
    coef_NxKx2 = coefficients(logits_NxP)
    restricted_KxNxP = (coef_NxKx2[..., 0].T[:, :, None] * cos_KxP[:, None, :]
                        + coef_NxKx2[..., 1].T[:, :, None] * sin_KxP[:, None, :])
    logp = jax.nn.log_softmax(restricted_KxNxP, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels_N[None, :, None], axis=-1)[..., 0], axis=-1)
