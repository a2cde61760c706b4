"""``run_grid``: any model over a named grid of seeds, dataset sizes and hyperparameters,
as a few compiled programs.

A model is two pure functions, ``init(key, hp) -> params`` and ``loss(params, batch, hp)
-> [N]`` per-example losses; a flax module supplies them (``module.init``,
``module.apply``). The grid is a dict ``axis -> values``; its runs are the product of the
values, in the axes' order. ``seed`` picks the init key, ``data_seed`` the dataset (with a
callable ``data``), ``n_train`` how many of the dataset's first rows a run trains on (the
rest weigh 0), ``subset`` which random subset of those rows it trains on (``run_grid``'s
``subset_fraction``: random subsets, or leave-one-out); every other axis is traced and
passed in ``hp`` (a misspelt axis that no function reads is not detected: its runs come
out identical). Dataset sizes are grouped into padded buckets
(``buckets.plan_buckets``), one program per bucket; a bucket's runs
are split over every device (``jax.shard_map`` on a 1-D mesh, across processes after
``jax.distributed.initialize()``) and mapped on each device ``runs_batch`` vmapped at a
time. Training goes in chunks; with ``checkpoint_dir`` each chunk's state is saved, so a
killed run resumes at its last chunk with the same numbers. A checkpoint's name
fingerprints what its numbers depend on: the settings, the grid, the functions' code and
the values they close over (``function_fingerprint``) and the fixed data and ``aux``
(``data_fingerprint``), so a changed model or dataset never loads a stale checkpoint.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import sys
import time
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmem import devices, store
from jaxmem.buckets import plan_buckets
from jaxmem.devices import SPLIT, WHOLE
from jaxmem.progress import Progress
from jaxmem.train import loop, optim
from jaxmem.validate import one_of, positive_int

#: grid axes the trainer itself reads; every other axis is traced into ``hp``
SEED, DATA_SEED, N_TRAIN, SUBSET = "seed", "data_seed", "n_train", "subset"
#: ``subset_fraction`` of leave-one-out runs
LOO = "loo"
#: ``fold_in`` streams of the root key: init, data, minibatch order, fresh batches
_INIT, _DATA, _ORDER = 0, 1, 2


@dataclasses.dataclass
class GridResult:
    """Every array has the grid's axes first, in ``axes`` order."""

    params: Any
    train_loss: np.ndarray  # [grid...] objective on the whole training set after the last update
    history: np.ndarray  # [grid..., n_records] train loss after log_every, 2 log_every, ... steps
    records: dict  # name -> [grid..., n_records]: "loss" and what ``observe`` returns
    history_steps: np.ndarray  # [n_records]
    diverged: np.ndarray  # [grid...] bool: a non-finite loss or parameter
    outputs: dict  # name -> [grid..., ...]: what ``evaluate`` returns
    axes: dict  # name -> values, in order
    wall_seconds: float
    compile_seconds: float
    train_seconds: float
    bucket_seconds: list  # training seconds of each bucket (0 for one loaded from a checkpoint)
    params_at: Any = None  # with ``keep_params_at``: params [grid..., K, ...] after those update counts
    #: per bucket: "" (trained), "loaded" (from its done-checkpoint) or "resumed at chunk c"
    resumed: list = dataclasses.field(default_factory=list)
    #: with a ``subset`` axis: bool [grid..., rows], True where the run trained on the row
    subset_mask: Any = None

    def to_xarray(self):
        """The per-run arrays as an ``xarray.Dataset`` with the grid's axes as dims."""
        import xarray as xr

        dims = list(self.axes)
        coords = {name: np.asarray(values) for name, values in self.axes.items()}
        variables = {"train_loss": self.train_loss, "diverged": self.diverged,
                     "history": (self.history, ["step"])}
        for name, value in self.outputs.items():
            variables[name] = value
        if self.subset_mask is not None:
            variables["subset_mask"] = (self.subset_mask, ["example"])
        flat = {"/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path): leaf
                for path, leaf in jax.tree_util.tree_flatten_with_path(self.params)[0]}
        variables.update({f"params/{k}": v for k, v in flat.items()})
        data_vars = {}
        for name, value in variables.items():
            extra = []
            if isinstance(value, tuple):
                value, extra = value
            value = np.asarray(value)
            rest = value.ndim - len(dims) - len(extra)
            data_vars[name] = (dims + extra + [f"{name}_dim{i}" for i in range(rest)], value)
        coords["step"] = self.history_steps
        return xr.Dataset(data_vars, coords=coords)


def run_grid(init: Callable, loss: Callable | None, data, grid: Mapping[str, Any], steps: int, *,
             optimizer="adamw", schedule="warmup_cosine", warmup_frac: float = 0.05, b1: float = 0.9,
             b2: float = 0.999, eps: float = 1e-8, decay: str = "l2", batch_size: int | None = None,
             n_history: int = 100, objective: Callable | None = None, observe: Callable | None = None,
             evaluate: Callable | None = None, aux=None, fresh: bool = False, seed: int = 0, chunks: int = 1,
             checkpoint_dir=None, checkpoint_tag: str = "", runs_batch=None, max_pad_ratio: float = 1.3,
             hp_dtype=jnp.float32, progress: Progress | bool | None = None, keep_params_at=(),
             subset_fraction: float | str | None = None, subset_seed: int | None = None,
             subset_init: str | None = None) -> GridResult:
    """Train every run of ``grid``; return its arrays on the grid (see ``GridResult``).

    ``data``: a pytree of arrays with a leading example axis (one fixed dataset), or a
    callable ``data(key, n) -> batch`` of ``n`` rows, called in the program once per
    ``data_seed`` and bucket (row ``i`` should not depend on ``n``, so sizes nest). With
    ``fresh=True`` every update trains on a new ``data(key_t, n_train)`` (infinite data;
    ``key_t`` from the data seed and the step) and ``n_train`` is the batch size.
    ``objective(params, batch, weights, hp) -> scalar`` replaces the weighted mean of
    ``loss`` (e.g. a fused kernel of the weighted loss). ``observe(params, batch, weights,
    hp, aux) -> dict`` adds to each history point (test metrics, snapshots);
    ``evaluate(params, batch, weights, hp, aux) -> dict`` adds per-run outputs at the end;
    ``aux`` is any pytree they need (a test set), copied whole to every device.
    ``batch_size``: minibatches of the real rows, shuffled each epoch from the run's key
    (``None``: full batch). ``optimizer``, ``schedule``, ``warmup_frac``, ``b1``, ``b2``,
    ``eps``, ``decay``: see ``optim.Optim``. ``runs_batch``: runs vmapped together on each
    device (default: 1 on CPU, where XLA runs batched small matmuls slowly; all on an
    accelerator), or a function of a bucket's rows to that number. ``hp_dtype``: the
    dtype of the traced hyperparameters. ``checkpoint_dir``: a folder for each bucket's
    checkpoints, named by a fingerprint of the settings, the grid, ``seed``, the functions
    (``function_fingerprint``: code and closed-over values), the fixed ``data`` and ``aux``
    (``data_fingerprint``: contents) and ``checkpoint_tag`` (anything else the numbers
    depend on that the fingerprints cannot see, e.g. state behind an opaque object); a
    bucket loaded or resumed from one says so on stderr and in ``GridResult.resumed``.
    A ``loss`` that does not return shape ``[N]`` (one loss per row) raises ``ValueError``.
    ``keep_params_at``: update
    counts (0: the init, ``steps``: the final params) whose params are kept, in
    ``GridResult.params_at``.

    Counterfactual memorisation (``docs/sources.md §6``; estimators in
    ``jaxmem.memorisation``): a grid axis ``subset`` of integers k >= 0 makes each run
    train on a subset of its n training rows (n: its ``n_train``, else all rows), every
    other row weighing 0 (in the objective, ``observe`` and ``evaluate``'s ``weights``;
    ``evaluate``'s ``batch`` still holds every row, so it can score all of them).
    ``subset_fraction`` (default 0.5): a float f in (0, 1) takes exactly
    m = floor(f n + 1/2) rows at random: row i is in subset k iff
    ``uniform(fold_in(fold_in(key(subset_seed), k), i))`` is among the m smallest over
    rows 0..n-1 (``subset_masks``), so a subset is the same at every other grid point with
    the same n and does not depend on padding; ``"loo"``: run k drops row k alone (k >= n
    drops nothing: the full-data run). ``subset_seed`` (default 0) names the stream.
    ``subset_init``: ``"shared"`` (default; init and minibatch order from the ``seed``
    axis alone: every subset starts from the same init, a paired design) or ``"own"``
    (both also fold in k: independently trained models, as Feldman & Zhang 2020).
    ``GridResult.subset_mask`` holds each run's rows (bool ``[grid..., rows]``).
    """
    t_start = time.perf_counter()
    sched = loop.Schedule(steps, n_history)
    opt = optim.Optim(optimizer, schedule, warmup_frac, b1, b2, eps, decay)
    axes = _check_grid(grid, data, fresh)
    subset = _subset_setting(axes, subset_fraction, subset_seed, subset_init)
    if (loss is None) == (objective is None):
        raise ValueError("give exactly one of loss (per-example losses) and objective (a scalar)")
    if batch_size is not None:
        positive_int("batch_size", batch_size)
    chunks = positive_int("chunks", chunks)
    keep = tuple(sorted({int(s) for s in keep_params_at}))
    if len(keep) != len(keep_params_at) or any(s != v or not 0 <= s <= steps for s, v in zip(keep, keep_params_at)):
        raise ValueError(f"keep_params_at must be sorted distinct integers in [0, steps={steps}], got {keep_params_at!r}")
    names = list(axes)
    shape = tuple(len(v) for v in axes.values())
    points = list(itertools.product(*(range(n) for n in shape)))
    sizes = axes.get(N_TRAIN)
    n_fixed = None if callable(data) else int(jax.tree.leaves(data)[0].shape[0])
    buckets = plan_buckets(sizes, max_pad_ratio) if sizes is not None else None
    plan = [(None, None)] if buckets is None else [(b.padded, set(b.sizes)) for b in buckets]
    mesh = devices.run_mesh()
    root = jax.random.key(seed)
    total = len(points) * steps
    if not isinstance(progress, Progress):
        progress = Progress(total, enabled=progress)
    model = _Model(init, loss, objective, observe, evaluate)
    statics = _Statics(sched, opt, batch_size, fresh, hp_dtype,
                       tuple(n for n in names if n not in (SEED, DATA_SEED, N_TRAIN, SUBSET)), keep, subset)
    identity = None if checkpoint_dir is None else _identity(model, data, aux, seed, checkpoint_tag)
    per_run: dict[int, dict] = {}
    compile_seconds = train_seconds = 0.0
    bucket_seconds, resumed = [], []
    for ib, (rows, bucket_sizes) in enumerate(plan):
        index = [i for i, p in enumerate(points) if bucket_sizes is None or axes[N_TRAIN][p[names.index(N_TRAIN)]] in bucket_sizes]
        rows = rows if rows is not None else (n_fixed if n_fixed is not None else None)
        label = f"bucket {ib + 1}/{len(plan)}" + (f" ({rows} rows)" if rows else "")
        batch = runs_batch(rows) if callable(runs_batch) else runs_batch
        out, c_s, t_s, how = _train_bucket(model, statics, data, aux, axes, [points[i] for i in index], rows, root,
                                           mesh, chunks, checkpoint_dir, identity, batch, progress, label,
                                           f"bucket {ib + 1}/{len(plan)}")
        compile_seconds, train_seconds = compile_seconds + c_s, train_seconds + t_s
        bucket_seconds.append(t_s)
        resumed.append(how)
        for r, i in enumerate(index):
            per_run[i] = jax.tree.map(lambda a: a[r], out)
    stacked = _stack([per_run[i] for i in range(len(points))], shape)
    return GridResult(stacked["params"], stacked["train_loss"], stacked["history"]["loss"], stacked["history"],
                      np.asarray(sched.history_steps), stacked["diverged"], stacked.get("outputs", {}), axes,
                      time.perf_counter() - t_start, compile_seconds, train_seconds, bucket_seconds,
                      stacked.get("params_at"), resumed, stacked.get("subset_mask"))


def _check_grid(grid, data, fresh) -> dict:
    if not grid:
        raise ValueError("grid must name at least one axis, e.g. {'seed': range(4)}")
    axes = {}
    for name, values in grid.items():
        values = list(np.atleast_1d(np.asarray(values)).tolist())
        if not values:
            raise ValueError(f"grid axis {name!r} has no values")
        if name in (SEED, DATA_SEED, N_TRAIN, SUBSET):
            for v in values:
                if int(v) != v or v < (1 if name == N_TRAIN else 0):
                    raise ValueError(f"grid axis {name!r} takes integers >= {1 if name == N_TRAIN else 0}, got {v!r}")
            values = [int(v) for v in values]
        axes[name] = values
    if SUBSET in axes and fresh:
        raise ValueError("a 'subset' axis picks rows of a dataset; fresh=True trains on new rows every update")
    if callable(data):
        if N_TRAIN not in axes:
            raise ValueError("a callable data(key, n) needs an 'n_train' axis: how many rows to make")
    else:
        if DATA_SEED in axes:
            raise ValueError("a 'data_seed' axis needs a callable data(key, n); this data is one fixed set")
        if fresh:
            raise ValueError("fresh=True needs a callable data(key, n)")
        n = int(jax.tree.leaves(data)[0].shape[0])
        if N_TRAIN in axes and max(axes[N_TRAIN]) > n:
            raise ValueError(f"n_train {max(axes[N_TRAIN])} exceeds the dataset's {n} rows")
    return axes


@dataclasses.dataclass(frozen=True)
class _Model:
    init: Callable
    loss: Callable | None
    objective: Callable | None
    observe: Callable | None
    evaluate: Callable | None


@dataclasses.dataclass(frozen=True)
class _Subset:
    fraction: float | str  # in (0, 1), or LOO
    seed: int
    own_init: bool


def _program_statics(statics: _Statics) -> _Statics:
    """``statics`` as the programs see them: the subset's fraction, seed and init enter
    through the runs' traced values, so grids that differ only there share programs."""
    if statics.subset is None:
        return statics
    return dataclasses.replace(statics, subset=_Subset(LOO if statics.subset.fraction == LOO else 0.5, 0, False))


def _subset_setting(axes: dict, fraction, seed, init) -> _Subset | None:
    if SUBSET not in axes:
        given = [name for name, v in (("subset_fraction", fraction), ("subset_seed", seed), ("subset_init", init))
                 if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)} need(s) a 'subset' grid axis, e.g. grid={{'subset': range(16)}}")
        return None
    fraction = 0.5 if fraction is None else fraction
    if isinstance(fraction, str):
        one_of("subset_fraction", fraction, (LOO,))
    elif not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"subset_fraction must be in (0, 1) or {LOO!r}, got {fraction!r}")
    else:
        fraction = float(fraction)
    seed = 0 if seed is None else seed
    if int(seed) != seed or not 0 <= seed < 2**31:
        raise ValueError(f"subset_seed must be an integer in [0, 2**31), got {seed!r}")
    init = "shared" if init is None else init
    one_of("subset_init", init, ("shared", "own"))
    return _Subset(fraction, int(seed), init == "own")


def _subset_size(fraction: float | str, n: int) -> int:
    """Rows of a random subset of ``n``: floor(f n + 1/2) (leave-one-out: n - 1)."""
    m = n - 1 if fraction == LOO else int(np.floor(fraction * n + 0.5))
    if not 1 <= m <= n:
        raise ValueError(f"subset_fraction={fraction} of n_train={n} rows leaves {m} rows to train on")
    return m


def _subset_mask(key, k, m, n, n_rows: int, loo: bool):
    """Bool [n_rows]: the rows of subset ``k`` (key: ``fold_in(key(subset_seed), k)``)
    among the first ``n`` rows; see ``subset_masks``."""
    i = jnp.arange(n_rows)
    real = i < n
    if loo:
        return real & (i != k)
    u = jax.vmap(lambda j: jax.random.uniform(jax.random.fold_in(key, j)))(i)
    rank = jnp.argsort(jnp.argsort(jnp.where(real, u, 2.0)))
    return real & (rank < m)


def subset_masks(subsets, n: int, n_rows: int | None = None, fraction: float | str = 0.5,
                 subset_seed: int = 0) -> np.ndarray:
    """Bool ``[len(subsets), n_rows]``: the training rows of ``run_grid``'s runs with
    ``subset`` values ``subsets`` and ``n`` training rows (``n_rows`` defaults to ``n``;
    rows from ``n`` on are never in): with a float ``fraction``, row i of subset k is in
    iff ``uniform(fold_in(fold_in(key(subset_seed), k), i))`` is among the
    m = floor(fraction n + 1/2) smallest over rows 0..n-1; with ``"loo"``, every row but k."""
    n = int(n)
    n_rows = n if n_rows is None else int(n_rows)
    setting = _subset_setting({SUBSET: [0]}, fraction, subset_seed, None)
    m = _subset_size(setting.fraction, n)
    ks = np.atleast_1d(np.asarray(subsets))
    if ks.ndim != 1 or any(int(k) != k or k < 0 for k in ks.tolist()):
        raise ValueError(f"subsets must be integers >= 0, got {subsets!r}")
    if ks.size == 0:
        return np.zeros((0, n_rows), bool)
    return np.asarray(_subset_masks(jnp.asarray(ks.astype(np.int32)), setting.seed, m, n, n_rows,
                                    setting.fraction == LOO))


@functools.partial(jax.jit, static_argnums=(4, 5))  # seed, m, n traced: one compile per n_rows
def _subset_masks(ks, seed, m, n, n_rows: int, loo: bool):
    root = jax.random.key(seed)
    return jax.vmap(lambda k: _subset_mask(jax.random.fold_in(root, k), k, m, n, n_rows, loo))(ks)


@dataclasses.dataclass(frozen=True)
class _Statics:
    sched: loop.Schedule
    opt: optim.Optim
    batch_size: int | None
    fresh: bool
    hp_dtype: Any
    hp_names: tuple
    keep: tuple = ()  # keep_params_at
    #: with a ``subset`` axis; out of the repr, so other grids' checkpoint names stay as they were
    subset: _Subset | None = dataclasses.field(default=None, repr=False)


def _init_key(root, seed: int):
    return jax.random.fold_in(jax.random.fold_in(root, _INIT), seed)


def init_key(grid_seed: int, seed: int):
    """The init key of runs with ``seed`` in a grid run with ``seed=grid_seed``."""
    return _init_key(jax.random.key(grid_seed), seed)


def _runs(statics: _Statics, axes: dict, points: list, root, rows=None):
    """The traced description of each run: its keys, dataset, size and ``hp`` (and with a
    ``subset`` axis its subset's index, size and key)."""
    names = list(axes)

    def value(p, name, default=0):
        return axes[name][p[names.index(name)]] if name in axes else default

    init_keys = [_init_key(root, value(p, SEED)) for p in points]
    order_keys = [jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(root, _ORDER), value(p, SEED)),
                                     value(p, DATA_SEED)) for p in points]
    subset = statics.subset
    if subset is not None and subset.own_init:
        init_keys = [jax.random.fold_in(k, value(p, SUBSET)) for k, p in zip(init_keys, points)]
        order_keys = [jax.random.fold_in(k, value(p, SUBSET)) for k, p in zip(order_keys, points)]
    data_seeds = sorted({value(p, DATA_SEED) for p in points})
    runs = {
        "init_key": np.asarray(jax.random.key_data(jnp.stack(init_keys))),
        "order_key": np.asarray(jax.random.key_data(jnp.stack(order_keys))),
        "data_index": np.array([data_seeds.index(value(p, DATA_SEED)) for p in points], np.int32),
        "n_train": np.array([value(p, N_TRAIN, -1) for p in points], np.int32),
        "hp": {name: np.array([value(p, name) for p in points], statics.hp_dtype) for name in statics.hp_names},
    }
    if subset is not None:
        subset_root = jax.random.key(subset.seed)
        runs["subset"] = np.array([value(p, SUBSET) for p in points], np.int32)
        runs["subset_size"] = np.array([_subset_size(subset.fraction, value(p, N_TRAIN, rows)) for p in points],
                                       np.int32)
        runs["subset_key"] = np.asarray(jax.random.key_data(jnp.stack(
            [jax.random.fold_in(subset_root, value(p, SUBSET)) for p in points])))
    data_keys = np.asarray(jax.random.key_data(jnp.stack(
        [jax.random.fold_in(jax.random.fold_in(root, _DATA), s) for s in data_seeds])))
    return runs, data_keys


def _train_bucket(model, statics, data, aux, axes, points, rows, root, mesh, chunks, checkpoint_dir, identity,
                  runs_batch, progress, label, which):
    """Train one bucket's runs: ``(per-run results, compile s, train s, how)``, ``how``
    being "" (trained here), "loaded" or "resumed at chunk c" (from ``checkpoint_dir``)."""
    sched = statics.sched
    runs, data_keys = _runs(statics, axes, points, root, rows)
    n_runs = len(points)
    if n_runs < mesh.size and jax.process_count() == 1:  # no device trains a padding copy alone
        mesh = devices.run_mesh(limit=n_runs)
    runs = jax.device_put(devices.pad_runs(runs, devices.padded_count(n_runs, mesh)), devices.by_run(mesh))
    per_device = runs["n_train"].shape[0] // mesh.size
    if runs_batch is None:
        runs_batch = 1 if jax.default_backend() == "cpu" else per_device
    batch = max(1, min(runs_batch, per_device))
    chunk_records = sched.n_records // _divisor_near(sched.n_records, chunks)
    whole = devices.replicated(mesh)
    inputs = {"data": data_keys if callable(data) else jax.tree.map(lambda a: a[:rows] if rows else a, data),
              "aux": aux}
    inputs = jax.device_put(inputs, whole)
    t0 = time.perf_counter()
    programs = _compile(model, _program_statics(statics), data if callable(data) else None, rows, batch,
                        chunk_records, _abstract(runs), _abstract(inputs), mesh)
    compile_seconds = time.perf_counter() - t0
    path = None
    if checkpoint_dir is not None:
        path = Path(checkpoint_dir) / f"grid-{_fingerprint(statics, axes, points, rows, chunks, identity)}"
    done_path = None if path is None else path.with_suffix(".done.npz")
    if done_path is not None and done_path.exists():
        _say(f"{which} loaded from {done_path}")
        progress.update(n_runs * sched.steps, f"{label}: loaded from {done_path}")
        return _unflatten(programs.result_shape, store.load_arrays(done_path)), compile_seconds, 0.0, "loaded"
    sets = programs.make_sets(inputs)
    states = programs.start(runs)
    records, first, how = [], 0, ""
    chunk_path = None if path is None else path.with_suffix(".chunk.npz")
    if chunk_path is not None and chunk_path.exists():
        saved = store.load_arrays(chunk_path)
        first = int(saved.pop("chunk"))
        states, so_far = _unflatten((programs.state_shape, programs.result_shape["history"]), saved)
        states, records = jax.device_put(states, devices.by_run(mesh)), [so_far]
        how = f"resumed at chunk {first}"
        _say(f"{which} {how} from {chunk_path}")
        progress.update(n_runs * first * chunk_records * sched.log_every, f"{label}: resumed at chunk {first}")
    train_seconds = 0.0
    n_chunks = sched.n_records // chunk_records
    for c in range(first, n_chunks):
        t0 = time.perf_counter()
        states, chunk = programs.step_chunk(states, runs, sets)
        chunk = jax.block_until_ready(chunk)
        train_seconds += time.perf_counter() - t0
        records.append(devices.to_host(chunk))
        done = (c + 1) * chunk_records * sched.log_every
        progress.update(n_runs * chunk_records * sched.log_every, f"{label}: {n_runs} runs, step {done}/{sched.steps}")
        if chunk_path is not None and c + 1 < n_chunks:
            so_far = jax.tree.map(lambda *a: np.concatenate(a, axis=1), *records)
            store.save_arrays(chunk_path, {**_flatten((devices.to_host(states), so_far)), "chunk": np.array(c + 1)})
    all_records = jax.tree.map(lambda *a: np.concatenate(a, axis=1), *records)
    out = devices.to_host(programs.evaluate(states, jax.device_put(all_records, devices.by_run(mesh)), runs, sets))
    out = jax.tree.map(lambda a: np.asarray(a[:n_runs]), out)
    if done_path is not None:
        store.save_arrays(done_path, _flatten(out))
        if chunk_path.exists():
            chunk_path.unlink()
    return out, compile_seconds, train_seconds, how


def _say(line: str) -> None:
    """One line on stderr (from the first process only) about where numbers came from."""
    if jax.process_index() == 0:
        print(f"jaxmem: {line}", file=sys.stderr, flush=True)


@dataclasses.dataclass(frozen=True)
class _Programs:
    make_sets: Callable  # (inputs) -> {"data": the bucket's datasets, "keys": their keys}
    start: Callable  # (runs) -> states
    step_chunk: Callable  # (states, runs, sets) -> (states, records [runs, chunk_records]); donates states
    evaluate: Callable  # (states, records, runs, sets) -> per-run results
    state_shape: Any
    result_shape: Any


_PROGRAMS: dict = {}


def _compile(model: _Model, statics: _Statics, data_fn, rows, batch: int, chunk_records: int, runs, inputs,
             mesh) -> _Programs:
    """A bucket's programs, compiled once per process for each model, setting and shape."""
    key = (model, statics, data_fn, rows, batch, chunk_records, mesh,
           *((jax.tree.structure(tree), tuple(jax.tree.leaves(tree))) for tree in (runs, inputs)))
    if key not in _PROGRAMS:
        if len(_PROGRAMS) >= 64:
            _PROGRAMS.pop(next(iter(_PROGRAMS)))
        _PROGRAMS[key] = _build(model, statics, data_fn, rows, batch, chunk_records, runs, inputs, mesh)
    return _PROGRAMS[key]


def _build(model, statics, data_fn, rows, batch, chunk_records, runs, inputs, mesh) -> _Programs:
    sched, opt = statics.sched, statics.opt

    def objective_of(hp):
        if model.objective is not None:
            return lambda p, b, w: model.objective(p, b, w, hp)

        def weighted_loss(p, b, w):
            values = model.loss(p, b, hp)
            _check_per_example(values, w.shape[0])
            return loop.weighted_mean(values, w)

        return weighted_loss

    def train_set(run, sets):
        batch = jax.tree.map(lambda a: a[run["data_index"]], sets["data"]) if data_fn is not None else sets["data"]
        n = jax.tree.leaves(batch)[0].shape[0]
        weights = (jnp.arange(n) < run["n_train"]) | (run["n_train"] < 0)
        if statics.subset is not None:
            weights &= _subset_mask(jax.random.wrap_key_data(run["subset_key"]), run["subset"], run["subset_size"],
                                    jnp.where(run["n_train"] < 0, n, run["n_train"]), n, statics.subset.fraction == LOO)
        return batch, weights.astype(jnp.float32)

    def observe_of(run, sets):
        if model.observe is None:
            return None
        batch, weights = train_set(run, sets)
        return lambda p: model.observe(p, batch, weights, run["hp"], sets["aux"])

    def batch_at_of(run, sets):
        batch, weights = train_set(run, sets)
        if statics.fresh:
            stream = jax.random.fold_in(jax.random.wrap_key_data(sets["keys"][run["data_index"]]), FRESH_STREAM)
            return lambda step: (data_fn(jax.random.fold_in(stream, step), rows), weights)
        if statics.batch_size is not None:
            order_key = jax.random.wrap_key_data(run["order_key"])
            return lambda step: _minibatch(statics.batch_size, order_key, batch, weights, step)
        return lambda step: (batch, weights)

    def tx_of(run):
        return optim.build(opt, run["hp"], sched.steps)

    def make_sets(inputs):
        if data_fn is None:
            return {**inputs, "keys": jnp.zeros((1, 2), jnp.uint32)}
        made = jax.vmap(lambda k: data_fn(jax.random.wrap_key_data(k), rows))(inputs["data"])
        return {"data": made, "aux": inputs["aux"], "keys": inputs["data"]}

    def start(runs):
        def one(run):
            params = model.init(jax.random.wrap_key_data(run["init_key"]), run["hp"])
            return loop.start(tx_of(run), params, statics.keep)

        return jax.vmap(one)(runs)

    def step_chunk(states, runs, sets):
        def one(args):
            state, run = args
            return loop.advance(objective_of(run["hp"]), tx_of(run), state, batch_at_of(run, sets),
                                chunk_records, sched.log_every, observe_of(run, sets), statics.keep)

        return _map_runs(one, (states, runs), batch)

    def evaluate(states, records, runs, sets):
        def one(args):
            state, record, run = args
            batch, weights = train_set(run, sets)
            out = loop.finish(objective_of(run["hp"]), state, record, batch, weights, observe_of(run, sets),
                              statics.keep)
            if model.evaluate is not None:
                out["outputs"] = model.evaluate(state.params, batch, weights, run["hp"], sets["aux"])
            if statics.subset is not None:
                out["subset_mask"] = weights > 0
            return out

        return _map_runs(one, (states, records, runs), batch)

    whole = devices.replicated(mesh)
    make_sets = jax.jit(make_sets, in_shardings=whole, out_shardings=whole)
    start = devices.per_device(start, mesh, (SPLIT,))
    step_chunk = devices.per_device(step_chunk, mesh, (SPLIT, SPLIT, WHOLE), donate_argnums=0)
    evaluate = devices.per_device(evaluate, mesh, (SPLIT, SPLIT, SPLIT, WHOLE))
    sets = jax.eval_shape(make_sets, inputs)
    states = jax.eval_shape(start, runs)
    records = jax.eval_shape(step_chunk, states, runs, sets)[1]
    all_records = jax.tree.map(lambda r: jax.ShapeDtypeStruct((r.shape[0], sched.n_records) + r.shape[2:], r.dtype),
                               records)
    result = jax.eval_shape(evaluate, states, all_records, runs, sets)
    return _Programs(make_sets.lower(inputs).compile(), start.lower(runs).compile(),
                     step_chunk.lower(states, runs, sets).compile(),
                     evaluate.lower(states, all_records, runs, sets).compile(), states, result)


def _check_per_example(values, n: int) -> None:
    """Raise (at trace time) unless ``loss`` returned one value per row of its batch: a
    scalar would make every ``n_train`` train on the same number, ``[N, 1]`` would
    broadcast against the ``[N]`` weights."""
    shape = tuple(jnp.shape(values))
    if shape != (n,):
        raise ValueError(f"loss must return per-example losses of shape [{n}], got shape {shape}: return one loss "
                         "per row of the batch, not their mean (run_grid weighs and averages them itself), and "
                         "drop a trailing axis of size 1 (e.g. [:, 0]); or pass objective= for a scalar")


#: ``fold_in`` tag of a data seed's stream of fresh batches (no dataset has this many rows)
FRESH_STREAM = 2**31 - 1


def _minibatch(batch_size: int, key, batch, weights, step):
    """The rows of update ``step``: its slice of this epoch's shuffle of the real rows
    (weight > 0); slots past the last real row (a short last batch) weigh 0. Row ``i``'s
    sort key comes from ``fold_in(key, i)``, so the order of the real rows does not
    depend on the padding after them."""
    n_rows = weights.shape[0]
    n_real = jnp.sum(weights > 0)
    per_epoch = jnp.maximum((n_real + batch_size - 1) // batch_size, 1)
    epoch_key = jax.random.fold_in(key, step // per_epoch)
    u = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(epoch_key, i)))(jnp.arange(n_rows))
    order = jnp.argsort(jnp.where(weights > 0, u, 2.0))
    slot = (step % per_epoch) * batch_size + jnp.arange(batch_size)
    rows = order[jnp.minimum(slot, n_rows - 1)]
    return jax.tree.map(lambda a: a[rows], batch), jnp.where(slot < n_real, weights[rows], 0.0)


def _map_runs(fn, runs, batch: int):
    """``lax.map`` over the leading run axis, ``batch`` runs vmapped at a time. A batch of
    one is a plain ``lax.map``: a size-1 vmap turns every matmul into a batched one,
    which XLA:CPU runs several times slower."""
    return jax.lax.map(fn, runs) if batch == 1 else jax.lax.map(fn, runs, batch_size=batch)


def _divisor_near(n: int, target: int) -> int:
    return min((d for d in range(1, n + 1) if n % d == 0), key=lambda d: (abs(d - target), d))


def _abstract(tree):
    """Shapes and dtypes of a tree of arrays: what lowering needs, hashable for the cache."""
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=getattr(a, "sharding", None)), tree)


def _fingerprint(statics, axes, points, rows, chunks, identity: str) -> str:
    """Names a bucket's checkpoints by what its numbers depend on: the settings, the
    bucket's runs and rows, and ``identity`` (``_identity``: the functions, data, seed and
    tag)."""
    text = repr((statics, axes, points, rows, chunks, identity, jax.default_backend()))
    if statics.subset is not None:
        text += repr(statics.subset)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _identity(model: _Model, data, aux, seed: int, tag: str) -> str:
    """What a grid's numbers depend on beyond its settings: each function's
    ``function_fingerprint``, the data's (``data_fingerprint``, or the data function's),
    ``aux``'s, the root ``seed`` and the user's ``checkpoint_tag``."""
    parts = [f"{role}={function_fingerprint(fn)}" for role, fn in
             (("init", model.init), ("loss", model.loss), ("objective", model.objective),
              ("observe", model.observe), ("evaluate", model.evaluate))]
    parts.append(f"data_fn={function_fingerprint(data)}" if callable(data) else f"data={data_fingerprint(data)}")
    parts.append("aux=" + ("none" if aux is None else data_fingerprint(aux)))
    parts.append(f"seed={int(seed)}")
    parts.append(f"tag={tag}")
    return ";".join(parts)


#: how deep ``function_fingerprint`` follows functions and objects (closures, defaults,
#: globals, partials, bound methods), and how many values it looks at in all
_FP_DEPTH, _FP_BUDGET = 8, 20_000
_SIMPLE = (type(None), bool, int, float, complex, str, bytes, type(Ellipsis))


class _Hasher:
    """sha1 over a stream of length-prefixed parts, with the bookkeeping of one walk: the
    objects being described (to cut cycles; their ``id`` is never hashed, so the digest
    is the same in every process) and a budget of values."""

    def __init__(self, budget: int = _FP_BUDGET):
        self.sha = hashlib.sha1()
        self.stack: set[int] = set()
        self.budget = budget

    def put(self, *parts) -> None:
        for part in parts:
            data = part if isinstance(part, (bytes, memoryview)) else str(part).encode("utf-8", "replace")
            self.sha.update(len(data).to_bytes(8, "little"))
            self.sha.update(data)

    def hexdigest(self) -> str:
        return self.sha.hexdigest()


def _type_name(obj) -> str:
    t = obj if isinstance(obj, type) else type(obj)
    return f"{getattr(t, '__module__', '')}.{getattr(t, '__qualname__', t.__name__)}"


def _is_array(obj) -> bool:
    return isinstance(obj, (np.ndarray, np.generic, jax.Array))


def _feed_array(h: _Hasher, a) -> None:
    """dtype, shape and bytes of an array (numpy or jax; a typed PRNG key by its key data)."""
    dtype = getattr(a, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        h.put("key", str(dtype))
        a = jax.random.key_data(a)
    arr = np.asarray(a)
    if arr.dtype.hasobject:
        raise TypeError("an object array has no stable bytes")
    flat = np.ascontiguousarray(arr).reshape(-1)
    h.put("array", str(arr.dtype), repr(arr.shape), memoryview(flat.view(np.uint8)) if flat.dtype.itemsize else b"")


def _global_names(code: types.CodeType) -> list:
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names += _global_names(const)
    return list(dict.fromkeys(names))


def _feed_code(h: _Hasher, code: types.CodeType, depth: int) -> None:
    h.put("code", code.co_name, code.co_argcount, code.co_kwonlyargcount, code.co_flags, code.co_code,
          repr(code.co_names), repr(code.co_varnames), repr(code.co_freevars), len(code.co_consts))
    for const in code.co_consts:  # through _feed: a frozenset constant's repr depends on PYTHONHASHSEED
        _feed(h, const, depth)


def _feed_function(h: _Hasher, fn: types.FunctionType, depth: int) -> None:
    h.put("function", fn.__module__ or "", fn.__qualname__)
    _feed_code(h, fn.__code__, depth)
    h.put("defaults")
    _feed(h, fn.__defaults__ or (), depth + 1)
    _feed(h, fn.__kwdefaults__ or {}, depth + 1)
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        try:
            value = cell.cell_contents
        except ValueError:  # a cell not filled yet
            h.put("cell", name, "<empty>")
            continue
        h.put("cell", name)
        _feed(h, value, depth + 1)
    scope = fn.__globals__
    for name in _global_names(fn.__code__):
        if name not in scope:
            continue
        value = scope[name]
        h.put("global", name)
        same_module = getattr(value, "__module__", None) == fn.__module__
        if isinstance(value, types.FunctionType) and not same_module:
            h.put(value.__module__ or "", value.__qualname__)  # another module's (a library's) function: by name
        elif isinstance(value, type) and same_module:
            _feed_class(h, value, depth + 1)
        else:
            _feed(h, value, depth + 1)


def _feed_class(h: _Hasher, cls: type, depth: int) -> None:
    """A class by name and the functions it defines itself (a flax module's ``__call__``)."""
    h.put("class", _type_name(cls))
    if depth >= _FP_DEPTH or id(cls) in h.stack:
        return
    h.stack.add(id(cls))
    try:
        for name, attr in sorted(vars(cls).items()):
            if isinstance(attr, (staticmethod, classmethod)):
                attr = attr.__func__
            if isinstance(attr, types.FunctionType):
                h.put("def", name)
                _feed(h, attr, depth + 1)
    finally:
        h.stack.discard(id(cls))


def _feed_fields(h: _Hasher, obj, depth: int) -> None:
    for field in dataclasses.fields(obj):
        h.put("field", field.name)
        try:
            value = getattr(obj, field.name)
        except Exception:  # noqa: BLE001 - a field not set (yet)
            h.put("<unset>")
            continue
        _feed(h, value, depth)


def _feed(h: _Hasher, obj, depth: int = 0) -> None:
    """Describe ``obj`` into ``h``: plain values by ``repr``, containers element by
    element, arrays by content, code by its bytecode and constants, functions by code,
    defaults, closure cells and the globals they name, ``functools.partial`` by its
    function and arguments, bound methods by their function and their object's class
    (and fields, for a dataclass such as a flax module), other objects by type."""
    h.budget -= 1
    if isinstance(obj, _SIMPLE):
        h.put("value", type(obj).__name__, repr(obj))
        return
    if isinstance(obj, types.ModuleType):
        h.put("module", obj.__name__)
        return
    if isinstance(obj, type):
        h.put("type", _type_name(obj))
        return
    if _is_array(obj):
        try:
            _feed_array(h, obj)
        except Exception:  # noqa: BLE001 - a tracer, an object array: nothing stable to hash but the type
            h.put("opaque-array", _type_name(obj))
        return
    if depth >= _FP_DEPTH or h.budget <= 0:
        h.put("deep", _type_name(obj), getattr(obj, "__qualname__", ""))
        return
    if id(obj) in h.stack:
        h.put("cycle", _type_name(obj))
        return
    h.stack.add(id(obj))
    try:
        _feed_object(h, obj, depth)
    except Exception:  # noqa: BLE001 - an object that will not be looked into: its type
        h.put("opaque", _type_name(obj))
    finally:
        h.stack.discard(id(obj))


def _feed_object(h: _Hasher, obj, depth: int) -> None:
    if isinstance(obj, types.CodeType):
        _feed_code(h, obj, depth)
    elif isinstance(obj, (tuple, list)):
        h.put(type(obj).__name__, len(obj))
        for item in obj:
            _feed(h, item, depth + 1)
    elif isinstance(obj, (set, frozenset)):  # in an order that does not depend on PYTHONHASHSEED
        digests = []
        for item in obj:
            sub = _Hasher(h.budget)
            sub.stack = h.stack
            _feed(sub, item, depth + 1)
            h.budget = sub.budget
            digests.append(sub.hexdigest())
        h.put(type(obj).__name__, *sorted(digests))
    elif isinstance(obj, Mapping):
        h.put("mapping", _type_name(obj), len(obj))
        for key, value in obj.items():
            _feed(h, key, depth + 1)
            _feed(h, value, depth + 1)
    elif isinstance(obj, types.FunctionType):
        _feed_function(h, obj, depth)
    elif isinstance(obj, functools.partial):
        h.put("partial")
        _feed(h, obj.func, depth + 1)
        _feed(h, obj.args, depth + 1)
        _feed(h, obj.keywords, depth + 1)
    elif isinstance(obj, types.MethodType):
        owner = obj.__self__
        h.put("method", repr(type(owner)))
        _feed(h, obj.__func__, depth + 1)
        if isinstance(owner, type):  # a classmethod
            _feed_class(h, owner, depth + 1)
        else:
            _feed_class(h, type(owner), depth + 1)
            if dataclasses.is_dataclass(owner):
                _feed_fields(h, owner, depth + 1)
    elif isinstance(obj, (types.BuiltinFunctionType, types.MethodWrapperType, types.WrapperDescriptorType)):
        h.put("builtin", getattr(obj, "__module__", None) or "", getattr(obj, "__qualname__", ""))
    elif not hasattr(obj, "__code__") and getattr(obj, "__wrapped__", None) is not None:  # jax.jit and the like
        h.put("wrapped", _type_name(obj))
        _feed(h, obj.__wrapped__, depth + 1)
    else:
        h.put("object", repr(type(obj)), getattr(obj, "__qualname__", ""))
        if callable(obj) or dataclasses.is_dataclass(obj):  # a callable instance, a flax module: its class's code
            _feed_class(h, type(obj), depth + 1)
        if dataclasses.is_dataclass(obj):
            _feed_fields(h, obj, depth + 1)


def function_fingerprint(fn) -> str:
    """A hex digest of what a function computes, the same in every process (no ``id``, no
    ``hash``): for a Python function its module, qualname, bytecode (``co_code``), names
    and constants (nested code objects recursively), defaults, the values of its closure
    cells and of the module globals it names (numbers, strings, tuples, dicts, numpy/jax
    arrays by content; functions recursively, another module's by name); a
    ``functools.partial`` by its function, args and keywords; a bound method (e.g. a flax
    ``module.apply``) by ``__func__`` and its object's type (and dataclass fields); a
    callable instance by its type and its ``__call__``; anything else by type and
    ``__qualname__``. Two lambdas with the same qualname but other code, or the same code
    closing over other values, differ; one function defined twice alike agrees. ``None``
    gives ``"none"``."""
    if fn is None:
        return "none"
    h = _Hasher()
    _feed(h, fn)
    return h.hexdigest()


def data_fingerprint(tree) -> str:
    """A hex digest of a pytree of arrays' contents: sha1 over its structure and each
    leaf's dtype, shape and bytes (via numpy; a non-array leaf as ``function_fingerprint``
    describes it). Equal shapes with other values differ."""
    leaves, treedef = jax.tree.flatten(tree)
    h = _Hasher()
    h.put("tree", str(treedef), len(leaves))
    for leaf in leaves:
        _feed(h, leaf)
    return h.hexdigest()


def _flatten(tree) -> dict:
    return {f"leaf{i:04d}": np.asarray(leaf) for i, leaf in enumerate(jax.tree.leaves(tree))}


def _unflatten(like, saved: dict):
    leaves = [saved[f"leaf{i:04d}"] for i in range(len(saved))]
    return jax.tree.unflatten(jax.tree.structure(like), leaves)


def _stack(per_run: list, shape: tuple):
    """Per-run trees -> one tree with the grid's axes first; a per-run axis whose length
    differs between buckets (rows) is padded with NaN (0 for integers, False)."""

    def stack(*leaves):
        leaves = [np.asarray(a) for a in leaves]
        if len({a.shape for a in leaves}) > 1:
            longest = max(a.shape[0] for a in leaves)
            fill = np.nan if np.issubdtype(leaves[0].dtype, np.floating) else 0
            leaves = [np.concatenate([a, np.full((longest - a.shape[0],) + a.shape[1:], fill, a.dtype)]) for a in leaves]
        out = np.stack(leaves)
        return out.reshape(shape + out.shape[1:])

    return jax.tree.map(stack, *per_run)
