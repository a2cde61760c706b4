"""A whole SMDD sweep (dataset sizes x hyperparameters x seeds) as a few compiled programs.

Sizes are grouped into padded buckets (``buckets.plan_buckets``); each bucket is one
program that makes its data, trains every run and evaluates it. A bucket's runs are
split over every device (``jaxmem.devices``: a 1-D mesh and ``jax.shard_map``, across
processes after ``jax.distributed.initialize()``); on each device they go through
``lax.map(..., batch_size=B)``: ``B`` runs are vmapped together, batches run in turn. On
GPU ``B`` is as large as memory allows; on CPU only small runs are vmapped, because
XLA:CPU lowers batched thin matmuls poorly (see benchmarks/RESULTS.md). Programs are
compiled once per process and shape (``compile_bucket``), and once per machine with
``jaxmem.enable_compilation_cache()``.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxmem import data, devices, metrics, results
from jaxmem.buckets import Bucket, pad_ratio, plan_buckets
from jaxmem.devices import SPLIT, WHOLE
from jaxmem.models import relu_output
from jaxmem.progress import Progress
from jaxmem.train import Hyper, TrainConfig, advance, finish, init_state


@dataclasses.dataclass(frozen=True)
class Sweep:
    """What an SMDD sweep varies. Results come back on the grid
    ``[len(T), len(lr), len(weight_decay), len(init_scale), data_seeds]``,
    keeping per cell the init seed of lowest final train loss (a common practice in
    replications; the paper's text does not say it did this).

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
    repeat: tuple[int, int] = (0, 1)  # (points, R): the first points appear R times in each set
    fresh: bool = False  # infinite data: a new batch of T samples every step

    def __post_init__(self):
        if not self.T:
            raise ValueError("T must list at least one dataset size")
        for T in self.T:
            if int(T) != T or T < 1:
                raise ValueError(f"dataset size T must be a positive integer, got {T!r}")
        points, R = self.repeat
        if points < 0 or R < 1 or any(points * R > T for T in self.T):
            raise ValueError(f"repeat={self.repeat!r}: cannot repeat {points} points {R} times "
                             f"in a set of T = {min(self.T)}")
        if self.fresh and points * (R - 1) > 0:
            raise ValueError(f"repeat={self.repeat!r} needs a fixed training set; it cannot go with fresh=True")
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must lie in [0, 1), got {self.sparsity!r}")
        for name in ("data_seeds", "init_seeds", "n_test"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("lr", "weight_decay", "init_scale"):
            values = getattr(self, name)
            if not values or any(v < 0 or not math.isfinite(v) for v in values):
                raise ValueError(f"{name} must be a non-empty list of finite values >= 0, got {values!r}")

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return (len(self.T), len(self.lr), len(self.weight_decay), len(self.init_scale), self.data_seeds)

    @property
    def grid_axes(self) -> tuple[str, ...]:
        return ("T", "lr", "weight_decay", "init_scale", "data_seed")


class RunSpec(NamedTuple):
    """One run of a bucket, as traced values."""

    n_rows: jax.Array  # T
    data_index: jax.Array  # which of the bucket's datasets
    init_key: jax.Array  # raw key data (``jax.random.key_data``), so that numpy can carry it
    hyper: Hyper


class SweepResult(NamedTuple):
    arrays: dict  # name -> np.ndarray on the sweep grid (see ``Sweep``)
    wall_seconds: float
    compile_seconds: float
    train_seconds: float  # time in the compiled training steps alone
    bucket_train_seconds: list
    pad_ratio: float
    buckets: list
    devices: int  # devices the runs were split over (all processes')


def _keys(sweep: Sweep):
    root = jax.random.key(sweep.seed)
    return jax.random.fold_in(root, 0), jax.random.fold_in(root, 1), jax.random.fold_in(root, 2)


def dataset_key(data_root, T: int, data_seed: int):
    """The key of the training set of size ``T`` and seed ``data_seed``."""
    return jax.random.fold_in(jax.random.fold_in(data_root, T), data_seed)


#: ``fold_in`` tag of the fresh batches' keys: no training set has this many rows, so
#: no row key of a set (``fold_in(key, row)``) is also a batch stream's key.
FRESH_STREAM = 2**31 - 1


def step_key(key, step):
    """The key of the fresh batch at ``step`` (0-based) of a run whose data key is ``key``."""
    return jax.random.fold_in(jax.random.fold_in(key, FRESH_STREAM), step)


def fresh_batch(key, step, rows: int, n_features: int, sparsity: float, k: int | None = None):
    """Dense ``[rows, n_features]``: the batch a ``fresh`` run trains on at ``step``, from
    ``step_key``: each feature non-zero with probability ``1 - sparsity``, uniform on
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
    key_gap, key_value = jax.random.split(step_key(key, step))
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


def _bucket_runs(sweep: Sweep, bucket: Bucket, init_root):
    """Runs of a bucket in grid order, with their grid index and dataset pairs."""
    pairs = [(T, s) for T in bucket.sizes for s in range(sweep.data_seeds)]
    specs, cells = [], []
    for (iT, T) in enumerate(sweep.T):
        if T not in bucket.sizes:
            continue
        grid = itertools.product(enumerate(sweep.lr), enumerate(sweep.weight_decay),
                                 enumerate(sweep.init_scale), range(sweep.data_seeds),
                                 range(sweep.init_seeds))
        for (il, lr), (iw, wd), (ii, sc), s, k in grid:
            key = jax.random.fold_in(dataset_key(init_root, T, s), il * 1_000_003 + iw * 1009 + ii * 17 + k)
            specs.append((T, pairs.index((T, s)), key, (lr, wd, sc)))
            cells.append((iT, il, iw, ii, s, k))
    n_rows = np.array([s[0] for s in specs], np.int32)
    data_index = np.array([s[1] for s in specs], np.int32)
    keys = np.asarray(jax.random.key_data(jnp.stack([s[2] for s in specs])))
    hyper = Hyper(*(np.array([s[3][i] for s in specs], np.float32) for i in range(3)))
    return RunSpec(n_rows, data_index, keys, hyper), cells, pairs


@dataclasses.dataclass(frozen=True)
class BucketShape:
    """Everything a bucket's compiled programs depend on: buckets (and sweeps) with
    equal shapes share them."""

    cfg: TrainConfig
    sparsity: float
    repeat: tuple[int, int]
    fresh: bool
    rows: int  # padded T of the bucket
    k: int  # non-zeros per row of the sparse form
    dense: bool
    batch: int  # runs vmapped together on each device
    chunk_records: int  # history records per training call
    runs: RunSpec  # shapes of the runs, padded to a multiple of the device count
    dataset_inputs: tuple  # shapes of the datasets' (key data, sizes)
    test: object  # shapes of the test set
    mesh: Mesh


class BucketPrograms(NamedTuple):
    """A bucket's compiled programs: datasets whole on every device, runs sharded."""

    make_sets: Callable  # (key data, sizes) -> the bucket's training sets, and their keys
    start: Callable  # (runs) -> states: (TrainState, steps done)
    step_chunk: Callable  # (states, runs, sets) -> (states, losses [runs, chunk_records]); donates states
    evaluate: Callable  # (states, histories, runs, sets, test) -> dict of per-run results


@functools.lru_cache(maxsize=32)
def compile_bucket(shape: BucketShape) -> BucketPrograms:
    """Compile a bucket's programs ahead of time, once per process for each shape."""
    cfg, T_pad, mesh = shape.cfg, shape.rows, shape.mesh

    def one_dataset(key_data, n_rows):
        key = jax.random.wrap_key_data(key_data)
        rows, _ = data._sparse_chunks(key, 1, T_pad, cfg.n_features, shape.sparsity, True, shape.k)
        rows = jax.tree.map(lambda a: a[0], rows)
        points, R = shape.repeat
        if points * (R - 1) > 0:  # as data.repeat_points, on the first n_rows rows
            first_copy = n_rows - points * (R - 1)
            row = jnp.arange(T_pad)
            copy = (row >= first_copy) & (row < n_rows)
            rows = jax.tree.map(lambda a: a[jnp.where(copy, (row - first_copy) % points, row)], rows)
        return (data.to_dense(rows, cfg.n_features) if shape.dense else rows), key_data

    def run_data(spec, sets):
        x = jax.tree.map(lambda a: a[spec.data_index], sets[0])
        return x, (jnp.arange(T_pad) < spec.n_rows).astype(jnp.float32)

    def fresh_data(spec, sets):
        """The run's fresh batch at each step (None for a fixed training set)."""
        if not shape.fresh:
            return None
        key = jax.random.wrap_key_data(sets[1][spec.data_index])

        def at(step):
            x = fresh_batch(key, step, T_pad, cfg.n_features, shape.sparsity, shape.k)
            return x if shape.dense else data._compress(x, shape.k)[0]

        return at

    def start(specs):
        return jax.vmap(lambda s: (init_state(cfg, s.hyper, jax.random.wrap_key_data(s.init_key)),
                                   jnp.zeros((), jnp.int32)))(specs)

    def step_chunk(states, specs, sets):
        def one(args):
            (state, done), spec = args
            x, w = run_data(spec, sets)
            state, losses = advance(cfg, spec.hyper, state, x, w, shape.chunk_records,
                                    fresh_data(spec, sets), done)
            return (state, done + shape.chunk_records * cfg.log_every), losses

        return _map_runs(one, (states, specs), shape.batch)

    def evaluate(states, histories, specs, sets, test):
        def one(args):
            (state, _), history, spec = args
            x, w = run_data(spec, sets)
            result = finish(cfg, state, history, x, w)
            h_TxM = relu_output.hidden(result.params, x, cfg.hidden_relu) * w[:, None]
            return {
                "W": result.params["W"], "b": result.params["b"],
                "train_loss": result.train_loss, "history": history, "diverged": result.diverged,
                "test_loss": relu_output.loss(result.params, test, None, cfg.reduction, cfg.hidden_relu),
                "hidden": h_TxM, "data_dim": metrics.dimensionality(h_TxM),
                "feature_dim": metrics.feature_dimensionality(result.params),
            }

        return _map_runs(one, (states, histories, specs), shape.batch)

    whole = devices.replicated(mesh)
    make_sets = jax.jit(jax.vmap(one_dataset), in_shardings=whole, out_shardings=whole)
    start = devices.per_device(start, mesh, (SPLIT,))
    step_chunk = devices.per_device(step_chunk, mesh, (SPLIT, SPLIT, WHOLE), donate_argnums=0)
    evaluate = devices.per_device(evaluate, mesh, (SPLIT, SPLIT, SPLIT, WHOLE, WHOLE))
    sets = jax.eval_shape(make_sets, *shape.dataset_inputs)
    states = jax.eval_shape(start, shape.runs)
    histories = jax.ShapeDtypeStruct((shape.runs.n_rows.shape[0], cfg.n_records), jnp.float32)
    return BucketPrograms(make_sets.lower(*shape.dataset_inputs).compile(),
                          start.lower(shape.runs).compile(),
                          step_chunk.lower(states, shape.runs, sets).compile(),
                          evaluate.lower(states, histories, shape.runs, sets, shape.test).compile())


def _map_runs(fn, runs, batch: int):
    """``lax.map`` over the leading run axis, ``batch`` runs vmapped at a time. A batch of
    one is a plain ``lax.map``: a size-1 vmap turns every matmul into a batched one,
    which XLA:CPU runs several times slower."""
    return jax.lax.map(fn, runs) if batch == 1 else jax.lax.map(fn, runs, batch_size=batch)


def _divisor_near(n: int, target: int) -> int:
    return min((d for d in range(1, n + 1) if n % d == 0), key=lambda d: (abs(d - target), d))


def use_dense(rows: int, n_features: int, sparsity: float) -> bool:
    """Dense inputs when a run's ``T x n`` is small (under 2^24 elements, 64 MiB) or the
    data are not sparse: reading them beats the gathers and scatters of the sparse form."""
    return rows * n_features <= 2**24 or sparsity < 0.5


def run_sweep(cfg: TrainConfig, sweep: Sweep, progress: Progress | bool | None = None,
              runs_batch: int | None = None, chunks: int = 10, dense: bool | None = None,
              checkpoint_dir=None, memory_bytes: float | None = None) -> SweepResult:
    """Train every run of ``sweep``; return numpy arrays on the sweep grid.

    ``arrays`` holds per cell (best init seed): ``W [.., m, n]``, ``b [.., n]``,
    ``train_loss``, ``test_loss``, ``history [.., n_records]``, ``diverged``,
    ``hidden [.., T_max, m]`` (rows past T are 0, which leaves the dimensionality and D*
    of the real rows unchanged, so metrics apply to the whole array at once),
    ``data_dim [.., T_max]`` (NaN past T), ``feature_dim [.., n]``, ``best_init`` and
    ``init_train_loss [.., init_seeds]``.

    With ``checkpoint_dir``, each bucket's results are saved there (atomically) as soon
    as it finishes, and buckets already saved for the same settings are loaded instead
    of trained: a killed sweep picks up where it stopped, with the same final numbers.
    ``memory_bytes`` (default: the device's) bounds how many runs are vmapped at once
    on each device; ``runs_batch`` sets that number instead.

    The runs are split over ``jax.devices()``: every local device, and every process's
    after ``jax.distributed.initialize()``, where each process gets all the arrays.
    """
    t_start = time.perf_counter()
    buckets = plan_buckets(sweep.T, sweep.max_pad_ratio)
    data_root, init_root, test_key = _keys(sweep)
    k = data.max_nonzeros(cfg.n_features, sweep.sparsity)
    test = data.sparse_rows(test_key, sweep.n_test, cfg.n_features, sweep.sparsity, k=k)
    if use_dense(sweep.n_test, cfg.n_features, sweep.sparsity) if dense is None else dense:
        test = data.to_dense(test, cfg.n_features)
    mesh = devices.run_mesh()
    test = jax.device_put(test, devices.replicated(mesh))
    runs_per_T = int(np.prod(sweep.grid_shape[1:])) * sweep.init_seeds
    total_work = sum(b.padded * len(b.sizes) for b in buckets) * runs_per_T * cfg.steps
    if not isinstance(progress, Progress):
        progress = Progress(total_work, enabled=progress)
    T_max = max(sweep.T)
    shape = sweep.grid_shape + (sweep.init_seeds,)
    out: dict[str, np.ndarray] = {}
    compile_seconds = train_seconds = 0.0
    bucket_seconds = []

    for ib, bucket in enumerate(buckets):
        specs, cells, pairs = _bucket_runs(sweep, bucket, init_root)
        path = None if checkpoint_dir is None else Path(checkpoint_dir) / f"bucket-{_fingerprint(cfg, sweep, bucket, dense)}.npz"
        if path is not None and path.exists():
            bucket_results = results.load_arrays(path)
            progress.update(bucket.padded * len(cells) * cfg.steps, f"bucket {ib + 1}/{len(buckets)} loaded from {path}")
            bucket_seconds.append(0.0)
        else:
            label = f"bucket {ib + 1}/{len(buckets)} T={bucket.sizes[0]}..{bucket.sizes[-1]}"
            bucket_results, c_s, t_s = _train_bucket(cfg, sweep, bucket, specs, pairs, test, k, data_root,
                                                     runs_batch, chunks, dense, memory_bytes, progress, label, mesh)
            compile_seconds, train_seconds = compile_seconds + c_s, train_seconds + t_s
            bucket_seconds.append(t_s)
            if path is not None:
                results.save_arrays(path, bucket_results)
        for name, value in bucket_results.items():
            if name == "hidden":
                value = _pad_rows(value, T_max, 0.0)
            elif name == "data_dim":
                value = _pad_rows(value[..., None], T_max, np.nan)[..., 0]
            if name not in out:
                out[name] = np.full(shape + value.shape[1:], np.nan, dtype=value.dtype if value.dtype != bool else bool)
            for r, cell in enumerate(cells):
                out[name][cell] = value[r]
        for cell in cells:  # rows past each run's T
            T = sweep.T[cell[0]]
            out["hidden"][cell][T:] = 0.0
            out["data_dim"][cell][T:] = np.nan

    arrays = _best_init(out)
    return SweepResult(arrays, time.perf_counter() - t_start, compile_seconds, train_seconds,
                       bucket_seconds, pad_ratio(buckets), buckets, mesh.size)


def _fingerprint(cfg: TrainConfig, sweep: Sweep, bucket: Bucket, dense) -> str:
    """Names a bucket's checkpoint by everything its numbers depend on."""
    text = repr((dataclasses.astuple(cfg), dataclasses.astuple(sweep), bucket, dense, jax.default_backend()))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _train_bucket(cfg, sweep, bucket, specs, pairs, test, k, data_root, runs_batch, chunks, dense,
                  memory_bytes, progress, label, mesh):
    """Make the bucket's data, train its runs and evaluate them: per-run numpy arrays,
    compile seconds, training seconds. The runs are split over the devices of ``mesh``
    (padded to a multiple of their count by repeating the last run, dropped afterwards)."""
    n_runs = len(specs.n_rows)
    runs = jax.device_put(devices.pad_runs(specs, devices.padded_count(n_runs, mesh)), devices.by_run(mesh))
    runs_per_device = runs.n_rows.shape[0] // mesh.size
    batch = runs_batch or runs_per_batch(runs_per_device, bucket.padded * cfg.n_features, memory_bytes=memory_bytes,
                                         label=f"{label}: one run of {bucket.padded} rows x {cfg.n_features} features")
    dataset_keys = jax.random.key_data(jnp.stack([dataset_key(data_root, T, s) for T, s in pairs]))
    dataset_inputs = jax.device_put((np.asarray(dataset_keys), np.array([T for T, _ in pairs], np.int32)),
                                    devices.replicated(mesh))
    shape = BucketShape(
        cfg=cfg, sparsity=sweep.sparsity, repeat=sweep.repeat, fresh=sweep.fresh, rows=bucket.padded, k=k,
        dense=use_dense(bucket.padded, cfg.n_features, sweep.sparsity) if dense is None else dense,
        batch=min(batch, runs_per_device), chunk_records=cfg.n_records // _divisor_near(cfg.n_records, chunks),
        runs=_abstract(runs), dataset_inputs=_abstract(dataset_inputs), test=_abstract(test), mesh=mesh)
    t0 = time.perf_counter()
    programs = compile_bucket(shape)
    compile_seconds = time.perf_counter() - t0
    sets, states = jax.block_until_ready((programs.make_sets(*dataset_inputs), programs.start(runs)))
    histories, train_seconds = [], 0.0
    for c in range(cfg.n_records // shape.chunk_records):
        t0 = time.perf_counter()
        states, losses = programs.step_chunk(states, runs, sets)
        histories.append(jax.block_until_ready(losses))
        train_seconds += time.perf_counter() - t0
        done = (c + 1) * shape.chunk_records * cfg.log_every
        progress.update(bucket.padded * n_runs * shape.chunk_records * cfg.log_every,
                        f"{label} ({n_runs} runs x {bucket.padded} rows) step {done}/{cfg.steps}")
    bucket_results = devices.to_host(programs.evaluate(states, jnp.concatenate(histories, axis=1), runs, sets, test))
    return {name: np.asarray(value[:n_runs]) for name, value in bucket_results.items()}, compile_seconds, train_seconds


def _abstract(tree):
    """Shapes and dtypes of a tree of arrays: what lowering needs, hashable for the cache."""
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)


def _pad_rows(value: np.ndarray, rows: int, fill: float) -> np.ndarray:
    pad = rows - value.shape[1]
    return np.concatenate([value, np.full((value.shape[0], pad) + value.shape[2:], fill, value.dtype)], axis=1)


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
