"""One builder for every optimiser and learning-rate schedule, from traced values.

A sweep traces its numeric hyperparameters (``lr``, ``weight_decay``, Adam's ``b1`` and
``b2``, a schedule ``horizon``), so they cannot be Python floats inside optax's
constructors that branch on them; each schedule here is a unit-peak function of the step
multiplied by the traced ``lr``, and the transformations take traced scalars directly.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from jaxmem.validate import in_range, one_of

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("warmup_cosine", "constant")
DECAYS = ("l2", "l1")


@dataclasses.dataclass(frozen=True)
class Optim:
    """What stays static about an optimiser; its numbers may be overridden per run by
    the traced ``hp`` (``lr``, ``weight_decay``, ``b1``, ``b2``, ``momentum``, ``horizon``).

    ``optimizer``: ``"adamw"`` (Adam with decoupled decay ``lr_t * wd * w``, as
    ``optax.adamw`` and PyTorch's ``AdamW``; Loshchilov & Hutter 2019), ``"adam"`` (no
    decay), ``"sgd"`` (momentum ``hp["momentum"]``, default 0, with the same decoupled decay),
    an ``optax.GradientTransformation`` used as given, or a callable ``hp -> transformation``.
    ``decay="l1"`` instead adds ``wd * sign(w)`` to the gradient before the optimiser.
    ``schedule``: ``"warmup_cosine"`` (linear warm-up over ``warmup_frac`` of the steps,
    then half-cosine to 0), ``"constant"`` (the same warm-up, then the peak; from step 0
    when ``warmup_frac`` is 0), or an optax schedule of the step, multiplied by ``lr``.
    """

    optimizer: str | optax.GradientTransformation | Callable = "adamw"
    schedule: str | Callable = "warmup_cosine"
    warmup_frac: float = 0.05
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    decay: str = "l2"

    def __post_init__(self):
        if isinstance(self.optimizer, str):
            one_of("optimizer", self.optimizer, OPTIMIZERS)
        if isinstance(self.schedule, str):
            one_of("schedule", self.schedule, SCHEDULES)
        one_of("decay", self.decay, DECAYS)
        in_range("warmup_frac", self.warmup_frac, 0.0, 1.0)


def unit_schedule(optim: Optim, steps: int, horizon=None) -> optax.Schedule:
    """The schedule at peak 1 over ``steps`` updates.

    With a traced ``horizon`` (a shorter run inside a longer scan) it spans ``horizon``
    updates and is 0 from there on, written out in ``jnp`` since optax's constructors
    branch in Python on their arguments; for ``horizon = steps`` it equals optax's.
    """
    if callable(optim.schedule):
        return optim.schedule
    if horizon is not None:
        return _traced_schedule(optim, horizon)
    warmup = int(round(optim.warmup_frac * steps))
    if optim.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup, steps, 0.0)
    if warmup == 0:
        return optax.constant_schedule(1.0)
    return optax.linear_schedule(0.0, 1.0, warmup)


def _traced_schedule(optim: Optim, horizon) -> optax.Schedule:
    def schedule(count):
        t = jnp.asarray(count, jnp.float32)
        h = jnp.asarray(horizon, jnp.float32)
        warm = optim.warmup_frac * h
        rise = jnp.where(t < warm, t / jnp.maximum(warm, 1e-12), 1.0)
        if optim.schedule == "warmup_cosine":
            frac = jnp.clip((t - warm) / jnp.maximum(h - warm, 1e-12), 0.0, 1.0)
            rise = rise * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))
        return jnp.where(t < h, rise, 0.0)

    return schedule


def add_l1(weight_decay) -> optax.GradientTransformation:
    """``g + wd * sign(w)``: an L1 penalty's (sub)gradient, before the optimiser."""

    def update(grads, state, params):
        return jax.tree.map(lambda g, w: g + (weight_decay * jnp.sign(w)).astype(g.dtype), grads, params), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def build(optim: Optim, hp: Mapping, steps: int) -> optax.GradientTransformation:
    """The optimiser of one run: ``optim`` with the run's traced ``hp``."""
    if isinstance(optim.optimizer, optax.GradientTransformation):
        return optim.optimizer
    if callable(optim.optimizer):
        return optim.optimizer(hp)
    unit = unit_schedule(optim, steps, hp.get("horizon"))
    lr = hp.get("lr", 1e-3)
    wd = hp.get("weight_decay", 0.0)
    b1, b2 = hp.get("b1", optim.b1), hp.get("b2", optim.b2)
    lr_t = (lambda count: lr * unit(count))
    if optim.optimizer == "adamw" and optim.decay == "l2":
        return optax.adamw(lr_t, b1=b1, b2=b2, eps=optim.eps, weight_decay=wd)
    parts = [add_l1(wd)] if optim.decay == "l1" and optim.optimizer != "adam" else []
    parts.append(optax.trace(decay=hp.get("momentum", 0.0)) if optim.optimizer == "sgd"
                 else optax.scale_by_adam(b1=b1, b2=b2, eps=optim.eps))
    if optim.decay == "l2" and optim.optimizer == "sgd":
        parts.append(optax.add_decayed_weights(wd))
    parts.append(optax.scale_by_learning_rate(lr_t))
    return optax.chain(*parts)
