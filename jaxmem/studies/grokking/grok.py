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
#: the explorable's sparse-parity figure classifies by losses (its published figure code,
#: ``sweep-sparse-parity/init.js``): a min loss above ``LOSS_THRESHOLD`` is not learned, and
#: a max test/train loss ratio above ``RATIO_THRESHOLD`` is grokking
LOSS_THRESHOLD = 1e-5
RATIO_THRESHOLD = 5e4
#: where the source's per-run minimum losses sit (its published ``minTrainLoss``: about
#: 2^-23 for nearly every model): ``-log(1 - eps)`` for float32's ``eps``, as from a
#: probability clipped to ``1 - eps``
FLOAT32_LOSS_FLOOR = float(-np.log1p(-np.finfo(np.float32).eps))


@dataclasses.dataclass(frozen=True)
class GrokConfig(Logged):
    """Static settings. ``decay="l2"`` is AdamW's decoupled ``w -= lr * wd * w``; ``"l1"``
    adds ``wd * sign(w)`` to the gradient before the optimizer, as the explorable's code
    does (``optax.chain`` of that and ``optax.adam``). ``optimizer="sgd"`` is SGD with
    momentum ``b1``. ``class_mean`` divides each example's loss by the number of classes
    (the explorable's ``-mean(onehot * log_softmax)``). ``loss_floor`` floors each
    example's *recorded* loss (training is unchanged), e.g. at ``FLOAT32_LOSS_FLOOR``."""

    steps: int = 50_000
    optimizer: str = "adamw"
    decay: str = "l2"
    loss: str = "ce"
    n_history: int = 200
    eps: float = 1e-8
    class_mean: bool = False
    loss_floor: float = 0.0

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


def example_losses(logits, labels, loss: str, class_mean: bool = False) -> jax.Array:
    """Cross-entropy, or squared error to the one-hot label summed over classes, ``[N]``;
    divided by the number of classes when ``class_mean``."""
    if loss == "ce":
        logp = jax.nn.log_softmax(logits, axis=-1)
        per_example = -jnp.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]
    else:
        target = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
        per_example = jnp.sum(jnp.square(logits - target), axis=-1)
    return per_example / logits.shape[-1] if class_mean else per_example


def _weighted_mean(values, weights):
    return jnp.sum(weights * values) / jnp.sum(weights)


def evaluate(cfg: GrokConfig, logits, labels, weights=None) -> tuple[jax.Array, jax.Array]:
    """(mean loss, accuracy) weighted by ``weights`` (all 1 when None); each example's
    loss floored at ``cfg.loss_floor``."""
    weights = jnp.ones(labels.shape, logits.dtype) if weights is None else weights
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(logits.dtype)
    losses = jnp.maximum(example_losses(logits, labels, cfg.loss, cfg.class_mean), cfg.loss_floor)
    return _weighted_mean(losses, weights), _weighted_mean(correct, weights)


def direction(cfg: GrokConfig, hyper: GrokHyper) -> optax.GradientTransformation:
    """The optimizer's update direction before decay and lr: Adam's or momentum's."""
    if cfg.optimizer == "adamw":
        return optax.scale_by_adam(b1=hyper.b1, b2=hyper.b2, eps=cfg.eps)
    return optax.trace(decay=hyper.b1)


def with_l1(cfg: GrokConfig, hyper: GrokHyper, params, grads):
    """``grads + wd * sign(w)`` for ``decay="l1"`` (the explorable's ``l1_regularizer``), else ``grads``."""
    if cfg.decay != "l1":
        return grads
    return jax.tree.map(lambda g, w: g + (hyper.weight_decay * jnp.sign(w)).astype(g.dtype), grads, params)


def decayed(cfg: GrokConfig, hyper: GrokHyper, params, step_dir):
    """One step ``w - lr * dir``, with AdamW's decoupled ``- lr * wd * w`` for ``decay="l2"``
    (Loshchilov & Hutter 2019); each param keeps its dtype."""
    wd = hyper.weight_decay if cfg.decay == "l2" else 0.0
    return jax.tree.map(lambda w, d: (w - hyper.lr * (d + wd * w)).astype(w.dtype), params, step_dir)


def train(cfg: GrokConfig, apply: Callable, hyper: GrokHyper, params, data: Split,
          snapshot: Callable | None = None) -> GrokResult:
    """Train one run from ``params`` for ``cfg.steps`` full-batch steps.

    ``apply(params, inputs) -> logits [N, C]``. The history holds ``cfg.n_records``
    points, each taken after ``cfg.log_every`` steps; with ``snapshot``, also
    ``snapshot(params)`` at each.
    """
    opt = direction(cfg, hyper)

    def loss_fn(p):
        logits = apply(p, data.train_inputs)
        return _weighted_mean(example_losses(logits, data.train_labels, cfg.loss, cfg.class_mean),
                              data.train_weights.astype(logits.dtype))

    def step(carry, _):
        params = carry["params"]
        grads = with_l1(cfg, hyper, params, jax.grad(loss_fn)(params))
        step_dir, opt_state = opt.update(grads, carry["opt_state"])
        opt_state = jax.tree.map(lambda new, old: new.astype(old.dtype), opt_state, carry["opt_state"])
        return {"params": decayed(cfg, hyper, params, step_dir), "opt_state": opt_state}, None

    def record(carry, _):
        carry, _ = jax.lax.scan(step, carry, None, length=cfg.log_every)
        p = carry["params"]
        train_loss, train_acc = evaluate(cfg, apply(p, data.train_inputs), data.train_labels, data.train_weights)
        test_loss, test_acc = evaluate(cfg, apply(p, data.test_inputs), data.test_labels)
        return carry, History(train_loss, test_loss, train_acc, test_acc, None if snapshot is None else snapshot(p))

    carry = {"params": params, "opt_state": opt.init(params)}
    carry, history = jax.lax.scan(record, carry, None, length=cfg.n_records)
    return GrokResult(carry["params"], history)


def first_step(accuracy: np.ndarray, steps: np.ndarray, threshold: float = ACCURACY_THRESHOLD) -> np.ndarray:
    """First logged step with ``accuracy >= threshold`` per run (``[..., n_records]``), NaN if never."""
    reached = np.asarray(accuracy) >= threshold
    first = np.argmax(reached, axis=-1)
    return np.where(reached.any(axis=-1), np.asarray(steps)[first], np.nan)


def loss_classes(min_train_loss, min_test_loss, max_loss_ratio, loss_threshold: float = LOSS_THRESHOLD,
                 ratio_threshold: float = RATIO_THRESHOLD) -> np.ndarray:
    """The explorable's sparse-parity classes (indices into ``OUTCOMES``), in its figure
    code's order: *learn nothing* if the min train loss > ``loss_threshold``; else
    *memorise only* if the min test loss > ``loss_threshold``; else *generalise directly*
    if the max test/train loss ratio < ``ratio_threshold``; else *memorise then
    generalise*. Runs with a NaN min train loss are *diverged*."""
    min_train, min_test, ratio = (np.asarray(x, np.float64) for x in (min_train_loss, min_test_loss, max_loss_ratio))
    code = np.where(min_train > loss_threshold, 3,
                    np.where(min_test > loss_threshold, 2, np.where(ratio < ratio_threshold, 1, 0)))
    return np.where(np.isnan(min_train), 4, code)


def longest_run(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first index, length) of the longest run of consecutive True along the last axis;
    length 0 where there is none."""
    mask = np.asarray(mask, bool)
    best, best_end, current = (np.zeros(mask.shape[:-1], np.int64) for _ in range(3))
    for i in range(mask.shape[-1]):
        current = np.where(mask[..., i], current + 1, 0)
        longer = current > best
        best, best_end = np.where(longer, current, best), np.where(longer, i, best_end)
    return best_end - best + 1, best


def outcomes(history: History, steps: np.ndarray, loss_threshold: float = LOSS_THRESHOLD,
             ratio_threshold: float = RATIO_THRESHOLD) -> dict:
    """Per run: memorisation and generalisation steps, outcome classes and loss ratios.

    ``outcome`` classes by accuracy (thresholds ``ACCURACY_THRESHOLD``, ``GROK_DELAY``):
    *diverged* if the final train loss is not finite; *memorise then generalise*
    (grokking) if test accuracy reaches the threshold at least ``GROK_DELAY`` times later
    than train accuracy; *generalise directly* if it reaches it sooner; *memorise only*
    if only train accuracy does; *learn nothing* if neither does. ``loss_outcome`` is
    ``loss_classes`` (the explorable's sparse-parity rule). ``plateau_steps`` is the
    longest stretch with train accuracy >= ``ACCURACY_THRESHOLD`` and test accuracy < 0.5.
    """
    h = jax.tree.map(np.asarray, history)
    steps = np.asarray(steps)
    mem, gen = first_step(h.train_accuracy, steps), first_step(h.test_accuracy, steps)
    diverged = ~np.isfinite(h.train_loss[..., -1])
    code = np.where(np.isnan(gen), np.where(np.isnan(mem), 3, 2),
                    np.where(gen >= GROK_DELAY * np.nan_to_num(mem, nan=np.inf), 0, 1))
    code = np.where(diverged, 4, code)
    plateau = (h.train_accuracy >= ACCURACY_THRESHOLD) & (h.test_accuracy < 0.5)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows (diverged runs) give NaN
        ratio = h.test_loss / h.train_loss
        out = {"memorise_step": mem, "generalise_step": gen, "outcome": code,
               "max_loss_ratio": np.nanmax(np.where(np.isfinite(ratio), ratio, np.nan), axis=-1),
               "min_train_loss": np.nanmin(np.where(np.isfinite(h.train_loss), h.train_loss, np.nan), axis=-1),
               "min_test_loss": np.nanmin(np.where(np.isfinite(h.test_loss), h.test_loss, np.nan), axis=-1),
               "plateau_steps": longest_run(plateau)[1] * int(steps[0])}
    loss_code = loss_classes(out["min_train_loss"], out["min_test_loss"], out["max_loss_ratio"],
                             loss_threshold, ratio_threshold)
    out["loss_outcome"] = np.where(diverged, 4, loss_code)
    return out


def count_classes(code) -> np.ndarray:
    """Runs of each class along the last axis: ``[..., runs] -> [..., len(OUTCOMES)]``."""
    code = np.asarray(code)
    return np.stack([(code == i).sum(-1) for i in range(len(OUTCOMES))], axis=-1)


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
