"""A whole SMDD sweep (dataset sizes x hyperparameters x seeds) on ``run_grid``.

The model is ``relu_output`` (its per-example loss, dense or sparse, fused or not); each
data seed's training sets are made in the program, sizes grouped into padded buckets,
runs split over every device, trained in chunks with checkpoints: all of that is
``jaxmem.train.run_grid``'s. This module adds SMDD's data (``data.sparse_rows``, the
infinite-data batches ``fresh_batch``, repeated points), the test set and the per-run
geometry (hidden vectors, dimensionalities), and keeps per cell the best init seed.
On CPU only small runs are vmapped together, because XLA:CPU lowers batched thin
matmuls poorly (see benchmarks/RESULTS.md).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmem import data, devices, metrics
from jaxmem.buckets import pad_ratio, plan_buckets
from jaxmem.models import relu_output
from jaxmem.progress import Progress
from jaxmem.train import TrainConfig, run_grid
from jaxmem.train.grid import FRESH_STREAM
from jaxmem.train.grid import init_key as grid_init_key
from jaxmem.train.relu import example_loss_fn
from jaxmem.validate import finite_values, in_range, positive_int


@dataclasses.dataclass(frozen=True)
class Sweep:
    """What an SMDD sweep varies. Results come back on the grid
    ``[len(T), len(lr), len(weight_decay), len(init_scale), data_seeds]``,
    keeping per cell the init seed of lowest final train loss (a common practice in
    replications; the paper's text does not say it did this). The training sets of one
    data seed nest: the set of size T is the first T rows of the larger ones.

    ``fresh=True`` is the infinite-data setting: each T is then a batch size, and every
    step draws a new batch of T samples (``fresh_batch``, from the data seed's key and
    the step number). ``train_loss``, ``hidden`` and ``data_dim`` are then measured on
    one more batch of T samples, drawn from the data seed's key like a training set,
    that no step trained on.
    """

    T: tuple[int, ...]
    sparsity: float
    data_seeds: int = 4
    init_seeds: int = 1
    lr: tuple[float, ...] = (1e-3,)
    weight_decay: tuple[float, ...] = (1e-2,)
    init_scale: tuple[float, ...] = (1.0,)
    n_test: int = 10_000
    seed: int = 0
    max_pad_ratio: float = 1.3
    repeat: tuple[int, int] = (0, 1)  # (points, R): the first points appear R times in each set (repeat_points)
    fresh: bool = False  # infinite data: a new batch of T samples every step

    def __post_init__(self):
        if not self.T:
            raise ValueError("T must list at least one dataset size")
        for T in self.T:
            positive_int("dataset size T", T)
        if list(self.T) != sorted(set(self.T)):
            raise ValueError(f"T must be strictly increasing (no repeats), got {tuple(self.T)!r}; "
                             f"e.g. {tuple(sorted(set(self.T)))!r}")
        points, R = self.repeat
        if points < 0 or R < 1 or any(points * R > T for T in self.T):
            raise ValueError(f"repeat={self.repeat!r}: cannot repeat {points} points {R} times "
                             f"in a set of T = {min(self.T)}")
        if self.fresh and points * (R - 1) > 0:
            raise ValueError(f"repeat={self.repeat!r} needs a fixed training set; it cannot go with fresh=True")
        in_range("sparsity", self.sparsity, 0.0, 1.0)
        for name in ("data_seeds", "init_seeds", "n_test"):
            positive_int(name, getattr(self, name))
        for name in ("lr", "weight_decay", "init_scale"):
            finite_values(name, getattr(self, name))

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return (len(self.T), len(self.lr), len(self.weight_decay), len(self.init_scale), self.data_seeds)

    @property
    def grid_axes(self) -> tuple[str, ...]:
        return ("T", "lr", "weight_decay", "init_scale", "data_seed")


def repeat_points(x, n_points: int, repeats: int):
    """Replace rows ``n_points .. repeats * n_points - 1`` by copies of the first ``n_points``.

    Each of the first ``n_points`` rows then appears ``repeats`` times among the first
    ``repeats * n_points`` rows, so in every set of ``T >= repeats * n_points`` rows
    (Jermyn's repeated-datapoint comment in SMDD), and the sets of one seed still nest.
    Works on dense arrays ``[T, n]`` and on ``SparseRows``.
    """
    first = jax.tree.leaves(x)[0]
    T = first.shape[-2]
    if n_points < 0 or repeats < 1 or n_points * repeats > T:
        raise ValueError(f"cannot repeat {n_points} points {repeats} times in {T} rows")
    if (repeats - 1) * n_points == 0:
        return x
    src = np.arange(T)
    src[: n_points * repeats] %= n_points
    return jax.tree.map(lambda a: a[..., src, :], x)


class SweepResult(NamedTuple):
    arrays: dict  # name -> np.ndarray on the sweep grid (see ``Sweep``)
    wall_seconds: float
    compile_seconds: float
    train_seconds: float  # time in the compiled training steps alone
    bucket_train_seconds: list
    pad_ratio: float
    buckets: list
    devices: int  # devices the runs were split over (all processes')


#: the sweep's grid axes for ``run_grid``; ``n_train`` is SMDD's T
GRID_AXES = ("n_train", "lr", "weight_decay", "init_scale", "data_seed", "seed")
#: ``fold_in`` stream of the root key that the test set is drawn from (``run_grid`` uses 0-2)
_TEST = 3


def data_key(sweep: Sweep, data_seed: int):
    """The key of data seed ``data_seed``'s training sets (``run_grid``'s)."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(sweep.seed), 1), data_seed)


def init_key(sweep: Sweep, init_seed: int):
    """The init key of init seed ``init_seed``, the same for every cell."""
    return grid_init_key(sweep.seed, init_seed)


def holdout_key(sweep: Sweep):
    return jax.random.fold_in(jax.random.key(sweep.seed), _TEST)


def training_set(sweep: Sweep, n_features: int, T: int, data_seed: int):
    """Dense ``[T, n]``: the training set of size ``T`` and seed ``data_seed``."""
    points, R = sweep.repeat
    x = data.sparse_features(data_key(sweep, data_seed), T, n_features, sweep.sparsity)
    return repeat_points(x, points, R)


def step_key(key, step):
    """The key of the fresh batch at ``step`` (0-based) of a run whose data key is ``key``."""
    return jax.random.fold_in(jax.random.fold_in(key, FRESH_STREAM), step)


def fresh_batch(key, step, rows: int, n_features: int, sparsity: float, k: int | None = None):
    """Dense ``[rows, n_features]``: the batch a ``fresh`` run trains on at ``step``:
    ``fresh_rows(step_key(key, step), ...)``."""
    return fresh_rows(step_key(key, step), rows, n_features, sparsity, k)


def fresh_rows(key, rows: int, n_features: int, sparsity: float, k: int | None = None):
    """Dense ``[rows, n_features]`` drawn from ``key``: each feature non-zero with probability ``1 - sparsity``, uniform on
    [0, 1), each row rescaled to unit norm, as ``data.sparse_features``.

    Drawn sparsely, about 20x fewer random numbers than one per feature (at S = 0.99): a
    row's non-zeros are where the gaps of a Bernoulli process fall, ``k`` Geometric(1 - S)
    gaps (``data.max_nonzeros``: more non-zeros than that has probability < 1e-20), each
    from one uniform (exact up to float32 rounding). The numbers differ from a training
    set's (``data._rows``), the distribution does not.
    """
    rows, n, p = int(rows), int(n_features), 1.0 - float(sparsity)
    data.check_sizes(rows, n, sparsity)
    k = data.max_nonzeros(n, sparsity) if k is None else int(k)
    key_gap, key_value = jax.random.split(key)
    if p >= 1.0:  # no zeros: every feature
        position = jnp.broadcast_to(jnp.arange(n), (rows, n))
        value = jax.random.uniform(key_value, (rows, n))
    else:
        u = 1.0 - jax.random.uniform(key_gap, (rows, k))  # (0, 1]
        gap = jnp.minimum(jnp.floor(jnp.log(u) / math.log1p(-p)), n).astype(jnp.int32)
        position = jnp.cumsum(gap + 1, axis=-1) - 1  # the non-zeros' features, increasing
        value = jnp.where(position < n, jax.random.uniform(key_value, (rows, k)), 0.0)
    norm = jnp.sqrt(jnp.sum(value**2, axis=-1, keepdims=True))
    value = value / jnp.where(norm > 0, norm, 1.0)
    row = jnp.broadcast_to(jnp.arange(rows)[:, None], position.shape)
    return jnp.zeros((rows, n), jnp.float32).at[row, jnp.minimum(position, n - 1)].add(value)


def runs_per_batch(n_runs: int, elements_per_run: float, backend: str | None = None,
                   memory_bytes: float | None = None, label: str = "one run") -> int:
    """How many runs to vmap together: fit ``BYTES_PER_ELEMENT`` per ``T x n`` element of
    each run in half the memory; on CPU vmap only while a batch stays under 10^6 elements
    (larger runs go one after another, which measured fastest there, see
    benchmarks/RESULTS.md). Raises ``ValueError`` when one run alone cannot fit.
    """
    backend = backend or jax.default_backend()
    budget = 0.5 * (_device_memory() if memory_bytes is None else memory_bytes)
    need = BYTES_PER_ELEMENT * elements_per_run
    if need > budget:
        raise ValueError(f"{label} needs about {need / 2**30:.1f} GiB, more than the "
                         f"{budget / 2**30:.1f} GiB this device allows a batch; use fewer "
                         "rows or features per run, or a device with more memory")
    fit = int(budget // need)
    if backend == "cpu":
        fit = min(fit, max(1, int(1e6 // elements_per_run)))
    return max(1, min(n_runs, fit))


#: bytes of device memory per element of a run's ``T x n``: about six float32 copies
#: (pre-activations, outputs and their gradients, the dense input).
BYTES_PER_ELEMENT = 24


def _device_memory() -> float:
    stats = jax.local_devices()[0].memory_stats() or {}
    if "bytes_limit" in stats:
        return float(stats["bytes_limit"])
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def use_dense(rows: int, n_features: int, sparsity: float) -> bool:
    """Dense inputs when a run's ``T x n`` is small (under 2^24 elements, 64 MiB) or the
    data are not sparse: reading them beats the gathers and scatters of the sparse form."""
    return rows * n_features <= 2**24 or sparsity < 0.5


def run_sweep(cfg: TrainConfig, sweep: Sweep, progress: Progress | bool | None = None,
              runs_batch: int | None = None, chunks: int = 10, dense: bool | None = None,
              checkpoint_dir=None, memory_bytes: float | None = None) -> SweepResult:
    """Train every run of ``sweep``; return numpy arrays on the sweep grid.

    ``arrays`` holds per cell (best init seed): ``W [.., m, n]``, ``b [.., n]``,
    ``train_loss``, ``test_loss``, ``history [.., n_records]`` (train loss after
    ``log_every, 2 log_every, ..., steps`` updates), ``diverged``, ``hidden [.., T_max, m]``
    (rows past T are 0, which leaves the dimensionality and D* of the real rows
    unchanged, so metrics apply to the whole array at once), ``data_dim [.., T_max]``
    (NaN past T), ``feature_dim [.., n]``, ``best_init`` and ``init_train_loss [..,
    init_seeds]``.

    With ``checkpoint_dir``, each chunk's state and each bucket's results are saved
    there (atomically), and a sweep of the same settings started again on that folder
    picks up where it stopped, with the same final numbers. ``memory_bytes`` (default:
    the device's) bounds how many runs are vmapped at once on each device;
    ``runs_batch`` sets that number instead. The runs are split over ``jax.devices()``.
    """
    t_start = time.perf_counter()
    k = data.max_nonzeros(cfg.n_features, sweep.sparsity)
    test = data.sparse_rows(holdout_key(sweep), sweep.n_test, cfg.n_features, sweep.sparsity, k=k)
    if use_dense(sweep.n_test, cfg.n_features, sweep.sparsity) if dense is None else dense:
        test = data.to_dense(test, cfg.n_features)
    model = smdd_model(cfg, sweep.sparsity, sweep.repeat, sweep.fresh, k, dense)
    grid = dict(zip(GRID_AXES, (sweep.T, sweep.lr, sweep.weight_decay, sweep.init_scale,
                                range(sweep.data_seeds), range(sweep.init_seeds))))

    def batch_for(rows):
        return runs_batch or runs_per_batch(10**9, rows * cfg.n_features, memory_bytes=memory_bytes,
                                            label=f"one run of {rows} rows x {cfg.n_features} features")

    res = run_grid(model.init, model.loss, model.data, grid, cfg.steps, warmup_frac=cfg.warmup_frac, b1=cfg.b1,
                   b2=cfg.b2, eps=cfg.eps, schedule={"cosine": "warmup_cosine", "constant": "constant"}[cfg.schedule],
                   n_history=cfg.n_history, evaluate=model.evaluate, aux=test, fresh=sweep.fresh, seed=sweep.seed,
                   chunks=chunks, checkpoint_dir=checkpoint_dir, runs_batch=batch_for,
                   max_pad_ratio=sweep.max_pad_ratio, progress=progress,
                   checkpoint_tag=repr((cfg, sweep, dense)))
    out = {"W": res.params["W"], "train_loss": res.train_loss, "history": res.history, "diverged": res.diverged,
           **res.outputs}
    if "b" in res.params:
        out["b"] = res.params["b"]
    T = np.asarray(sweep.T)[:, None, None, None, None, None]
    rows = np.arange(out["hidden"].shape[-2])
    out["hidden"] = np.where((rows[:, None] < T[..., None, None]), np.nan_to_num(out["hidden"]), 0.0)
    out["data_dim"] = np.where(rows < T[..., None], out["data_dim"], np.nan)
    buckets = plan_buckets(sweep.T, sweep.max_pad_ratio)
    return SweepResult(_best_init(out), time.perf_counter() - t_start, res.compile_seconds, res.train_seconds,
                       res.bucket_seconds, pad_ratio(buckets), buckets, devices.run_mesh().size)


class SmddModel(NamedTuple):
    init: object
    loss: object
    data: object
    evaluate: object


@functools.lru_cache(maxsize=32)
def smdd_model(cfg: TrainConfig, sparsity: float, repeat: tuple, fresh: bool, k: int, dense) -> SmddModel:
    """SMDD's model, data and evaluation as ``run_grid`` functions (cached, so equal
    settings share compiled programs)."""
    per_example = example_loss_fn(cfg)

    def init(key, hp):
        return relu_output.init(key, cfg.n_features, cfg.n_hidden, hp["init_scale"], cfg.use_bias)

    def loss(params, x, hp):
        return per_example(params, x)

    def make(key, rows):
        as_dense = use_dense(rows, cfg.n_features, sparsity) if dense is None else dense
        if fresh:
            x = fresh_rows(key, rows, cfg.n_features, sparsity, k)
            return x if as_dense else data.compress(x, k)[0]
        x = jax.tree.map(lambda a: a[0], data.sparse_chunks(key, 1, rows, cfg.n_features, sparsity, True, k)[0])
        x = repeat_points(x, *repeat) if repeat[0] * (repeat[1] - 1) > 0 else x
        return data.to_dense(x, cfg.n_features) if as_dense else x

    def evaluate(params, x, weights, hp, test):
        h = relu_output.hidden(params, x, cfg.hidden_relu) * weights[:, None]
        return {"test_loss": relu_output.loss(params, test, None, cfg.reduction, cfg.hidden_relu),
                "hidden": h, "data_dim": metrics.dimensionality(h),
                "feature_dim": metrics.feature_dimensionality(params)}

    return SmddModel(init, loss, make, evaluate)


def _best_init(out: dict) -> dict:
    """Keep, per cell, the init seed with the lowest final train loss (NaN counts as worst)."""
    loss = np.where(np.isfinite(out["train_loss"]), out["train_loss"], np.inf)
    best = np.argmin(loss, axis=-1)
    arrays = {}
    for name, value in out.items():
        idx = best.reshape(best.shape + (1,) * (value.ndim - best.ndim))
        arrays[name] = np.take_along_axis(value, idx, axis=best.ndim).squeeze(best.ndim)
    arrays["best_init"] = best
    arrays["init_train_loss"] = out["train_loss"]
    return arrays
