"""The one training loop: a ``lax.scan`` of optimiser steps, with a history.

A run's objective is ``objective(params, batch, weights) -> scalar`` (the trainer's
``sum(w * l) / sum(w)`` of per-example losses, zero weights on padding); ``batch_at(step)
-> (batch, weights)`` gives the data of each update: the whole training set, a minibatch,
or a new batch (infinite data). ``advance`` runs ``n_records`` blocks of ``log_every``
updates. Each block's first update takes ``value_and_grad`` and records the value and
``observe(params)`` at the block's start; its other updates take gradients alone, which
lets XLA skip the loss's reductions (about 1.4x faster on CPU). ``finish`` adds the point
after the last update, so the history holds the values after ``log_every, 2 log_every,
..., steps`` updates.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmem.validate import positive_int


def history_stride(steps: int, n_history: int) -> int:
    """Updates between history points: the largest divisor of ``steps`` that keeps at
    least ``n_history`` points."""
    target = max(1, steps // n_history)
    return max(d for d in range(1, target + 1) if steps % d == 0)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """``steps`` updates, with a history point every ``log_every`` of them."""

    steps: int
    n_history: int = 100

    def __post_init__(self):
        positive_int("steps", self.steps)
        positive_int("n_history", self.n_history)

    @property
    def log_every(self) -> int:
        return history_stride(self.steps, self.n_history)

    @property
    def n_records(self) -> int:
        return self.steps // self.log_every

    @property
    def history_steps(self):
        """The update count after which each history point is taken, ``[n_records]``."""
        return self.log_every * (1 + jnp.arange(self.n_records))


class TrainState(NamedTuple):
    params: Any
    opt_state: Any
    step: jax.Array  # updates done, int32
    kept: Any = None  # params at the update counts ``keep``, stacked [K, ...]; None without


def weighted_mean(values, weights):
    """``sum(w * v) / sum(w)``: the mean over the real (weight > 0) examples."""
    return jnp.sum(weights * values) / jnp.sum(weights)


def start(tx: optax.GradientTransformation, params, keep: tuple = ()) -> TrainState:
    """The state before the first update; with ``keep`` (update counts), room for the
    params at each (see ``advance``)."""
    kept = jax.tree.map(lambda p: jnp.zeros((len(keep),) + p.shape, p.dtype), params) if keep else None
    return TrainState(params, tx.init(params), jnp.zeros((), jnp.int32), kept)


def _keep(state: TrainState, keep: tuple) -> TrainState:
    """Write the params into the slot of ``kept`` whose update count is ``state.step``, if any."""
    if not keep:
        return state
    hit = jnp.asarray(keep) == state.step
    slot, any_hit = jnp.argmax(hit), jnp.any(hit)
    kept = jax.tree.map(lambda s, p: s.at[slot].set(jnp.where(any_hit, p, s[slot])), state.kept, state.params)
    return state._replace(kept=kept)


def update(tx: optax.GradientTransformation, state: TrainState, grads) -> TrainState:
    """One optimiser step. Every leaf keeps its dtype (params of mixed precision)."""
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    opt_state = jax.tree.map(lambda new, old: new.astype(old.dtype) if hasattr(old, "dtype") else new,
                             opt_state, state.opt_state)
    return state._replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state,
                          step=state.step + 1)


def advance(objective: Callable, tx: optax.GradientTransformation, state: TrainState, batch_at: Callable,
            n_records: int, log_every: int, observe: Callable | None = None, keep: tuple = ()):
    """``n_records * log_every`` updates from ``state``; returns the new state and, per
    block, ``{"loss": objective at the block's start, **observe(params at the block's start)}``.
    ``keep``: the update counts (sorted, as given to ``start``) whose params go into
    ``state.kept`` (0 = the initial params; the last one, after the final update, in ``finish``)."""

    def step(state: TrainState, _):
        state = _keep(state, keep)
        batch, weights = batch_at(state.step)
        return update(tx, state, jax.grad(objective)(state.params, batch, weights)), None

    def block(state: TrainState, _):
        state = _keep(state, keep)
        batch, weights = batch_at(state.step)
        value, grads = jax.value_and_grad(objective)(state.params, batch, weights)
        record = {"loss": value, **(observe(state.params) if observe is not None else {})}
        state = update(tx, state, grads)
        if log_every > 1:
            state, _ = jax.lax.scan(step, state, length=log_every - 1)
        return state, record

    return jax.lax.scan(block, state, length=n_records)


def finish(objective: Callable, state: TrainState, records: dict, batch, weights,
           observe: Callable | None = None, keep: tuple = ()) -> dict:
    """The final point appended to the history (which then starts after the first
    block), the final train loss on ``batch``, and ``diverged``: a non-finite loss or
    parameter anywhere; with ``keep``, ``params_at``: the params at those update counts."""
    final = {"loss": objective(state.params, batch, weights),
             **(observe(state.params) if observe is not None else {})}
    history = jax.tree.map(lambda r, f: jnp.concatenate([r[1:], f[None]]), records, final)
    finite = jnp.all(jnp.isfinite(history["loss"]))
    for leaf in jax.tree.leaves(state.params):
        finite &= jnp.all(jnp.isfinite(leaf))
    out = {"params": state.params, "train_loss": final["loss"], "history": history, "diverged": ~finite}
    if keep:
        out["params_at"] = _keep(state, keep).kept
    return out
