"""The ReLU-output toy model with tied weights: ``x' = ReLU(W^T W x + b)``.

Henighan et al. 2023, "Superposition, Memorization, and Double Descent" (docs/sources.md §1).
Parameters are a dict ``{"W": [m, n], "b": [n]}``; every function maps one example
``[n]`` or any batch ``[..., n]``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmem.data import SparseRows
from jaxmem.models import fused as _fused
from jaxmem.validate import positive_int

REDUCTIONS = ("sum", "mean")


def init(key, n_features: int, n_hidden: int, scale=1.0, bias: bool = True) -> dict:
    """Xavier-normal ``W`` (std ``sqrt(2 / (m + n))``, times ``scale``) and ``b = 0``;
    ``bias=False`` leaves ``b`` out (the model is then ``ReLU(W^T W x)``)."""
    positive_int("n_features", n_features)
    positive_int("n_hidden", n_hidden)
    std = jnp.sqrt(2.0 / (n_hidden + n_features)) * scale
    W_MxN = std * jax.random.normal(key, (int(n_hidden), int(n_features)))
    return {"W": W_MxN, "b": jnp.zeros((int(n_features),))} if bias else {"W": W_MxN}


def hidden(params, x, hidden_relu: bool = False):
    """``h = W x`` (``ReLU(W x)`` with ``hidden_relu``): ``[..., n] -> [..., m]``;
    ``x`` may also be ``SparseRows`` ``[..., T, k]``."""
    if isinstance(x, SparseRows):
        return hidden_sparse(params, x, hidden_relu)
    h = jnp.einsum("mn,...n->...m", params["W"], x)
    return jax.nn.relu(h) if hidden_relu else h


def decode(params, h):
    """``ReLU(W^T h + b)``: ``[..., m] -> [..., n]``."""
    z = jnp.einsum("mn,...m->...n", params["W"], h)
    if "b" in params:
        z = z + jnp.broadcast_to(params["b"], z.shape)
    return jax.nn.relu(z)


def apply(params, x, hidden_relu: bool = False):
    """``ReLU(W^T W x + b)``: ``[..., n] -> [..., n]``."""
    return decode(params, hidden(params, x, hidden_relu))


def hidden_sparse(params, rows: SparseRows, hidden_relu: bool = False):
    """``W x`` for sparse rows ``[..., T, k]`` -> ``[..., T, m]``, in ``O(T k m)``."""
    W_at_MxTxK = params["W"][:, rows.indices]
    h = jnp.einsum("m...k,...k->...m", W_at_MxTxK, rows.values)
    return jax.nn.relu(h) if hidden_relu else h


def example_losses(params, x, reduction: str = "sum", hidden_relu: bool = False, fused=False):
    """Squared error per example, ``[..., n] -> [...]``: summed over features, or
    averaged with ``reduction="mean"``. ``fused`` (``True`` or a ``fused.IMPLS`` name)
    takes the gradient through ``fused.row_errors``: same value, no ``T x n`` tensors
    kept for the backward pass."""
    if fused:
        err = _fused_row_errors(params, hidden(params, x, hidden_relu), x, fused)
    else:
        err = jnp.sum((x - apply(params, x, hidden_relu)) ** 2, axis=-1)
    return _reduce(err, x.shape[-1], reduction)


def example_losses_sparse(params, rows: SparseRows, reduction="sum", hidden_relu=False, fused=False):
    """``example_losses`` for sparse rows, without forming the dense input.

    ``sum_i (x_i - y_i)^2 = sum_i y_i^2 - 2 sum_{i in nz(x)} x_i y_i + sum_i x_i^2``;
    the middle term gathers from ``W`` and ``b`` (``O(T k m)``), so the only ``T x n``
    work is ``sum_i ReLU(W_i . h + b_i)^2`` and its gradient (``fused``: through
    ``fused.row_errors``).
    """
    W_at_MxTxK = params["W"][:, rows.indices]
    h_TxM = jnp.einsum("m...k,...k->...m", W_at_MxTxK, rows.values)
    if hidden_relu:
        h_TxM = jax.nn.relu(h_TxM)
    n_features = params["W"].shape[-1]
    if fused:
        y_sq = _fused_row_errors(params, h_TxM, None, fused)
    else:
        y_sq = jnp.sum(decode(params, h_TxM) ** 2, axis=-1)
    z_at_TxK = jnp.einsum("m...k,...m->...k", W_at_MxTxK, h_TxM)
    y_at_TxK = jax.nn.relu(z_at_TxK + params["b"][rows.indices] if "b" in params else z_at_TxK)
    err = y_sq - 2.0 * jnp.sum(rows.values * y_at_TxK, axis=-1) + jnp.sum(rows.values**2, axis=-1)
    return _reduce(err, n_features, reduction)


def loss(params, x, weights=None, reduction="sum", hidden_relu=False, fused=False):
    """Weighted mean over examples of ``example_losses``: ``sum(w * l) / sum(w)``.

    ``x`` is dense ``[T, n]`` or ``SparseRows``; ``weights [T]`` masks padded rows;
    ``fused`` picks the fused gradient (``True`` or a ``fused.IMPLS`` name), same value.
    """
    per_example = (example_losses_sparse if isinstance(x, SparseRows) else example_losses)(
        params, x, reduction, hidden_relu, fused
    )
    if weights is None:
        return jnp.mean(per_example)
    return jnp.sum(weights * per_example) / jnp.sum(weights)


def _fused_row_errors(params, h, x, fused):
    """``fused.row_errors`` over any leading axes of ``h [..., m]`` (and dense ``x``);
    ``fused`` is ``True`` (the backend's default kernel) or a kernel's name."""
    W_MxN = params["W"]
    b_N = params["b"] if "b" in params else jnp.zeros(W_MxN.shape[1], W_MxN.dtype)
    lead = h.shape[:-1]
    x_TxN = None if x is None else x.reshape(-1, W_MxN.shape[1])
    impl = None if fused is True else fused
    return _fused.row_errors(h.reshape(-1, W_MxN.shape[0]), W_MxN, b_N, x_TxN, impl).reshape(lead)


def _reduce(err, n_features, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return err / n_features if reduction == "mean" else err
