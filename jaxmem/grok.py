"""Full-batch training of the grokking models, and what a run's history says about it.

``train`` maps one run (initial params, a ``tasks.Split``, ``GrokHyper``) to its final
params and a history of train/test loss and accuracy; a grid is ``jax.vmap`` of it, so
every numeric setting (lr, weight decay, betas, init scale) is traced and a whole grid
is one program. Static choices (optimizer, decay, loss, step count) live in
``GrokConfig``. The explorable's setting (SPEC §3) is AdamW with decoupled decay and a
constant learning rate on the full training set.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmem.tasks import Split
from jaxmem.train import Logged

OPTIMIZERS = ("adamw", "sgd")
DECAYS = ("l2", "l1")
LOSSES = ("ce", "mse")
#: a run has memorised (generalised) from the first logged step with train (test)
#: accuracy at least this
ACCURACY_THRESHOLD = 0.99
#: memorise-then-generalise needs generalisation this many times later than memorisation
GROK_DELAY = 2.0
OUTCOMES = ("memorise then generalise", "generalise directly", "memorise only", "learn nothing", "diverged")


@dataclasses.dataclass(frozen=True)
class GrokConfig(Logged):
    """Static settings. ``decay="l2"`` is AdamW's decoupled ``w -= lr * wd * w``;
    ``"l1"`` is ``w -= lr * wd * sign(w)``. ``optimizer="sgd"`` is SGD with momentum
    ``b1``. ``keep_params`` also records the params at every history point."""

    steps: int = 50_000
    optimizer: str = "adamw"
    decay: str = "l2"
    loss: str = "ce"
    n_history: int = 200
    eps: float = 1e-8
    keep_params: bool = False

    def __post_init__(self):
        for name in ("steps", "n_history"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name, known in (("optimizer", OPTIMIZERS), ("decay", DECAYS), ("loss", LOSSES)):
            if getattr(self, name) not in known:
                raise ValueError(f"{name} must be one of {known}, got {getattr(self, name)!r}")


    @property
    def history_steps(self) -> np.ndarray:
        """The step after which each history point is taken, ``[n_records]``."""
        return self.log_every * np.arange(1, self.n_records + 1)


class GrokHyper(NamedTuple):
    """What a grid varies, traced. Defaults are the explorable's modular addition."""

    lr: Any = 1e-3
    weight_decay: Any = 1.0
    b1: Any = 0.9
    b2: Any = 0.98
    init_scale: Any = 1.0


class History(NamedTuple):
    train_loss: jax.Array
    test_loss: jax.Array
    train_accuracy: jax.Array
    test_accuracy: jax.Array
    params: Any = None


class GrokResult(NamedTuple):
    params: Any
    history: History


def example_losses(logits, labels, loss: str) -> jax.Array:
    """Cross-entropy, or squared error to the one-hot label summed over classes, ``[N]``."""
    if loss == "ce":
        logp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]
    target = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    return jnp.sum(jnp.square(logits - target), axis=-1)


def _weighted_mean(values, weights):
    return jnp.sum(weights * values) / jnp.sum(weights)


def evaluate(logits, labels, loss: str, weights=None) -> tuple[jax.Array, jax.Array]:
    """(mean loss, accuracy) weighted by ``weights`` (all 1 when None)."""
    weights = jnp.ones(labels.shape) if weights is None else weights
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(logits.dtype)
    return _weighted_mean(example_losses(logits, labels, loss), weights), _weighted_mean(correct, weights)


def direction(cfg: GrokConfig, hyper: GrokHyper) -> optax.GradientTransformation:
    """The optimizer's update direction before decay and lr: Adam's or momentum's."""
    if cfg.optimizer == "adamw":
        return optax.scale_by_adam(b1=hyper.b1, b2=hyper.b2, eps=cfg.eps)
    return optax.trace(decay=hyper.b1)


def decayed(cfg: GrokConfig, hyper: GrokHyper, params, step_dir):
    """One decoupled step ``w - lr * (dir + wd * decay'(w))`` (Loshchilov & Hutter 2019)."""
    shrink = jnp.sign if cfg.decay == "l1" else (lambda w: w)
    return jax.tree.map(lambda w, d: w - hyper.lr * (d + hyper.weight_decay * shrink(w)), params, step_dir)


def train(cfg: GrokConfig, apply: Callable, hyper: GrokHyper, params, data: Split) -> GrokResult:
    """Train one run from ``params`` for ``cfg.steps`` full-batch steps.

    ``apply(params, inputs) -> logits [N, C]``. The history holds ``cfg.n_records``
    points, each taken after ``cfg.log_every`` steps.
    """
    opt = direction(cfg, hyper)

    def loss_fn(p):
        logits = apply(p, data.train_inputs)
        return _weighted_mean(example_losses(logits, data.train_labels, cfg.loss), data.train_weights)

    def step(carry, _):
        grads = jax.grad(loss_fn)(carry["params"])
        step_dir, opt_state = opt.update(grads, carry["opt_state"])
        return {"params": decayed(cfg, hyper, carry["params"], step_dir), "opt_state": opt_state}, None

    def record(carry, _):
        carry, _ = jax.lax.scan(step, carry, None, length=cfg.log_every)
        p = carry["params"]
        train_loss, train_acc = evaluate(apply(p, data.train_inputs), data.train_labels, cfg.loss, data.train_weights)
        test_loss, test_acc = evaluate(apply(p, data.test_inputs), data.test_labels, cfg.loss)
        return carry, History(train_loss, test_loss, train_acc, test_acc, p if cfg.keep_params else None)

    carry = {"params": params, "opt_state": opt.init(params)}
    carry, history = jax.lax.scan(record, carry, None, length=cfg.n_records)
    return GrokResult(carry["params"], history)


def first_step(accuracy: np.ndarray, steps: np.ndarray, threshold: float = ACCURACY_THRESHOLD) -> np.ndarray:
    """First logged step with ``accuracy >= threshold`` per run (``[..., n_records]``), NaN if never."""
    reached = np.asarray(accuracy) >= threshold
    first = np.argmax(reached, axis=-1)
    return np.where(reached.any(axis=-1), np.asarray(steps)[first], np.nan)


def outcomes(history: History, steps: np.ndarray) -> dict:
    """Per run: memorisation and generalisation steps, outcome class and loss ratios.

    Classes (thresholds ``ACCURACY_THRESHOLD``, ``GROK_DELAY``): *diverged* if the final
    train loss is not finite; *memorise then generalise* (grokking) if test accuracy
    reaches the threshold at least ``GROK_DELAY`` times later than train accuracy;
    *generalise directly* if it reaches it sooner; *memorise only* if only train accuracy
    does; *learn nothing* if neither does.
    """
    h = jax.tree.map(np.asarray, history)
    mem, gen = first_step(h.train_accuracy, steps), first_step(h.test_accuracy, steps)
    diverged = ~np.isfinite(h.train_loss[..., -1])
    code = np.where(np.isnan(gen), np.where(np.isnan(mem), 3, 2),
                    np.where(gen >= GROK_DELAY * np.nan_to_num(mem, nan=np.inf), 0, 1))
    code = np.where(diverged, 4, code)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows (diverged runs) give NaN
        ratio = h.test_loss / h.train_loss
        return {"memorise_step": mem, "generalise_step": gen, "outcome": code,
                "max_loss_ratio": np.nanmax(np.where(np.isfinite(ratio), ratio, np.nan), axis=-1),
                "min_train_loss": np.nanmin(h.train_loss, axis=-1), "min_test_loss": np.nanmin(h.test_loss, axis=-1)}


def outcome_counts(code: np.ndarray) -> dict:
    """``{class name: count}`` over all runs; the counts sum to the number of runs."""
    return {name: int(np.sum(np.asarray(code) == i)) for i, name in enumerate(OUTCOMES)}


def map_runs(fn: Callable, batch: int | None = None) -> Callable:
    """``fn`` over a leading run axis of all its arguments, inside one program.

    ``batch=None`` picks ``jax.vmap`` on an accelerator and a plain ``lax.map`` on CPU,
    where XLA runs batched (vmapped) small matmuls several times slower than one run at
    a time; an integer maps ``batch`` vmapped runs at a time.
    """
    if batch is None:
        batch = 0 if jax.default_backend() != "cpu" else 1
    if batch == 0:
        return jax.vmap(fn)
    if batch == 1:
        return lambda *args: jax.lax.map(lambda a: fn(*a), args)
    return lambda *args: jax.lax.map(lambda a: fn(*a), args, batch_size=batch)


def run_program(fn: Callable, *args) -> tuple[Any, float, float]:
    """``jax.jit(fn)(*args)`` compiled ahead, fetched to host: (result, compile s, run s)."""
    t0 = time.perf_counter()
    program = jax.jit(fn).lower(*args).compile()
    t1 = time.perf_counter()
    result = jax.device_get(program(*args))
    return result, t1 - t0, time.perf_counter() - t1
