"""The grokking study's models on the package's trainer, and the outcomes of a run's history.

``grid_model`` turns a model (``apply``, an init from a key) into ``run_grid``'s
``init``, per-example ``loss`` and ``observe`` (train/test loss and accuracy at every
history point); ``fit`` trains a grid of them with ``jaxmem.train.run_grid`` in the
explorable's setting (docs/sources.md §3): AdamW with decoupled decay (or SGD with momentum) and a
constant learning rate on the full training set. Every numeric setting (lr, weight
decay, betas, init scale) is a traced grid axis; static choices (optimizer, decay, loss,
step count) live in ``GrokConfig``. A study seed ``s`` (grid axis ``RUN_SEED``) draws
its split and init from ``fold_in(key(root), s)``. The rest of the module reads a run's
history: memorisation and generalisation steps, outcome classes, loss ratios.
"""
from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmem.tasks import Split
from jaxmem.train import GridResult, Logged, run_grid
from jaxmem.validate import one_of, positive_int

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
            positive_int(name, getattr(self, name))
        for name, known in (("optimizer", OPTIMIZERS), ("decay", DECAYS), ("loss", LOSSES)):
            one_of(name, getattr(self, name), known)

    @property
    def history_steps(self) -> np.ndarray:
        """The step after which each history point is taken, ``[n_records]``."""
        return self.log_every * np.arange(1, self.n_records + 1)


class History(NamedTuple):
    train_loss: jax.Array
    test_loss: jax.Array
    train_accuracy: jax.Array
    test_accuracy: jax.Array
    params: Any = None


class GrokResult(NamedTuple):
    params: Any
    history: History
    diverged: Any = None  # [runs] bool: a non-finite loss or parameter (``run_grid``'s)


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


#: the grid axis of the study's seeds, traced into ``hp``: seed ``s`` draws its run's split
#: and init from ``fold_in(key(root), s)`` (``seed_keys``), so a run's numbers do not
#: depend on the grid around it. (``run_grid``'s own ``seed`` axis, whose keys differ, is
#: not used.)
RUN_SEED = "run_seed"
#: the hyperparameters a grid may trace, with the explorable's modular-addition values
HYPER = {"lr": 1e-3, "weight_decay": 1.0, "b1": 0.9, "b2": 0.98, "init_scale": 1.0}


def seed_keys(root: int, seed) -> tuple[jax.Array, jax.Array]:
    """(data key, init key) of study seed ``seed`` under the root seed ``root``."""
    k_data, k_init = jax.random.split(jax.random.fold_in(jax.random.key(root), seed))
    return k_data, k_init


def stack_splits(splits: list[Split]) -> tuple[dict, dict]:
    """Per-seed splits (the same shapes) as ``run_grid``'s fixed data and ``aux``:
    ``{"inputs", "labels"}`` with train rows ``[N, seed, ...]`` (the example axis first:
    ``run_grid`` weighs rows past a run's ``n_train`` 0; the splits' own weights are not
    used) and test rows ``[seed, N_test, ...]``."""
    stack = lambda axis, *leaves: jnp.stack(leaves, axis)
    train = {"inputs": jax.tree.map(lambda *a: stack(1, *a), *[s.train_inputs for s in splits]),
             "labels": stack(1, *[s.train_labels for s in splits])}
    test = {"inputs": jax.tree.map(lambda *a: stack(0, *a), *[s.test_inputs for s in splits]),
            "labels": stack(0, *[s.test_labels for s in splits])}
    return train, test


def run_seed(hp) -> jax.Array:
    """The study seed of a run, from its traced ``hp``."""
    return jnp.asarray(hp[RUN_SEED]).astype(jnp.int32)


class GridModel(NamedTuple):
    """``run_grid``'s model functions (see ``grid_model``); ``objective`` (None: the
    trainer's weighted mean of ``loss``) is ``run_grid``'s scalar objective."""

    init: Callable
    loss: Callable
    observe: Callable
    evaluate: Callable | None
    objective: Callable | None = None


def apart(loss: Callable) -> Callable:
    """``run_grid``'s scalar objective ``sum(w * loss) / sum(w)``, its value and its
    gradient computed apart.

    The trainer takes ``value_and_grad`` at each history point to record the objective;
    XLA then compiles the cross-entropy's gradient with its value, and it rounds
    differently (by an ulp) from the gradient alone, which Adam amplifies over a long
    run. Here the gradient is always ``jax.grad`` of the mean alone and the value a
    separate pass behind an ``optimization_barrier``, as the study's own loop did before
    the port (its histories after every block, apart from the steps).
    """

    def mean(params, batch, weights, hp):
        return jnp.sum(weights * loss(params, batch, hp)) / jnp.sum(weights)

    @jax.custom_vjp
    def objective(params, batch, weights, hp):
        return mean(params, batch, weights, hp)

    def forward(params, batch, weights, hp):
        value = mean(jax.lax.optimization_barrier(params), batch, weights, hp)
        return value, (params, batch, weights, hp)

    def backward(res, g):
        grads = jax.grad(mean)(*res)
        return jax.tree.map(lambda x: (g * x).astype(x.dtype), grads), None, None, None

    objective.defvjp(forward, backward)
    return objective


def grid_model(cfg: GrokConfig, apply: Callable, make_params: Callable, root: int, seeds,
               snapshot: Callable | None = None, final: Callable | None = None) -> GridModel:
    """``run_grid``'s functions for data from ``stack_splits`` of ``seeds`` (in order).

    ``apply(params, inputs) -> logits [N, C]``; ``make_params(init key, hp) -> params``,
    called with ``seed_keys(root, s)[1]`` for the run's study seed ``s = hp[RUN_SEED]``,
    whose column of the data it trains on. ``observe`` records ``train_loss``,
    ``test_loss``, ``train_accuracy``, ``test_accuracy`` (losses floored per example at
    ``cfg.loss_floor``) and, with ``snapshot``, ``snapshot(params)``; ``evaluate`` returns
    ``final(params)`` (a dict) after the last step.
    """
    seeds = np.asarray([int(s) for s in seeds], np.int32)
    if len(set(seeds.tolist())) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds.tolist()}")

    def column(hp):
        return jnp.argmax(seeds == run_seed(hp))

    def pick(tree, hp, axis):
        c = column(hp)
        return jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, c, axis, keepdims=False), tree)

    def init(key, hp):
        return make_params(seed_keys(root, run_seed(hp))[1], hp)

    def loss(params, batch, hp):
        batch = pick(batch, hp, 1)
        return example_losses(apply(params, batch["inputs"]), batch["labels"], cfg.loss, cfg.class_mean)

    def observe(params, batch, weights, hp, aux):
        params = jax.lax.optimization_barrier(params)  # evaluated apart from the step (see ``apart``)
        train, test = pick(batch, hp, 1), pick(aux, hp, 0)
        train_loss, train_accuracy = evaluate(cfg, apply(params, train["inputs"]), train["labels"], weights)
        test_loss, test_accuracy = evaluate(cfg, apply(params, test["inputs"]), test["labels"])
        out = {"train_loss": train_loss, "test_loss": test_loss, "train_accuracy": train_accuracy,
               "test_accuracy": test_accuracy}
        if snapshot is not None:
            out["snapshot"] = snapshot(params)
        return out

    at_end = None if final is None else (lambda params, batch, weights, hp, aux: final(params))
    return GridModel(init, loss, observe, at_end, apart(loss))


def fit(cfg: GrokConfig, model: GridModel, train, test, grid: dict, *, hp_dtype=jnp.float32, b1: float = 0.9,
        b2: float = 0.999, runs_batch: int | None = None, max_pad_ratio: float = 1.3, progress=None,
        checkpoint_dir=None) -> GridResult:
    """Train ``grid`` (axis -> values; ``RUN_SEED``, ``n_train`` and the traced ``HYPER``
    names) with ``run_grid`` for ``cfg.steps`` full-batch steps at a constant lr.

    ``b1``, ``b2``: Adam's betas where the grid has no such axis. With
    ``optimizer="sgd"`` the ``b1`` axis (or ``b1``) is the momentum. Every record of the
    result is ``[grid..., cfg.n_records]``, taken after ``cfg.log_every, 2 cfg.log_every,
    ...`` steps (``cfg.history_steps``). ``checkpoint_dir``: ``run_grid``'s (a trained
    grid is saved there, and loaded by a rerun of the same grid).
    """
    grid = dict(grid)
    if cfg.optimizer == "sgd":
        grid = {("momentum" if name == "b1" else name): values for name, values in grid.items()}
        grid.setdefault("momentum", [b1])
    loss = None if model.objective is not None else model.loss
    return run_grid(model.init, loss, train, grid, cfg.steps, objective=model.objective, optimizer=cfg.optimizer,
                    schedule="constant", warmup_frac=0.0, b1=b1, b2=b2, eps=cfg.eps, decay=cfg.decay,
                    n_history=cfg.n_history, observe=model.observe, evaluate=model.evaluate, aux=test,
                    runs_batch=runs_batch, max_pad_ratio=max_pad_ratio, hp_dtype=hp_dtype, progress=progress,
                    checkpoint_dir=checkpoint_dir)


def runs_first(tree, n_axes: int):
    """Every leaf with its first ``n_axes`` (a grid's) axes flattened into one run axis."""
    return jax.tree.map(lambda a: np.asarray(a).reshape((-1,) + np.shape(a)[n_axes:]), tree)


def history_of(records: dict) -> History:
    """The ``History`` of ``fit``'s records (``GridResult.records``)."""
    return History(records["train_loss"], records["test_loss"], records["train_accuracy"], records["test_accuracy"],
                   records.get("snapshot"))


def grok_result(res: GridResult) -> GrokResult:
    """``fit``'s result with the grid's axes flattened into one run axis, in the grid's order."""
    n = len(res.axes)
    return GrokResult(runs_first(res.params, n), history_of(runs_first(res.records, n)),
                      np.asarray(res.diverged).reshape(-1))


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
