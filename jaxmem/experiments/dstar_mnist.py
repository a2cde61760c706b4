"""``dstar-mnist``: maximal data dimensionality D* of an MNIST MLP classifier.

Hobbhahn, "More findings on maximal data dimensionality" (SPEC §2). A one-hidden-
layer ReLU MLP is trained on a subset of MNIST; D* of every training point is the
leverage of its hidden vector (``dstar.exact``, in float64 by default so that
``sum D* = rank = live neurons`` holds). Parts, each one vmapped program where
shapes allow, saved as it finishes:

- ``inputs``: raw vs L2-normalised inputs; where the misclassified training points
  fall along the sorted D* curve and which classes sit where (a, b, c);
- ``hidden_sizes``, ``seeds``, ``dataset_sizes``, ``weight_decay``: D* curves and
  the Spearman matrix of the same points' D* across models (d, e, f, g);
- ``training``: D* at checkpoints and after each of the first minibatches (h);
- ``error_rates``: models trained from scratch for few updates, errors per D* bin (i);
- ``autoencoder``: the ReLU-output autoencoder on the same points (j).

Every part but ``inputs`` uses the normalised inputs, as C. Olah did.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import threadpoolctl

from jaxmem import classifier, dstar, figures_dstar, mnist, results, stats, train
from jaxmem.classifier import Data, FitConfig, Hyper
from jaxmem.models import mlp, relu_output
from jaxmem.progress import Progress

DESCRIPTION = "D* on MNIST: an MLP classifier (inputs, errors, classes, sizes, seeds, decay, training) + autoencoder"
ACCEPTS_DATA = True
PARTS = ("inputs", "hidden_sizes", "seeds", "dataset_sizes", "weight_decay", "training", "error_rates",
         "autoencoder")
N_BINS = 10  # deciles of D*


@dataclasses.dataclass(frozen=True)
class Preset:
    """Everything a run depends on besides the data files.

    Updates are minibatch AdamW steps; an epoch is ``ceil(n / batch_size)`` of them.
    ``horizons`` are update counts of the ``error_rates`` models; ``checkpoint_epochs``
    and the first ``first_batches`` updates are where ``training`` measures D*.
    """

    n_train: int = 5000
    n_test: int = 2000
    n_hidden: int = 512
    batch_size: int = 500
    epochs: int = 100
    lr: float = 3e-3
    weight_decay: float = 1e-2
    schedule: str = "cosine"
    n_history: int = 20
    hidden_sizes: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    seeds: int = 8
    dataset_sizes: tuple[int, ...] = (1000, 2000, 4000, 8000)
    weight_decays: tuple[float, ...] = (0.0, 1e-3, 1e-2, 1e-1, 1.0)
    checkpoint_epochs: tuple[int, ...] = (0, 1, 2, 5, 10, 20, 50, 100)
    first_batches: int = 10
    horizons: tuple[int, ...] = (10, 20, 30, 80, 180, 400)
    ae_hidden: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    ae_steps: int = 10_000
    ae_lr: float = 1e-3
    ae_weight_decay: float = 1e-2
    solve_steps: int = 100
    x64: bool = True
    seed: int = 0

    def __post_init__(self):
        for name in ("n_train", "n_test", "n_hidden", "batch_size", "epochs", "seeds", "ae_steps", "solve_steps"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("hidden_sizes", "dataset_sizes", "horizons", "ae_hidden"):
            values = getattr(self, name)
            if not values or any(int(v) != v or v < 1 for v in values):
                raise ValueError(f"{name} must be a non-empty tuple of positive integers, got {values!r}")
        if not self.weight_decays or any(not (w >= 0 and math.isfinite(w)) for w in self.weight_decays):
            raise ValueError(f"weight_decays must be finite values >= 0, got {self.weight_decays!r}")
        if any(e < 0 or e > self.epochs for e in self.checkpoint_epochs):
            raise ValueError(f"checkpoint_epochs must lie in [0, epochs={self.epochs}], got {self.checkpoint_epochs!r}")

    @property
    def steps(self) -> int:
        return self.epochs * _per_epoch(self.n_train, self.batch_size)


def _per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


#: ``quick`` fits ~3 minutes on a 2-core CPU: 20 epochs at a higher lr, fewer models,
#: error-rate models trained for 1-40 single updates. ``paper`` follows the seed: 5,000
#: training points for the sweeps, 100 epochs, 8 seeds, error-rate models trained for
#: 1, 2, 3, 8, 18, 40 epochs, six autoencoder sizes.
PRESETS = {
    "quick": Preset(n_train=5000, n_test=1000, epochs=20, lr=1e-2, n_history=10, seeds=5,
                    dataset_sizes=(1000, 2000, 5000), weight_decays=(0.0, 1e-2, 1e-1, 1.0),
                    checkpoint_epochs=(0, 1, 2, 5, 10, 20), horizons=(1, 2, 3, 8, 18, 40),
                    ae_hidden=(16, 32, 64), ae_steps=300, ae_lr=1e-2),
    "paper": Preset(),
}


def preset(name: str, seeds: int | None = None) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    p = PRESETS[name]
    if seeds is not None:
        if seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {seeds!r}")
        p = dataclasses.replace(p, seeds=int(seeds))
    return p


# ---------------------------------------------------------------- data


@dataclasses.dataclass(frozen=True)
class Pool:
    """MNIST split into nested training prefixes and a held-out tail (host arrays)."""

    images: np.ndarray  # uint8 [n_max, 28, 28], the rows used for training, in order
    raw: np.ndarray  # float32 [n_max, 784] in [0, 1]
    normalized: np.ndarray  # float32 [n_max, 784], unit L2 rows
    labels: np.ndarray  # int32 [n_max]
    test_raw: np.ndarray
    test_normalized: np.ndarray
    test_labels: np.ndarray
    index: np.ndarray  # [n_max] rows of the file the training rows are
    info: dict


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.where(norm > 0, norm, 1)).astype(np.float32)


def load_pool(p: Preset, data_dir=None) -> Pool:
    """A fixed permutation (seed ``p.seed``) of the file: the last ``n_test`` rows
    held out, training sets the first ``n`` of the rest (nested)."""
    kinds = mnist.available(data_dir)
    kind = "train" if "train" in kinds else "t10k"
    images, labels = mnist.load(data_dir, kind)
    n_max = max(p.n_train, *p.dataset_sizes)
    if n_max + p.n_test > images.shape[0]:
        raise ValueError(f"{kind} MNIST holds {images.shape[0]} images, fewer than the {n_max} training "
                         f"+ {p.n_test} held-out rows this preset needs")
    perm = np.random.default_rng(p.seed).permutation(images.shape[0])
    train_rows, test_rows = perm[:n_max], perm[-p.n_test:]
    flat = images.reshape(images.shape[0], -1).astype(np.float32) / 255
    folder = Path(data_dir) if data_dir is not None else mnist.default_dir()
    info = {"data_dir": str(folder), "kind": kind, "n_file": int(images.shape[0]),
            "n_held_out": p.n_test, "permutation_seed": p.seed}
    return Pool(images[train_rows], flat[train_rows], _unit_rows(flat[train_rows]), labels[train_rows],
                flat[test_rows], _unit_rows(flat[test_rows]), labels[test_rows], train_rows, info)


# ---------------------------------------------------------------- helpers


def _key(p: Preset, i: int):
    return jax.random.fold_in(jax.random.key(p.seed), i)


def _fit_config(p: Preset, n_hidden: int, steps: int | None = None, checkpoints=()) -> FitConfig:
    return FitConfig(n_hidden=n_hidden, steps=steps or p.steps, batch_size=p.batch_size, schedule=p.schedule,
                     n_history=min(p.n_history, steps or p.steps), checkpoints=tuple(checkpoints))


def _fit(timing: dict, cfg: FitConfig, hyper: Hyper, keys, data: Data, data_axes=None):
    """``classifier.fit_runs`` compiled ahead of time, so compile and run are timed apart."""
    run, compile_seconds = classifier.compile_runs(cfg, hyper, keys, data, data_axes)
    start = time.perf_counter()
    out = jax.device_get(run())
    timing["compile"] += compile_seconds
    timing["train"] += time.perf_counter() - start
    return out


def one_blas_thread():
    """Limit OpenBLAS to one thread.

    JAX's CPU ``eigh`` calls LAPACK in scipy's OpenBLAS, whose threads slowed it
    down up to 40x (0.2 s to 9 s for a 1,000 x 1,000 eigh) while another process
    shared the 2-core machine; one thread kept ``dstar.exact`` at about 0.2 s for
    5,000 x 512 in float64.
    """
    return threadpoolctl.threadpool_limits(1, user_api="blas")


def _dstar(timing: dict, p: Preset, h, solve: bool = False) -> dict:
    """D* of ``h [R, N, d]`` (float64 with ``p.x64``) and the sum check per run:
    exact's sum against the rank and live neurons, and ``dstar.solve``'s with ``solve``."""
    start = time.perf_counter()
    with _precision(p), one_blas_thread():
        h = np.asarray(h, np.float64 if p.x64 else np.float32)
        d = np.asarray(dstar.exact(h))
        out = {"dstar": d, "total": d.sum(-1), "rank": np.asarray(dstar.rank(h)), "live": np.asarray(dstar.live(h))}
        if solve:
            s = dstar.solve(h, steps=p.solve_steps)
            out.update(solve_total=np.asarray(s.total), solve_converged=np.asarray(s.converged),
                       solve_max_abs_error=np.abs(np.asarray(s.dstar) - d).max(-1))
    timing["dstar"] += time.perf_counter() - start
    return out


def _check(ds: dict, r: int) -> dict:
    out = {"total": float(ds["total"][r]), "rank": int(ds["rank"][r]), "live": int(ds["live"][r]),
           "sum_equals_rank": bool(abs(ds["total"][r] - ds["rank"][r]) <= 1e-3 * max(ds["rank"][r], 1)),
           "rank_equals_live": bool(ds["rank"][r] == ds["live"][r])}
    if "solve_total" in ds:
        out.update(solve_total=float(ds["solve_total"][r]), solve_converged=bool(ds["solve_converged"][r]),
                   solve_max_abs_error=float(ds["solve_max_abs_error"][r]))
    return out


def decile_errors(dstar_N, wrong_N, n_bins: int = N_BINS) -> dict:
    """Misclassified points per bin of D*, bins ordered from the highest D* (left of
    the seed's plots) to the lowest, each ``N / n_bins`` points (``np.array_split``).

    Returns ``fraction`` (errors / points in the bin), ``share`` (errors in the bin /
    all errors; sums to 1, all 0 without errors), ``count`` and ``size``.
    """
    order = np.argsort(-np.asarray(dstar_N), kind="stable")
    bins = np.array_split(order, n_bins)
    wrong = np.asarray(wrong_N, bool)
    count = np.array([wrong[b].sum() for b in bins])
    size = np.array([b.size for b in bins])
    return {"fraction": (count / np.maximum(size, 1)).tolist(),
            "share": (count / max(count.sum(), 1)).tolist(),
            "count": count.tolist(), "size": size.tolist()}


def curve_position(dstar_N) -> np.ndarray:
    """Each point's place along the sorted curve: 0 at the highest D*, 1 at the lowest."""
    order = np.argsort(-np.asarray(dstar_N), kind="stable")
    pos = np.empty(order.size)
    pos[order] = np.arange(order.size) / max(order.size - 1, 1)
    return pos


def _model(ds: dict, r: int, wrong=None, accuracy=None, test_accuracy=None, n=None) -> dict:
    d = ds["dstar"][r][:n]
    q10, q50, q90 = np.quantile(d, [0.1, 0.5, 0.9])
    out = {"sum_check": _check(ds, r), "dstar_max": float(d.max()), "dstar_q90": float(q90),
           "dstar_median": float(q50), "dstar_q10": float(q10), "dstar_min": float(d.min()),
           "dstar_q90_over_q10": float(q90 / q10) if q10 > 0 else None}
    if accuracy is not None:
        out["train_accuracy"] = float(accuracy)
    if test_accuracy is not None:
        out["test_accuracy"] = float(test_accuracy)
    if wrong is not None:
        w = np.asarray(wrong)[:n]
        deciles = decile_errors(d, w)
        out.update(n_misclassified=int(w.sum()), error_fraction_per_decile=deciles["fraction"],
                   error_share_per_decile=deciles["share"],
                   error_share_high_half=float(sum(deciles["share"][: N_BINS // 2])))
    return out


def _precision(p: Preset):
    return jax.enable_x64(True) if p.x64 else contextlib.nullcontext()


def _spearman(p: Preset, curves) -> np.ndarray:
    """Spearman matrix ``[R, R]`` of the rows of ``curves [R, N]`` (float64 with ``p.x64``)."""
    with _precision(p):
        return np.asarray(stats.spearman_matrix(np.asarray(curves, np.float64 if p.x64 else np.float32)))


def _rho(p: Preset, a, b) -> float:
    return float(_spearman(p, np.stack([a, b]))[0, 1])


def _listed(matrix: np.ndarray) -> list:
    return np.round(matrix, 6).tolist()


def _hidden(params, x):
    """Hidden vectors of every run: params with a leading [R] axis, x [N, n] or [R, N, n]."""
    x = jnp.asarray(x)
    return np.asarray(jax.vmap(mlp.hidden, in_axes=(0, 0 if x.ndim == 3 else None))(params, x))


def _correct(params, x, labels):
    x = jnp.asarray(x)
    return np.asarray(jax.vmap(mlp.correct, in_axes=(0, 0 if x.ndim == 3 else None, None))(params, x, labels))


def _train_data(pool: Pool, n: int, normalized: bool = True) -> Data:
    x = pool.normalized if normalized else pool.raw
    return Data(jnp.asarray(x[:n]), jnp.asarray(pool.labels[:n]), jnp.ones(n, jnp.float32))


# ---------------------------------------------------------------- parts


def part_inputs(p: Preset, pool: Pool, timing: dict, done: dict):
    """(a, b, c): raw vs L2-normalised inputs, one vmapped program of two runs."""
    n = p.n_train
    x_RxNxI = np.stack([pool.raw[:n], pool.normalized[:n]])
    data = Data(jnp.asarray(x_RxNxI), jnp.asarray(pool.labels[:n]), jnp.ones(n, jnp.float32))
    keys = jnp.stack([_key(p, 0)] * 2)
    fit = _fit(timing, _fit_config(p, p.n_hidden), Hyper(p.lr, p.weight_decay), keys, data, Data(0, None, None))
    ds = _dstar(timing, p, _hidden(fit.params, x_RxNxI), solve=True)
    wrong = ~_correct(fit.params, x_RxNxI, pool.labels[:n])
    test_x = np.stack([pool.test_raw, pool.test_normalized])
    test_acc = _correct(fit.params, test_x, pool.test_labels).mean(-1)
    labels = pool.labels[:n]
    input_norm = np.linalg.norm(pool.raw[:n], axis=-1)
    res = {"variants": ["raw", "normalized"]}
    for r, name in enumerate(res["variants"]):
        pos = curve_position(ds["dstar"][r])
        res[name] = {**_model(ds, r, wrong[r], fit.accuracy[r], test_acc[r]),
                     "spearman_dstar_vs_input_norm": _rho(p, ds["dstar"][r], input_norm),
                     "class_mean_position": [float(pos[labels == c].mean()) for c in range(10)],
                     "class_share_top_decile": _class_share(pos, labels, top=True),
                     "class_share_bottom_decile": _class_share(pos, labels, top=False)}
    res["spearman_raw_vs_normalized"] = _rho(p, ds["dstar"][0], ds["dstar"][1])
    arrays = {"dstar": ds["dstar"], "wrong": wrong, "labels": labels, "images": pool.images[:n],
              "file_index": pool.index[:n],
              "input_norm": input_norm, "train_accuracy": fit.accuracy, "test_accuracy": test_acc,
              "history_step": fit.history.step, "history_accuracy": fit.history.accuracy,
              "history_loss": fit.history.loss, "total": ds["total"], "rank": ds["rank"], "live": ds["live"]}
    return res, arrays, 2


def _class_share(pos, labels, top: bool) -> list:
    sel = pos <= 0.1 if top else pos >= 0.9
    return (np.bincount(labels[sel], minlength=10) / max(sel.sum(), 1)).round(4).tolist()


def part_hidden_sizes(p: Preset, pool: Pool, timing: dict, done: dict):
    """(d): one program per hidden size (shapes differ)."""
    data = _train_data(pool, p.n_train)
    curves, models, acc = [], {}, []
    for m in p.hidden_sizes:
        fit = _fit(timing, _fit_config(p, m), Hyper(p.lr, p.weight_decay), _key(p, 0)[None], data)
        ds = _dstar(timing, p, _hidden(fit.params, data.x))
        wrong = ~_correct(fit.params, data.x, data.labels)
        models[str(m)] = _model(ds, 0, wrong[0], fit.accuracy[0])
        curves.append(ds["dstar"][0])
        acc.append(fit.accuracy[0])
    rho = _spearman(p, curves)
    res = {"hidden_sizes": list(p.hidden_sizes), "models": models, "spearman": _listed(rho)}
    return res, {"dstar": np.stack(curves), "hidden_sizes": np.array(p.hidden_sizes),
                 "train_accuracy": np.array(acc), "spearman": rho}, len(p.hidden_sizes)


def _grid_part(p: Preset, pool: Pool, timing: dict, hyper: Hyper, keys, labels: list, name: str):
    data = _train_data(pool, p.n_train)
    fit = _fit(timing, _fit_config(p, p.n_hidden), hyper, keys, data)
    ds = _dstar(timing, p, _hidden(fit.params, data.x))
    wrong = ~_correct(fit.params, data.x, data.labels)
    rho = _spearman(p, ds["dstar"])
    res = {name: labels, "models": [_model(ds, r, wrong[r], fit.accuracy[r]) for r in range(len(labels))],
           "spearman": _listed(rho)}
    arrays = {"dstar": ds["dstar"], "wrong": wrong, name: np.array(labels), "train_accuracy": fit.accuracy,
              "spearman": rho}
    return res, arrays, len(labels)


def part_seeds(p: Preset, pool: Pool, timing: dict, done: dict):
    """(e): ``p.seeds`` init/shuffle seeds, one vmapped program."""
    keys = jnp.stack([_key(p, s) for s in range(p.seeds)])
    return _grid_part(p, pool, timing, Hyper(p.lr, p.weight_decay), keys, list(range(p.seeds)), "seeds")


def part_weight_decay(p: Preset, pool: Pool, timing: dict, done: dict):
    """(g): weight decays, one vmapped program (seed 0 for all)."""
    wd = jnp.asarray(p.weight_decays, jnp.float32)
    keys = jnp.stack([_key(p, 0)] * len(p.weight_decays))
    return _grid_part(p, pool, timing, Hyper(p.lr, wd), keys, list(p.weight_decays), "weight_decays")


def part_dataset_sizes(p: Preset, pool: Pool, timing: dict, done: dict):
    """(f): nested training sets, padded to the largest and masked; every size gets
    ``p.epochs`` epochs (a traced horizon inside one scan)."""
    sizes = sorted(p.dataset_sizes)
    n_pad = sizes[-1]
    weights = (np.arange(n_pad)[None, :] < np.array(sizes)[:, None]).astype(np.float32)
    horizons = np.array([p.epochs * _per_epoch(n, p.batch_size) for n in sizes], np.float32)
    data = Data(jnp.asarray(pool.normalized[:n_pad]), jnp.asarray(pool.labels[:n_pad]), jnp.asarray(weights))
    cfg = _fit_config(p, p.n_hidden, steps=int(horizons.max()))
    keys = jnp.stack([_key(p, 0)] * len(sizes))
    fit = _fit(timing, cfg, Hyper(p.lr, p.weight_decay, 1.0, jnp.asarray(horizons)), keys, data, Data(None, None, 0))
    h = _hidden(fit.params, data.x) * weights[:, :, None]
    ds = _dstar(timing, p, h)
    wrong = ~_correct(fit.params, data.x, data.labels) & (weights > 0)
    common = sizes[0]
    rho = _spearman(p, ds["dstar"][:, :common])
    res = {"dataset_sizes": sizes, "updates": horizons.astype(int).tolist(),
           "models": [_model(ds, r, wrong[r], fit.accuracy[r], n=n) for r, n in enumerate(sizes)],
           "spearman_common_points": _listed(rho), "n_common_points": common}
    arrays = {"dstar": ds["dstar"], "wrong": wrong, "dataset_sizes": np.array(sizes), "train_accuracy": fit.accuracy,
              "spearman": rho}
    return res, arrays, len(sizes)


def part_training(p: Preset, pool: Pool, timing: dict, done: dict):
    """(h): one run keeping its params after each of the first minibatches and at
    ``checkpoint_epochs``; D* of the training points at each."""
    per_epoch = _per_epoch(p.n_train, p.batch_size)
    epochs = sorted({e * per_epoch for e in p.checkpoint_epochs})
    batches = list(range(min(p.first_batches, p.steps) + 1))
    steps = sorted(set(epochs) | set(batches))
    data = _train_data(pool, p.n_train)
    fit = _fit(timing, _fit_config(p, p.n_hidden, checkpoints=steps), Hyper(p.lr, p.weight_decay),
               _key(p, 0)[None], data)
    ckpt = jax.tree.map(lambda a: a[0], fit.checkpoints)  # [K, ...]
    h = np.asarray(classifier.hidden_at(ckpt, data.x))
    ds = _dstar(timing, p, h)
    correct = np.asarray(jax.vmap(mlp.correct, in_axes=(0, None, None))(ckpt, data.x, data.labels))
    acc = correct.mean(-1)
    at = {s: i for i, s in enumerate(steps)}
    e_idx, b_idx = [at[s] for s in epochs], [at[s] for s in batches]
    rho_e, rho_b = _spearman(p, ds["dstar"][e_idx]), _spearman(p, ds["dstar"][b_idx])
    res = {"checkpoint_updates": steps, "updates_per_epoch": per_epoch,
           "models": [_model(ds, i, ~correct[i], acc[i]) for i in range(len(steps))],
           "epochs": [s // per_epoch for s in epochs], "spearman_epochs": _listed(rho_e),
           "first_batches": batches, "spearman_first_batches": _listed(rho_b)}
    arrays = {"dstar": ds["dstar"], "wrong": ~correct, "checkpoint_updates": np.array(steps), "train_accuracy": acc,
              "epoch_index": np.array(e_idx), "batch_index": np.array(b_idx), "updates_per_epoch": per_epoch,
              "spearman_epochs": rho_e, "spearman_first_batches": rho_b}
    return res, arrays, 1


def part_error_rates(p: Preset, pool: Pool, timing: dict, done: dict):
    """(i): independent models trained from scratch for ``horizons`` updates (each
    schedule spans its own horizon), one program; errors per D* decile."""
    horizons = sorted(p.horizons)
    data = _train_data(pool, p.n_train)
    keys = jnp.stack([_key(p, 1000 + i) for i in range(len(horizons))])
    hyper = Hyper(p.lr, p.weight_decay, 1.0, jnp.asarray(horizons, jnp.float32))
    fit = _fit(timing, _fit_config(p, p.n_hidden, steps=horizons[-1]), hyper, keys, data)
    ds = _dstar(timing, p, _hidden(fit.params, data.x))
    wrong = ~_correct(fit.params, data.x, data.labels)
    res = {"updates": horizons, "models": [_model(ds, r, wrong[r], fit.accuracy[r]) for r in range(len(horizons))]}
    res["train_error"] = [1 - m["train_accuracy"] for m in res["models"]]
    arrays = {"dstar": ds["dstar"], "wrong": wrong, "updates": np.array(horizons), "train_accuracy": fit.accuracy}
    return res, arrays, len(horizons)


def part_autoencoder(p: Preset, pool: Pool, timing: dict, done: dict):
    """(j): ReLU-output autoencoder ``ReLU(W^T W x + b)`` on the normalised training
    points, one program per hidden size; D* of ``h = W x``."""
    x = jnp.asarray(pool.normalized[: p.n_train])
    curves, models, losses = [], {}, []
    hyper = train.Hyper(p.ae_lr, p.ae_weight_decay, 1.0)
    for m in p.ae_hidden:
        cfg = train.TrainConfig(n_features=784, n_hidden=m, steps=p.ae_steps, n_history=min(20, p.ae_steps))
        t0 = time.perf_counter()
        compiled = jax.jit(train.train, static_argnums=0).lower(cfg, hyper, _key(p, 0), x).compile()
        t1 = time.perf_counter()
        out = jax.device_get(compiled(hyper, _key(p, 0), x))
        timing["compile"] += t1 - t0
        timing["train"] += time.perf_counter() - t1
        ds = _dstar(timing, p, np.asarray(relu_output.hidden(out.params, x))[None])
        models[str(m)] = {**_model(ds, 0), "train_loss": float(out.train_loss)}
        curves.append(ds["dstar"][0])
        losses.append(float(out.train_loss))
    rho = _spearman(p, curves)
    res = {"hidden_sizes": list(p.ae_hidden), "models": models, "spearman": _listed(rho)}
    arrays = {"dstar": np.stack(curves), "hidden_sizes": np.array(p.ae_hidden), "train_loss": np.array(losses),
              "spearman": rho}
    if "inputs" in done:  # the classifier's D* of the same points (normalised inputs)
        mlp_curve = done["inputs"]["dstar"][1]
        res["spearman_vs_classifier"] = [_rho(p, c, mlp_curve) for c in curves]
        arrays["classifier_dstar"] = mlp_curve
    return res, arrays, len(p.ae_hidden)


PART_FNS = {"inputs": part_inputs, "hidden_sizes": part_hidden_sizes, "seeds": part_seeds,
            "dataset_sizes": part_dataset_sizes, "weight_decay": part_weight_decay, "training": part_training,
            "error_rates": part_error_rates, "autoencoder": part_autoencoder}


# ---------------------------------------------------------------- run


def config_dict(p: Preset, pool_info: dict) -> dict:
    return json.loads(json.dumps({**dataclasses.asdict(p), "steps": p.steps, "data": pool_info}))


def run(preset_name: str, out, seeds: int | None = None, resume: bool = False, data_dir=None,
        progress=None) -> dict:
    """Run every part, writing ``<part>.npz``, its figures and ``summary.json`` as each
    part finishes; with ``resume``, parts already saved under the same config are kept
    (``wall_seconds`` then adds the time they took when they ran)."""
    p = preset(preset_name, seeds)
    out = Path(out)
    start = time.perf_counter()
    pool = load_pool(p, data_dir)
    config = config_dict(p, pool.info)
    summary_path = out / "summary.json"
    previous = {}
    if resume and summary_path.exists():
        previous = results.load_json(summary_path)
        if previous.get("config") != config:
            raise ValueError(f"--resume: {summary_path} was made with another config; use a new --out")
    if not isinstance(progress, Progress):
        progress = Progress(len(PARTS), enabled=progress)
    summary = {"experiment": "dstar-mnist", "preset": preset_name, **results.device_info(), "n_runs": 0, "wall_seconds": 0.0,
               "compile_seconds": 0.0, "config": config, "results": {}, "parts_done": []}
    done, reused = {}, 0.0  # reused: seconds the parts loaded from a previous run took then
    for name in PARTS:
        path = out / f"{name}.npz"
        old = previous.get("results", {}).get(name)
        if old is not None and path.exists():
            res, arrays, n_runs = old, results.load_arrays(path), old["n_runs"]
            label = f"{name} loaded from {path}"
        else:
            timing = {"compile": 0.0, "train": 0.0, "dstar": 0.0}
            t0 = time.perf_counter()
            res, arrays, n_runs = PART_FNS[name](p, pool, timing, done)
            res = {**res, "n_runs": n_runs, "seconds": {**timing, "total": time.perf_counter() - t0}}
            results.save_arrays(path, arrays)
            label = f"{name} done"
        done[name] = arrays
        figures_dstar.draw(name, arrays, out)
        summary["results"][name] = res
        summary["parts_done"].append(name)
        summary["n_runs"] += n_runs
        summary["compile_seconds"] += res["seconds"]["compile"]
        reused += res["seconds"]["total"] if old is not None and path.exists() else 0.0
        summary["wall_seconds"] = reused + time.perf_counter() - start
        results.save_json(summary_path, summary)
        progress.update(1, label)
    return summary
