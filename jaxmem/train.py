"""Full-batch AdamW training of the ReLU-output model, as pure functions of one run.

``train`` maps one run (key, data, weights, ``Hyper``) to final params and a loss
history; a sweep is ``jax.vmap`` (or ``lax.map`` with a batch size) of it. What is
static lives in ``TrainConfig``; what a sweep varies lives in ``Hyper`` and is traced.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmem.models import relu_output
from jaxmem.models.fused import IMPLS as FUSED_IMPLS

SCHEDULES = ("cosine", "constant")


def history_stride(steps: int, n_history: int) -> int:
    """Steps between history points: the largest divisor of ``steps`` that keeps at
    least ``n_history`` points."""
    target = max(1, steps // n_history)
    return max(d for d in range(1, target + 1) if steps % d == 0)


class Logged:
    """For a config with ``steps`` and ``n_history``: where its history points fall."""

    @property
    def log_every(self) -> int:
        return history_stride(self.steps, self.n_history)

    @property
    def n_records(self) -> int:
        return self.steps // self.log_every


@dataclasses.dataclass(frozen=True)
class TrainConfig(Logged):
    """Static settings: shapes, step counts and choices that change the program.

    Defaults are SMDD's (SPEC §1): 50,000 full-batch AdamW steps, 5% linear warm-up
    then half-cosine decay to 0, Adam betas (0.9, 0.999), eps 1e-8, loss summed over
    features. ``schedule="constant"`` keeps the lr at its peak after the warm-up.
    ``n_history`` is how many evenly spaced train losses are kept. ``fused`` takes
    gradients through ``jaxmem.models.fused`` (same loss, less memory traffic; 1.1-2.4x
    faster on CPU, ``benchmarks/RESULTS.md``): ``True`` for the backend's default kernel,
    or one of ``fused.IMPLS`` by name. Off by default: vmapped over runs, the CPU
    kernel's matmuls may round differently when runs are split over other device counts.
    """

    n_features: int
    n_hidden: int = 2
    steps: int = 50_000
    warmup_frac: float = 0.05
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    reduction: str = "sum"
    hidden_relu: bool = False
    use_bias: bool = True
    schedule: str = "cosine"
    n_history: int = 200
    fused: bool | str = False

    def __post_init__(self):
        for name in ("n_features", "n_hidden", "steps", "n_history"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= self.warmup_frac < 1.0:
            raise ValueError(f"warmup_frac must lie in [0, 1), got {self.warmup_frac!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.reduction not in relu_output.REDUCTIONS:
            raise ValueError(f"reduction must be one of {relu_output.REDUCTIONS}, got {self.reduction!r}")
        if not isinstance(self.fused, bool) and self.fused not in FUSED_IMPLS:
            raise ValueError(f"fused must be a bool or one of {FUSED_IMPLS}, got {self.fused!r}")

    @property
    def warmup_steps(self) -> int:
        return int(round(self.warmup_frac * self.steps))



class Hyper(NamedTuple):
    """What a sweep varies, as traced scalars (or arrays of them, for ``vmap``)."""

    lr: Any = 1e-3
    weight_decay: Any = 1e-2
    init_scale: Any = 1.0


class TrainState(NamedTuple):
    params: Any
    opt_state: Any


class TrainResult(NamedTuple):
    params: Any
    train_loss: jax.Array  # [] loss of the final params
    history: jax.Array  # [n_records] train loss every ``log_every`` steps
    diverged: jax.Array  # [] bool: a non-finite loss or parameter


def unit_schedule(cfg: TrainConfig) -> optax.Schedule:
    """Linear warm-up from 0 to 1 over ``warmup_steps``, then half-cosine to 0 at ``steps``.

    Multiplying by a traced peak lr keeps the schedule vmappable
    (``optax.warmup_cosine_decay_schedule`` branches in Python on its peak).
    """
    if cfg.schedule == "constant":
        return optax.linear_schedule(0.0, 1.0, max(cfg.warmup_steps, 1))
    return optax.warmup_cosine_decay_schedule(0.0, 1.0, cfg.warmup_steps, cfg.steps, 0.0)


def optimizer(cfg: TrainConfig, hyper: Hyper) -> optax.GradientTransformation:
    """AdamW with decoupled decay ``lr_t * weight_decay * p`` on every parameter, as in
    PyTorch's ``AdamW`` and ``optax.adamw`` (Loshchilov & Hutter 2019)."""
    schedule = unit_schedule(cfg)
    return optax.adamw(
        lambda count: hyper.lr * schedule(count),
        b1=cfg.b1,
        b2=cfg.b2,
        eps=cfg.eps,
        weight_decay=hyper.weight_decay,
    )


def loss_fn(cfg: TrainConfig):
    def loss(params, x, weights):
        return relu_output.loss(params, x, weights, cfg.reduction, cfg.hidden_relu, cfg.fused)

    return loss


def init_state(cfg: TrainConfig, hyper: Hyper, key=None, params=None) -> TrainState:
    """Optimiser state around ``params``, or around ``relu_output.init(key)``."""
    if params is None:
        params = relu_output.init(key, cfg.n_features, cfg.n_hidden, hyper.init_scale, cfg.use_bias)
    return TrainState(params, optimizer(cfg, hyper).init(params))


def advance(cfg: TrainConfig, hyper: Hyper, state: TrainState, x, weights, n_records: int,
            fresh=None, first_step=0):
    """Run ``n_records * cfg.log_every`` steps; return the new state and the train loss
    at the last step of each ``log_every`` block, ``[n_records]``.

    Only that last step computes the loss value; the others take gradients alone, which
    lets XLA skip the loss's reductions (about 1.4x faster on CPU).

    ``fresh`` (a function of the step number, counted from the start of training, to a
    batch shaped like ``x``) is the infinite-data setting: step ``first_step + i`` trains
    on ``fresh(first_step + i)`` and ``x`` is unused; the history is each batch's loss.
    """
    opt = optimizer(cfg, hyper)
    loss = loss_fn(cfg)

    def batch(step):
        return x if fresh is None else fresh(step)

    def update(state: TrainState, grads) -> TrainState:
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        return TrainState(optax.apply_updates(state.params, updates), opt_state)

    def step(state: TrainState, i):
        return update(state, jax.grad(loss)(state.params, batch(i), weights)), None

    def block(state: TrainState, first):
        state, _ = jax.lax.scan(step, state, first + jnp.arange(cfg.log_every - 1))
        value, grads = jax.value_and_grad(loss)(state.params, batch(first + cfg.log_every - 1), weights)
        return update(state, grads), value

    return jax.lax.scan(block, state, first_step + cfg.log_every * jnp.arange(n_records))


def finish(cfg: TrainConfig, state: TrainState, history, x, weights) -> TrainResult:
    train_loss = loss_fn(cfg)(state.params, x, weights)
    finite = jnp.isfinite(train_loss) & jnp.all(jnp.isfinite(history))
    finite &= jnp.all(jnp.array([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(state.params)]))
    return TrainResult(state.params, train_loss, history, ~finite)


def train(cfg: TrainConfig, hyper: Hyper, key, x, weights=None, fresh=None) -> TrainResult:
    """Train one model from ``init(key)`` on ``x`` (dense ``[T, n]`` or ``SparseRows``).

    ``weights [T]`` (1 for real rows, 0 for padding) makes the loss
    ``sum(w * l) / sum(w)``, so sets of different sizes share one padded shape.
    With ``fresh`` (see ``advance``) every step trains on a new batch and ``x`` is only
    the batch the final ``train_loss`` is measured on.
    """
    return fit(cfg, hyper, init_state(cfg, hyper, key).params, x, weights, fresh)


def fit(cfg: TrainConfig, hyper: Hyper, params, x, weights=None, fresh=None) -> TrainResult:
    """``train``, starting from given ``params`` instead of a fresh init."""
    if weights is None:
        weights = jnp.ones(jax.tree.leaves(x)[0].shape[0])
    state, history = advance(cfg, hyper, init_state(cfg, hyper, params=params), x, weights, cfg.n_records, fresh)
    return finish(cfg, state, history, x, weights)
