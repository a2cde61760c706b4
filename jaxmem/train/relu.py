"""Full-batch AdamW training of the ReLU-output model, one run as a pure function, on
the shared loop (``train.loop``) and optimiser builder (``train.optim``).

``train`` maps one run (key, data, weights, ``Hyper``) to final params and a loss
history; ``jax.vmap`` of it trains many. What is static lives in ``TrainConfig``; what
varies lives in ``Hyper`` and is traced. Whole sweeps go through ``jaxmem.studies.smdd.sweep``
(``run_grid``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmem.data import SparseRows
from jaxmem.models import relu_output
from jaxmem.models.fused import IMPLS as FUSED_IMPLS
from jaxmem.train import loop, optim
from jaxmem.train.loop import history_stride
from jaxmem.validate import in_range, one_of, positive_int

#: this config's schedule names -> ``optim.SCHEDULES``
SCHEDULES = {"cosine": "warmup_cosine", "constant": "constant"}


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

    Defaults are SMDD's (docs/sources.md §1): 50,000 full-batch AdamW steps, 5% linear warm-up
    then half-cosine decay to 0, Adam betas (0.9, 0.999), eps 1e-8, loss summed over
    features. ``schedule="constant"`` keeps the lr at its peak after the warm-up (from
    step 0 with ``warmup_frac=0``).
    ``n_history`` is how many evenly spaced train losses are kept. ``fused`` takes
    gradients through ``jaxmem.models.fused`` (same loss, less memory traffic): ``True``
    for the backend's default kernel, one of ``fused.IMPLS`` by name, or ``"auto"`` (the
    default): on where it measured faster, the CPU (1.1-2.4x, ``benchmarks/RESULTS.md``),
    off on accelerators until measured there. Its matmuls may round differently when runs
    are split over another device count (last-bit differences, ``tests/core/test_sharding.py``);
    ``fused=False`` is bit-exact across device counts.
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
    fused: bool | str = "auto"

    def __post_init__(self):
        for name in ("n_features", "n_hidden", "steps", "n_history"):
            positive_int(name, getattr(self, name))
        in_range("warmup_frac", self.warmup_frac, 0.0, 1.0)
        one_of("schedule", self.schedule, SCHEDULES)
        one_of("reduction", self.reduction, relu_output.REDUCTIONS)
        if not isinstance(self.fused, bool) and self.fused not in FUSED_IMPLS + ("auto",):
            raise ValueError(f"fused must be a bool, 'auto' or one of {FUSED_IMPLS}, got {self.fused!r}")

    @property
    def fused_kernel(self) -> bool | str:
        """``fused`` with ``"auto"`` resolved for the current backend."""
        return jax.default_backend() == "cpu" if self.fused == "auto" else self.fused

    @property
    def warmup_steps(self) -> int:
        return int(round(self.warmup_frac * self.steps))



class Hyper(NamedTuple):
    """What a sweep varies, as traced scalars (or arrays of them, for ``vmap``)."""

    lr: Any = 1e-3
    weight_decay: Any = 1e-2
    init_scale: Any = 1.0


class TrainResult(NamedTuple):
    params: Any
    train_loss: jax.Array  # [] loss of the final params
    history: jax.Array  # [n_records] train loss after log_every, 2 log_every, ..., steps updates
    diverged: jax.Array  # [] bool: a non-finite loss or parameter


def optim_config(cfg: TrainConfig) -> optim.Optim:
    return optim.Optim("adamw", SCHEDULES[cfg.schedule], cfg.warmup_frac, cfg.b1, cfg.b2, cfg.eps)


def optimizer(cfg: TrainConfig, hyper: Hyper) -> optax.GradientTransformation:
    """AdamW with decoupled decay ``lr_t * weight_decay * p`` on every parameter, as in
    PyTorch's ``AdamW`` and ``optax.adamw`` (Loshchilov & Hutter 2019)."""
    return optim.build(optim_config(cfg), {"lr": hyper.lr, "weight_decay": hyper.weight_decay}, cfg.steps)


def example_loss_fn(cfg: TrainConfig):
    """``(params, x, hp) -> [T]`` per-example losses (dense ``x`` or ``SparseRows``)."""

    def loss(params, x, hp=None):
        losses = relu_output.example_losses_sparse if isinstance(x, SparseRows) else relu_output.example_losses
        return losses(params, x, cfg.reduction, cfg.hidden_relu, cfg.fused_kernel)

    return loss


def loss_fn(cfg: TrainConfig):
    """``(params, x, weights) -> `` the weighted mean loss."""
    per_example = example_loss_fn(cfg)
    return lambda params, x, weights: loop.weighted_mean(per_example(params, x), weights)


def init_state(cfg: TrainConfig, hyper: Hyper, key=None, params=None) -> loop.TrainState:
    """Optimiser state around ``params``, or around ``relu_output.init(key)``."""
    if params is None:
        params = relu_output.init(key, cfg.n_features, cfg.n_hidden, hyper.init_scale, cfg.use_bias)
    return loop.start(optimizer(cfg, hyper), params)


def advance(cfg: TrainConfig, hyper: Hyper, state: loop.TrainState, x, weights, n_records: int, fresh=None):
    """``n_records * cfg.log_every`` updates (``loop.advance``). ``fresh`` (a function of
    the step number, counted from the start of training, to a batch shaped like ``x``)
    is the infinite-data setting: step ``i`` trains on ``fresh(i)``."""
    batch_at = (lambda step: (x, weights)) if fresh is None else (lambda step: (fresh(step), weights))
    return loop.advance(loss_fn(cfg), optimizer(cfg, hyper), state, batch_at, n_records, cfg.log_every)


def finish(cfg: TrainConfig, state: loop.TrainState, records, x, weights) -> TrainResult:
    out = loop.finish(loss_fn(cfg), state, records, x, weights)
    return TrainResult(out["params"], out["train_loss"], out["history"]["loss"], out["diverged"])


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
    state, records = advance(cfg, hyper, init_state(cfg, hyper, params=params), x, weights, cfg.n_records, fresh)
    return finish(cfg, state, records, x, weights)
