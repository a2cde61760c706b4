"""AdamW training of the MLP classifier (``models.mlp``), one run as a pure function.

``fit(cfg, hyper, key, data)`` trains one model in a single ``lax.scan`` over steps:
full batch, or minibatches drawn from a fresh shuffle of the real rows every epoch.
What a sweep varies is traced (``Hyper``: lr, weight decay, init scale, horizon;
``Data.weights``: which rows are real), so ``fit_runs`` vmaps seeds, weight decays,
dataset sizes (padding plus per-example weights) and training lengths into one
program. What changes shapes (hidden size, batch size, step count, checkpoints)
lives in the frozen ``FitConfig``: one program per config.
"""
from __future__ import annotations

import dataclasses
import time
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmem.models import mlp
from jaxmem.train import Logged

SCHEDULES = ("cosine", "constant")


@dataclasses.dataclass(frozen=True)
class FitConfig(Logged):
    """Static settings of a training program.

    Attributes:
      n_in, n_hidden, n_out: MLP sizes.
      steps: optimiser updates (the scan length).
      batch_size: rows per update; ``None`` for full batch. Minibatches walk
        through a fresh permutation of the real rows each epoch; an epoch is
        ``ceil(n_real / batch_size)`` updates, the last one possibly short.
      schedule: ``"cosine"`` (linear warm-up, then half-cosine to 0 at the
        horizon) or ``"constant"`` (warm-up, then flat until the horizon).
      warmup_frac: warm-up length as a fraction of the horizon.
      b1, b2, eps: Adam's constants (PyTorch and optax defaults).
      checkpoints: update counts (0 = the initial params, ``steps`` = final)
        whose params are kept, sorted and unique.
      n_history: how many evenly spaced (loss, accuracy) records are kept.
    """

    n_in: int = 784
    n_hidden: int = 512
    n_out: int = 10
    steps: int = 100
    batch_size: int | None = None
    schedule: str = "cosine"
    warmup_frac: float = 0.0
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    checkpoints: tuple[int, ...] = ()
    n_history: int = 20

    def __post_init__(self):
        for name in ("n_in", "n_hidden", "n_out", "steps", "n_history"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.batch_size is not None and (int(self.batch_size) != self.batch_size or self.batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {self.batch_size!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not 0.0 <= self.warmup_frac < 1.0:
            raise ValueError(f"warmup_frac must lie in [0, 1), got {self.warmup_frac!r}")
        c = tuple(self.checkpoints)
        if list(c) != sorted(set(c)) or any(int(s) != s or not 0 <= s <= self.steps for s in c):
            raise ValueError(f"checkpoints must be sorted unique ints in [0, steps={self.steps}], got {c!r}")



class Hyper(NamedTuple):
    """What a sweep varies, traced. ``horizon``: the update count the schedule
    spans; the lr is 0 from there on (a shorter run inside a longer scan);
    ``None`` means ``cfg.steps``."""

    lr: Any = 1e-3
    weight_decay: Any = 1e-2
    init_scale: Any = 1.0
    horizon: Any = None


class Data(NamedTuple):
    """A training set: ``x [N, n_in]``, int ``labels [N]``, ``weights [N]``
    (> 0 for real rows, 0 for padding)."""

    x: jax.Array
    labels: jax.Array
    weights: jax.Array


class History(NamedTuple):
    """Weighted loss and accuracy on the whole training set after ``step`` updates."""

    step: jax.Array
    loss: jax.Array
    accuracy: jax.Array


class FitState(NamedTuple):
    params: Any
    opt_state: Any
    saved: Any  # params at ``cfg.checkpoints``, stacked [K, ...]; None without
    step: jax.Array


class FitResult(NamedTuple):
    params: Any
    loss: jax.Array  # [] final weighted train loss
    accuracy: jax.Array  # [] final weighted train accuracy
    history: History  # [n_records] each
    checkpoints: Any  # params stacked [K, ...] at cfg.checkpoints; None without


def unit_schedule(cfg: FitConfig, horizon) -> optax.Schedule:
    """Unit-peak schedule over a traced ``horizon``, 0 from the horizon on.

    With ``horizon = steps`` the cosine form equals
    ``optax.warmup_cosine_decay_schedule(0, 1, warmup, steps)``; it is written out
    because optax branches in Python on its arguments, which must not be traced.
    """
    def schedule(count):
        t = jnp.asarray(count, jnp.float32)
        h = jnp.asarray(horizon, jnp.float32)
        warm = cfg.warmup_frac * h
        rise = jnp.where(t < warm, t / jnp.maximum(warm, 1e-12), 1.0)
        if cfg.schedule == "cosine":
            frac = jnp.clip((t - warm) / jnp.maximum(h - warm, 1e-12), 0.0, 1.0)
            rise = rise * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))
        return jnp.where(t < h, rise, 0.0)

    return schedule


def optimizer(cfg: FitConfig, hyper: Hyper) -> optax.GradientTransformation:
    """AdamW, decay decoupled and multiplied by the lr (Loshchilov & Hutter 2019),
    on every parameter as in PyTorch."""
    horizon = cfg.steps if hyper.horizon is None else hyper.horizon
    unit = unit_schedule(cfg, horizon)
    return optax.adamw(lambda count: hyper.lr * unit(count), b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                       weight_decay=hyper.weight_decay)


def shuffled_real_rows(key, weights) -> jax.Array:
    """A permutation of ``[N]`` with the real rows (weight > 0) first, in random order.

    Row i's sort key is drawn from ``fold_in(key, i)``, so the order of the real
    rows does not depend on how much padding follows them.
    """
    u_N = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(key, i)))(jnp.arange(weights.shape[0]))
    return jnp.argsort(jnp.where(weights > 0, u_N, 2.0))


def minibatch(cfg: FitConfig, key, data: Data, step) -> Data:
    """The rows of update ``step``: its slice of this epoch's shuffle of the real rows.

    Slots past the last real row (a short last batch) get weight 0.
    """
    n_real = jnp.sum(data.weights > 0)
    per_epoch = jnp.maximum((n_real + cfg.batch_size - 1) // cfg.batch_size, 1)
    order_N = shuffled_real_rows(jax.random.fold_in(key, step // per_epoch), data.weights)
    slot_B = (step % per_epoch) * cfg.batch_size + jnp.arange(cfg.batch_size)
    rows_B = order_N[jnp.minimum(slot_B, data.weights.shape[0] - 1)]
    weights_B = jnp.where(slot_B < n_real, data.weights[rows_B], 0.0)
    return Data(data.x[rows_B], data.labels[rows_B], weights_B)


def _save(saved, params, checkpoints, step):
    """Write ``params`` into the slot of ``saved`` whose checkpoint is ``step``, if any."""
    hit_K = jnp.asarray(checkpoints) == step
    slot, any_hit = jnp.argmax(hit_K), jnp.any(hit_K)
    return jax.tree.map(lambda s, p: s.at[slot].set(jnp.where(any_hit, p, s[slot])), saved, params)


def fit(cfg: FitConfig, hyper: Hyper, key, data: Data) -> FitResult:
    """Train one MLP from ``mlp.init`` on ``data``; ``key`` seeds init and shuffles."""
    init_key, shuffle_key = jax.random.split(key)
    params = mlp.init(init_key, cfg.n_in, cfg.n_hidden, cfg.n_out, hyper.init_scale)
    opt = optimizer(cfg, hyper)
    grad = jax.grad(mlp.loss)

    def evaluate(params) -> tuple[jax.Array, jax.Array]:
        return (mlp.loss(params, data.x, data.labels, data.weights),
                mlp.accuracy(params, data.x, data.labels, data.weights))

    def step(state: FitState, _) -> tuple[FitState, None]:
        saved = state.saved
        if cfg.checkpoints:
            saved = _save(saved, state.params, cfg.checkpoints, state.step)
        batch = data if cfg.batch_size is None else minibatch(cfg, shuffle_key, data, state.step)
        grads = grad(state.params, batch.x, batch.labels, batch.weights)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        return FitState(optax.apply_updates(state.params, updates), opt_state, saved, state.step + 1), None

    def block(state: FitState, _) -> tuple[FitState, History]:
        state, _ = jax.lax.scan(step, state, length=cfg.log_every)
        return state, History(state.step, *evaluate(state.params))

    saved = None
    if cfg.checkpoints:
        saved = jax.tree.map(lambda p: jnp.zeros((len(cfg.checkpoints),) + p.shape, p.dtype), params)
    state = FitState(params, opt.init(params), saved, jnp.zeros((), jnp.int32))
    state, history = jax.lax.scan(block, state, length=cfg.n_records)
    saved = state.saved
    if cfg.checkpoints:
        saved = _save(saved, state.params, cfg.checkpoints, state.step)
    return FitResult(state.params, *evaluate(state.params), history, saved)


def _broadcast_hyper(hyper: Hyper, n_runs: int) -> Hyper:
    return Hyper(*(None if v is None else jnp.broadcast_to(jnp.asarray(v, jnp.float32), (n_runs,))
                   for v in hyper))


@partial(jax.jit, static_argnames=("cfg", "data_axes"))
def _fit_runs(cfg, hyper, keys, data, data_axes):
    return jax.vmap(partial(fit, cfg), in_axes=(0, 0, data_axes))(hyper, keys, data)


def fit_runs(cfg: FitConfig, hyper: Hyper, keys, data: Data, data_axes: Data | None = None) -> FitResult:
    """Many runs as one vmapped, jitted program.

    Args:
      cfg: static config shared by the runs.
      hyper: each field a scalar (shared) or ``[R]`` (per run); ``horizon`` may be None.
      keys: ``[R]`` PRNG keys, one per run.
      data: shared, or with a leading run axis on the fields named in ``data_axes``.
      data_axes: a ``Data`` of 0 / None per field (None: all shared), e.g.
        ``Data(None, None, 0)`` for per-run weights (dataset sizes) over one pool.

    Returns:
      ``FitResult`` with a leading ``[R]`` axis on every leaf.
    """
    n_runs = keys.shape[0]
    data_axes = Data(None, None, None) if data_axes is None else Data(*data_axes)
    return _fit_runs(cfg, _broadcast_hyper(hyper, n_runs), keys, data, data_axes)


def hidden_at(checkpoints, x) -> jax.Array:
    """Hidden vectors of ``x [N, n_in]`` under each of ``K`` stacked params: ``[K, N, h]``."""
    return jax.lax.map(lambda p: mlp.hidden(p, x), checkpoints)


def compile_runs(cfg: FitConfig, hyper: Hyper, keys, data: Data, data_axes: Data | None = None):
    """``fit_runs`` compiled ahead of time: ``(run, compile_seconds)`` with
    ``run() -> FitResult``, so that compiling and training can be timed apart."""
    data_axes = Data(None, None, None) if data_axes is None else Data(*data_axes)
    args = (_broadcast_hyper(hyper, keys.shape[0]), keys, data)
    start = time.perf_counter()
    compiled = _fit_runs.lower(cfg, *args, data_axes).compile()
    seconds = time.perf_counter() - start
    return (lambda: jax.block_until_ready(compiled(*args))), seconds
