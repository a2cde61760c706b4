"""Fused ``T x n`` part of the ReLU-output loss: its gradient without ``T x n`` tensors.

The loss of ``x' = ReLU(W^T W x + b)`` (Henighan et al. 2023, docs/sources.md §1) has one part
that touches every (example t, feature i) pair: the row errors

    e_t = sum_i (ReLU(z_ti) - x_ti)^2,    z_ti = w_i . h_t + b_i,    h_t = W x_t,

(``x = 0`` for the sparse form, whose non-zeros ``relu_output`` corrects apart). With
``g_ti = 2 c_t (ReLU(z_ti) - x_ti) [z_ti > 0]`` for the incoming cotangent ``c_T``,

    d h_t = sum_i g_ti w_i,    d w_i = sum_t g_ti h_t,    d b_i = sum_t g_ti,

about ``4 m + 3`` FLOPs per element. Autodiff keeps ``z`` from the forward pass and
writes ``g``: several ``T x n`` round trips through memory per step. Here the backward
pass recomputes ``z`` (``2 m`` more FLOPs) instead, in one of two ways:

- ``"tiled"`` (CPU): ``lax.fori_loop`` over chunks of rows sized to stay in cache;
  each chunk forms ``g`` and does two small matmuls. XLA:CPU emits its own reductions
  in strict order, unvectorised, so the matmul library does the sums instead.
- ``"reduce"`` (accelerators): two variadic reductions whose bodies recompute ``g``,
  over features (``d h``) and over rows (``d W``, ``d b``); XLA fuses each into one
  kernel that writes only its ``[T, m]`` or ``[m + 1, n]`` result.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

IMPLS = ("tiled", "reduce")

#: elements of a ``"tiled"`` chunk (rows x n): 1 MiB of float32, half the per-core L2
#: of the development CPU; the fastest size measured (``benchmarks/RESULTS.md``).
CHUNK_ELEMENTS = 2**18


def default_impl() -> str:
    """The kernel for the current backend: ``"tiled"`` on CPU, else ``"reduce"``."""
    return "tiled" if jax.default_backend() == "cpu" else "reduce"


def row_errors(h_TxM, W_MxN, b_N, x_TxN=None, impl: str | None = None):
    """``e_t = sum_i (ReLU(W^T h_t + b)_i - x_ti)^2``, ``[T]``; ``x_TxN=None`` means 0.

    Same value as the plain expression; its VJP (to ``h``, ``W``, ``b``) recomputes the
    pre-activations rather than storing them. ``impl`` is one of ``IMPLS``
    (default: ``"tiled"`` on CPU, ``"reduce"`` elsewhere).
    """
    impl = default_impl() if impl is None else impl
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    return _row_errors(impl, h_TxM, W_MxN, b_N, x_TxN)


def _logits(h_TxM, W_MxN, b_N):
    """``z = h W + b`` as ``m`` broadcast products, which XLA fuses into the consumer
    (a ``[T, m] x [m, n]`` matmul would be written out in full)."""
    z_TxN = b_N[None, :]
    for j in range(W_MxN.shape[0]):
        z_TxN = z_TxN + h_TxM[:, j:j + 1] * W_MxN[j:j + 1]
    return z_TxN


def _residual(h_TxM, W_MxN, b_N, x_TxN):
    """``(ReLU(z) - x) [z > 0]`` and ``ReLU(z) - x``, ``[T, n]`` each."""
    z_TxN = _logits(h_TxM, W_MxN, b_N)
    err_TxN = jax.nn.relu(z_TxN) if x_TxN is None else jax.nn.relu(z_TxN) - x_TxN
    return jnp.where(z_TxN > 0, err_TxN, 0.0), err_TxN


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _row_errors(impl, h_TxM, W_MxN, b_N, x_TxN):
    return jnp.sum(_residual(h_TxM, W_MxN, b_N, x_TxN)[1] ** 2, axis=-1)


def _row_errors_fwd(impl, h_TxM, W_MxN, b_N, x_TxN):
    return _row_errors(impl, h_TxM, W_MxN, b_N, x_TxN), (h_TxM, W_MxN, b_N, x_TxN)


def _row_errors_bwd(impl, saved, ct_T):
    h_TxM, W_MxN, b_N, x_TxN = saved
    backward = _backward_tiled if impl == "tiled" else _backward_reduce
    dh_TxM, dWb_Mp1xN = backward(h_TxM, W_MxN, b_N, x_TxN, 2.0 * ct_T)
    return dh_TxM, dWb_Mp1xN[:-1], dWb_Mp1xN[-1], None


_row_errors.defvjp(_row_errors_fwd, _row_errors_bwd)


def chunk_rows(T: int, n: int) -> int:
    """Rows per ``"tiled"`` chunk: the fewest chunks of at most ``CHUNK_ELEMENTS / n``
    rows (at least 8), evened out and rounded up to a multiple of 8; at most T."""
    most = max(8, CHUNK_ELEMENTS // n // 8 * 8)
    even = _ceil_div(T, _ceil_div(T, most))
    return min(T, 8 * _ceil_div(even, 8))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _backward_tiled(h_TxM, W_MxN, b_N, x_TxN, c_T):
    """``(d h [T, m], [d W; d b] [m + 1, n])``, a chunk of rows at a time.

    The last chunk ends at row T and overlaps the one before; its rows counted there
    get a zero cotangent and keep their ``d h``.
    """
    T, m = h_TxM.shape
    rows = chunk_rows(T, W_MxN.shape[1])

    def chunk(i, acc):
        start = jnp.minimum(i * rows, T - rows)
        fresh_R = start + jnp.arange(rows) >= i * rows
        h_RxM = lax.dynamic_slice_in_dim(h_TxM, start, rows)
        x_RxN = None if x_TxN is None else lax.dynamic_slice_in_dim(x_TxN, start, rows)
        c_R = jnp.where(fresh_R, lax.dynamic_slice_in_dim(c_T, start, rows), 0.0)
        g_RxN = _residual(h_RxM, W_MxN, b_N, x_RxN)[0] * c_R[:, None]
        kept_RxM = lax.dynamic_slice_in_dim(acc["dh_TxM"], start, rows)
        dh_RxM = jnp.where(fresh_R[:, None], g_RxN @ W_MxN.T, kept_RxM)
        h1_RxMp1 = jnp.concatenate([h_RxM, jnp.ones((rows, 1), h_RxM.dtype)], axis=1)
        return {"dh_TxM": lax.dynamic_update_slice_in_dim(acc["dh_TxM"], dh_RxM, start, 0),
                "dWb_Mp1xN": acc["dWb_Mp1xN"] + h1_RxMp1.T @ g_RxN}

    inputs = (h_TxM, W_MxN, b_N, x_TxN, c_T)
    acc = {"dh_TxM": _zeros(h_TxM.shape, inputs), "dWb_Mp1xN": _zeros((m + 1, W_MxN.shape[1]), inputs)}
    acc = lax.fori_loop(0, _ceil_div(T, rows), chunk, acc)
    return acc["dh_TxM"], acc["dWb_Mp1xN"]


def _zeros(shape, inputs):
    """Zeros of the inputs' float type that vary over every manual mesh axis
    (``jax.shard_map``) that one of ``inputs`` varies over, as a loop carry that those
    inputs flow into must."""
    leaves = jax.tree.leaves(inputs)
    dtype = jnp.result_type(*leaves)
    return jnp.broadcast_to(sum(jnp.zeros_like(a, dtype, shape=()) for a in leaves), shape)


def _backward_reduce(h_TxM, W_MxN, b_N, x_TxN, c_T):
    """``(d h [T, m], [d W; d b] [m + 1, n])`` as two variadic reductions over a
    recomputed ``g``, one over features and one over rows."""
    m = h_TxM.shape[1]
    g_TxN = _residual(h_TxM, W_MxN, b_N, x_TxN)[0] * c_T[:, None]
    dh = _sums([g_TxN * W_MxN[j:j + 1] for j in range(m)], axis=1)
    dWb = _sums([g_TxN * h_TxM[:, j:j + 1] for j in range(m)] + [g_TxN], axis=0)
    return jnp.stack(dh, axis=1), jnp.stack(dWb, axis=0)


def _sums(terms, axis: int):
    """``[t.sum(axis) for t in terms]`` as one reduction, so XLA fuses them."""
    zeros = tuple(jnp.zeros((), t.dtype) for t in terms)
    return lax.reduce(tuple(terms), zeros, lambda a, b: tuple(p + q for p, q in zip(a, b)), (axis,))
