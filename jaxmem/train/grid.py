"""``run_grid``: any model over a named grid of seeds, dataset sizes and hyperparameters,
as a few compiled programs.

A model is two pure functions, ``init(key, hp) -> params`` and ``loss(params, batch, hp)
-> [N]`` per-example losses; a flax module supplies them (``module.init``,
``module.apply``). The grid is a dict ``axis -> values``; its runs are the product of the
values, in the axes' order. ``seed`` picks the init key, ``data_seed`` the dataset (with a
callable ``data``), ``n_train`` how many of the dataset's first rows a run trains on (the
rest weigh 0); every other axis is traced and passed in ``hp``. Dataset sizes are grouped
into padded buckets (``buckets.plan_buckets``), one program per bucket; a bucket's runs
are split over every device (``jax.shard_map`` on a 1-D mesh, across processes after
``jax.distributed.initialize()``) and mapped on each device ``runs_batch`` vmapped at a
time. Training goes in chunks; with ``checkpoint_dir`` each chunk's state is saved, so a
killed run resumes at its last chunk with the same numbers.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmem import devices, results
from jaxmem.buckets import plan_buckets
from jaxmem.devices import SPLIT, WHOLE
from jaxmem.progress import Progress
from jaxmem.train import loop, optim
from jaxmem.validate import positive_int

#: grid axes the trainer itself reads; every other axis is traced into ``hp``
SEED, DATA_SEED, N_TRAIN = "seed", "data_seed", "n_train"
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

    def to_xarray(self):
        """The per-run arrays as an ``xarray.Dataset`` with the grid's axes as dims."""
        import xarray as xr

        dims = list(self.axes)
        coords = {name: np.asarray(values) for name, values in self.axes.items()}
        variables = {"train_loss": self.train_loss, "diverged": self.diverged,
                     "history": (self.history, ["step"])}
        for name, value in self.outputs.items():
            variables[name] = value
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
             hp_dtype=jnp.float32, progress: Progress | bool | None = None, keep_params_at=()) -> GridResult:
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
    dtype of the traced hyperparameters. ``checkpoint_tag`` names what the functions
    close over (their settings) in the checkpoints' names. ``keep_params_at``: update
    counts (0: the init, ``steps``: the final params) whose params are kept, in
    ``GridResult.params_at``.
    """
    t_start = time.perf_counter()
    sched = loop.Schedule(steps, n_history)
    opt = optim.Optim(optimizer, schedule, warmup_frac, b1, b2, eps, decay)
    axes = _check_grid(grid, data, fresh)
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
    statics = _Statics(sched, opt, batch_size, fresh, hp_dtype, tuple(n for n in names if n not in (SEED, DATA_SEED, N_TRAIN)),
                       keep)
    per_run: dict[int, dict] = {}
    compile_seconds = train_seconds = 0.0
    bucket_seconds = []
    for ib, (rows, bucket_sizes) in enumerate(plan):
        index = [i for i, p in enumerate(points) if bucket_sizes is None or axes[N_TRAIN][p[names.index(N_TRAIN)]] in bucket_sizes]
        rows = rows if rows is not None else (n_fixed if n_fixed is not None else None)
        label = f"bucket {ib + 1}/{len(plan)}" + (f" ({rows} rows)" if rows else "")
        batch = runs_batch(rows) if callable(runs_batch) else runs_batch
        out, c_s, t_s = _train_bucket(model, statics, data, aux, axes, [points[i] for i in index], rows, root, mesh,
                                      chunks, checkpoint_dir, checkpoint_tag, batch, progress, label)
        compile_seconds, train_seconds = compile_seconds + c_s, train_seconds + t_s
        bucket_seconds.append(t_s)
        for r, i in enumerate(index):
            per_run[i] = jax.tree.map(lambda a: a[r], out)
    stacked = _stack([per_run[i] for i in range(len(points))], shape)
    return GridResult(stacked["params"], stacked["train_loss"], stacked["history"]["loss"], stacked["history"],
                      np.asarray(sched.history_steps), stacked["diverged"], stacked.get("outputs", {}), axes,
                      time.perf_counter() - t_start, compile_seconds, train_seconds, bucket_seconds,
                      stacked.get("params_at"))


def _check_grid(grid, data, fresh) -> dict:
    if not grid:
        raise ValueError("grid must name at least one axis, e.g. {'seed': range(4)}")
    axes = {}
    for name, values in grid.items():
        values = list(np.atleast_1d(np.asarray(values)).tolist())
        if not values:
            raise ValueError(f"grid axis {name!r} has no values")
        if name in (SEED, DATA_SEED, N_TRAIN):
            for v in values:
                if int(v) != v or v < (1 if name == N_TRAIN else 0):
                    raise ValueError(f"grid axis {name!r} takes integers >= {1 if name == N_TRAIN else 0}, got {v!r}")
            values = [int(v) for v in values]
        axes[name] = values
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
class _Statics:
    sched: loop.Schedule
    opt: optim.Optim
    batch_size: int | None
    fresh: bool
    hp_dtype: Any
    hp_names: tuple
    keep: tuple = ()  # keep_params_at


def _init_key(root, seed: int):
    return jax.random.fold_in(jax.random.fold_in(root, _INIT), seed)


def init_key(grid_seed: int, seed: int):
    """The init key of runs with ``seed`` in a grid run with ``seed=grid_seed``."""
    return _init_key(jax.random.key(grid_seed), seed)


def _runs(statics: _Statics, axes: dict, points: list, root):
    """The traced description of each run: its keys, dataset, size and ``hp``."""
    names = list(axes)

    def value(p, name, default=0):
        return axes[name][p[names.index(name)]] if name in axes else default

    init_keys = [_init_key(root, value(p, SEED)) for p in points]
    order_keys = [jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(root, _ORDER), value(p, SEED)),
                                     value(p, DATA_SEED)) for p in points]
    data_seeds = sorted({value(p, DATA_SEED) for p in points})
    runs = {
        "init_key": np.asarray(jax.random.key_data(jnp.stack(init_keys))),
        "order_key": np.asarray(jax.random.key_data(jnp.stack(order_keys))),
        "data_index": np.array([data_seeds.index(value(p, DATA_SEED)) for p in points], np.int32),
        "n_train": np.array([value(p, N_TRAIN, -1) for p in points], np.int32),
        "hp": {name: np.array([value(p, name) for p in points], statics.hp_dtype) for name in statics.hp_names},
    }
    data_keys = np.asarray(jax.random.key_data(jnp.stack(
        [jax.random.fold_in(jax.random.fold_in(root, _DATA), s) for s in data_seeds])))
    return runs, data_keys


def _train_bucket(model, statics, data, aux, axes, points, rows, root, mesh, chunks, checkpoint_dir, tag, runs_batch,
                  progress, label):
    sched = statics.sched
    runs, data_keys = _runs(statics, axes, points, root)
    n_runs = len(points)
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
    programs = _compile(model, statics, data if callable(data) else None, rows, batch, chunk_records,
                        _abstract(runs), _abstract(inputs), mesh)
    compile_seconds = time.perf_counter() - t0
    path = None
    if checkpoint_dir is not None:
        name = f"{getattr(model.init, '__qualname__', '')}/{getattr(model.loss or model.objective, '__qualname__', '')}"
        path = Path(checkpoint_dir) / f"grid-{_fingerprint(statics, axes, points, rows, chunks, name + tag)}"
    done_path = None if path is None else path.with_suffix(".done.npz")
    if done_path is not None and done_path.exists():
        progress.update(n_runs * sched.steps, f"{label}: loaded from {done_path}")
        return _unflatten(programs.result_shape, results.load_arrays(done_path)), compile_seconds, 0.0
    sets = programs.make_sets(inputs)
    states = programs.start(runs)
    records, first = [], 0
    chunk_path = None if path is None else path.with_suffix(".chunk.npz")
    if chunk_path is not None and chunk_path.exists():
        saved = results.load_arrays(chunk_path)
        first = int(saved.pop("chunk"))
        states, so_far = _unflatten((programs.state_shape, programs.result_shape["history"]), saved)
        states, records = jax.device_put(states, devices.by_run(mesh)), [so_far]
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
            results.save_arrays(chunk_path, {**_flatten((devices.to_host(states), so_far)), "chunk": np.array(c + 1)})
    all_records = jax.tree.map(lambda *a: np.concatenate(a, axis=1), *records)
    out = devices.to_host(programs.evaluate(states, jax.device_put(all_records, devices.by_run(mesh)), runs, sets))
    out = jax.tree.map(lambda a: np.asarray(a[:n_runs]), out)
    if done_path is not None:
        results.save_arrays(done_path, _flatten(out))
        if chunk_path.exists():
            chunk_path.unlink()
    return out, compile_seconds, train_seconds


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
        return lambda p, b, w: loop.weighted_mean(model.loss(p, b, hp), w)

    def train_set(run, sets):
        batch = jax.tree.map(lambda a: a[run["data_index"]], sets["data"]) if data_fn is not None else sets["data"]
        n = jax.tree.leaves(batch)[0].shape[0]
        weights = (jnp.arange(n) < run["n_train"]) | (run["n_train"] < 0)
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


def _fingerprint(statics, axes, points, rows, chunks, name: str) -> str:
    """Names a bucket's checkpoints by what its numbers depend on (the model's functions
    by name: a checkpoint folder belongs to one model)."""
    text = repr((statics, axes, points, rows, chunks, name, jax.default_backend()))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


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
