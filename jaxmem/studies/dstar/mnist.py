"""``dstar-mnist``: maximal data dimensionality D* of an MNIST MLP classifier.

Hobbhahn, "More findings on maximal data dimensionality" (docs/sources.md §2). A one-hidden-
layer ReLU MLP is trained on a subset of MNIST; D* of every training point is the
leverage of its hidden vector (``dstar.exact``, in float64 by default so that
``sum D* = rank = live neurons`` holds). The classifier trains through the
package's grid trainer (``classifier.fit``: ``train.run_grid``), one grid of runs
per part where shapes and update counts allow. Parts, each saved as it finishes:

- ``inputs``: raw vs L2-normalised inputs; where the misclassified training points
  fall along the sorted D* curve and which classes sit where (a, b, c);
- ``hidden_sizes``, ``seeds``, ``dataset_sizes``, ``weight_decay``: D* curves and
  the Spearman matrix of the same points' D* across models (d, e, f, g);
- ``training``: D* at checkpoints and after each of the first minibatches (h);
- ``error_rates``: models trained from scratch for few updates, errors per D* bin (i);
- ``autoencoder``: the ReLU-output autoencoder on the same points, with a linear
  hidden layer ``h = W x`` and with a ReLU hidden layer ``h = ReLU(W x)`` (j; our reading
  of the seed's appendix "ReLU Hidden model");
- ``target_error``: (b) at the seed's training error (its appendix's 21 errors, read as
  21 of its 50,000 training images: the denominator is ours): models on every
  image of the file, trained for a grid of epochs; per seed the one whose training
  errors are closest to that rate, and where its errors sit along the sorted curve.

Every model also reports the low-D* tail of its curve (``tail``). Every part but
``inputs`` uses the normalised inputs, as C. Olah did. ``Preset.parts`` picks the parts.
Each part's ``info`` holds its results (``summary.json``'s ``results[part]``) and the
data it was trained on (``data``: files and their SHA-256); its arrays' ``example`` dim
is labelled by the row of the MNIST file.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
import threadpoolctl

from jaxmem import dstar, mnist, stats, train
from jaxmem.models import mlp, relu_output
from jaxmem.progress import Progress
from jaxmem.store import Part, flatten, strict_json
from jaxmem.studies.dstar import classifier
from jaxmem.studies.dstar import figures as figures_dstar
from jaxmem.train.relu import SCHEDULES as AE_SCHEDULES
from jaxmem.train.relu import example_loss_fn
from jaxmem.validate import finite_values, in_range, one_of, positive_int

DESCRIPTION = "D* on MNIST: an MLP classifier (inputs, errors, classes, sizes, seeds, decay, training) + autoencoder"
OPTIONS = ("data_dir",)
SEEDS = "seeds"
PARTS = ("inputs", "hidden_sizes", "seeds", "dataset_sizes", "weight_decay", "training", "error_rates",
         "autoencoder", "target_error")
N_BINS = 10  # deciles of D*
AE_VARIANTS = ("linear", "relu")  # h = W x, and h = ReLU(W x) (our reading of the seed's appendix "ReLU Hidden model")
#: seed 000: "All 21 incorrect classifications for the normalized case", its model "trained on
#: 50000 random samples"; that the 21 are out of those 50,000 is our reading
SEED_ERROR_RATE = 21 / 50_000
TAIL_RELATIVE = (0.5, 0.25, 0.1)  # tail thresholds as fractions of the curve's mean D*


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
    ae_variants: tuple[str, ...] = AE_VARIANTS
    ae_steps: int = 10_000
    ae_lr: float = 1e-3
    ae_weight_decay: float = 1e-2
    target_n: int | None = None
    target_epochs: tuple[int, ...] = (22, 23, 24, 25, 26)
    target_seeds: int = 4
    target_lr: float = 1e-2
    target_error_rate: float = SEED_ERROR_RATE
    tail_thresholds: tuple[float, ...] = (1e-2, 1e-3, 1e-4)
    solve_steps: int = 100
    x64: bool = True
    seed: int = 0
    parts: tuple[str, ...] = PARTS

    def __post_init__(self):
        for name in ("n_train", "n_test", "n_hidden", "batch_size", "epochs", "seeds", "ae_steps", "solve_steps",
                     "target_seeds", "n_history"):
            positive_int(name, getattr(self, name))
        for name in ("hidden_sizes", "dataset_sizes", "horizons", "ae_hidden", "target_epochs"):
            values = getattr(self, name)
            if not values:
                raise ValueError(f"{name} must be a non-empty tuple of positive integers, got {values!r}")
            for v in values:
                positive_int(name, v)
        finite_values("weight_decays", self.weight_decays)
        for e in self.checkpoint_epochs:
            in_range(f"checkpoint_epochs (epochs={self.epochs})", e, 0, self.epochs, closed_high=True)
        if self.target_n is not None:
            positive_int("target_n", self.target_n)  # None: every image
        in_range("target_error_rate", self.target_error_rate, 0.0, 1.0)
        if not self.tail_thresholds or 0 in self.tail_thresholds:
            raise ValueError(f"tail_thresholds must be values in (0, 1), got {self.tail_thresholds!r}")
        for t in self.tail_thresholds:
            in_range("tail_thresholds", t, 0.0, 1.0)
        one_of("schedule", self.schedule, classifier.SCHEDULES)
        for name, values, known in (("ae_variants", self.ae_variants, AE_VARIANTS), ("parts", self.parts, PARTS)):
            if not values or len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct names of {known}, got {values!r}")
            for v in values:
                one_of(name, v, known)

    @property
    def steps(self) -> int:
        return self.epochs * _per_epoch(self.n_train, self.batch_size)


def _per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


#: ``quick`` fits a few minutes on a 2-core CPU: 20 epochs at a higher lr, fewer models,
#: error-rate models trained for 1-40 single updates, autoencoders of 16 and 64 neurons,
#: one 25-epoch ``target_error`` model. ``paper``: 5,000 training points for the sweeps (the
#: seed's hidden-size setting, "5000 samples instead of 50000"), batch 500 (its first-batches
#: setting); ours where the seed is silent: 100 epochs, lr, 8 seeds, hidden and autoencoder
#: sizes, and error-rate models trained for 1, 2, 3, 8, 18, 40 epochs (the seed's "1,2,3,8,18
#: and 40 iterations", read as epochs; ``quick`` reads them as updates). ``seed-errors`` is
#: ``paper``'s ``target_error`` part alone: 4 seeds x 22 to 26
#: epochs on all 10,000 images (about 4 minutes on a 2-core CPU).
PRESETS = {
    "quick": Preset(n_train=5000, n_test=1000, epochs=20, lr=1e-2, n_history=10, seeds=5,
                    dataset_sizes=(1000, 2000, 5000), weight_decays=(0.0, 1e-2, 1e-1, 1.0),
                    checkpoint_epochs=(0, 1, 2, 5, 10, 20), horizons=(1, 2, 3, 8, 18, 40),
                    ae_hidden=(16, 64), ae_steps=300, ae_lr=1e-2, target_epochs=(25,), target_seeds=1),
    "paper": Preset(),
    "seed-errors": Preset(parts=("target_error",)),
}


def record(p: Preset) -> dict:
    """The preset's fields and its update count. The data files are recorded in each
    part's ``info["data"]`` (``--data`` itself is in the run's config)."""
    return {**dataclasses.asdict(p), "steps": p.steps}


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
    perm: np.ndarray  # [n_file] the permutation; ``target_error`` trains on its first rows
    file_raw: np.ndarray  # float32 [n_file, 784] in [0, 1], in file order
    file_images: np.ndarray  # uint8 [n_file, 28, 28]
    file_labels: np.ndarray  # int32 [n_file]


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
    if p.target_n is not None and p.target_n > images.shape[0]:
        raise ValueError(f"target_n={p.target_n} exceeds the {images.shape[0]} images of {kind} MNIST")
    perm = np.random.default_rng(p.seed).permutation(images.shape[0])
    train_rows, test_rows = perm[:n_max], perm[-p.n_test:]
    flat = images.reshape(images.shape[0], -1).astype(np.float32) / 255
    folder = Path(data_dir) if data_dir is not None else mnist.default_dir()
    files = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in mnist.FILES[kind]}
    info = {"data_dir": str(folder), "kind": kind, "files": files, "n_file": int(images.shape[0]),
            "n_held_out": p.n_test, "permutation_seed": p.seed}
    return Pool(images[train_rows], flat[train_rows], _unit_rows(flat[train_rows]), labels[train_rows],
                flat[test_rows], _unit_rows(flat[test_rows]), labels[test_rows], train_rows, info,
                perm, flat, images, labels)


# ---------------------------------------------------------------- helpers


def _key(p: Preset, i: int):
    return jax.random.fold_in(jax.random.key(p.seed), i)


def _fit(timing: dict, p: Preset, data: dict, grid: dict, n_hidden: int | None = None, steps: int | None = None,
         checkpoints=(), lr: float | None = None) -> classifier.Fit:
    """``classifier.fit`` (``run_grid``) with the preset's training settings: the runs of
    ``grid`` (``seed`` picks init and minibatch order from the grid key ``p.seed``),
    compile and training timed apart."""
    steps = steps or p.steps
    out = classifier.fit(data, grid, steps, n_hidden=n_hidden or p.n_hidden, lr=p.lr if lr is None else lr,
                         weight_decay=p.weight_decay, batch_size=p.batch_size, schedule=p.schedule,
                         n_history=p.n_history, checkpoints=checkpoints, seed=p.seed)
    timing["compile"] += out.compile_seconds
    timing["train"] += out.train_seconds
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


def tail(dstar_N, thresholds=(1e-2, 1e-3, 1e-4), relative=TAIL_RELATIVE) -> dict:
    """The low-D* (right-hand) end of one curve.

    ``q0.1%`` and ``q1%``: the 0.1% and 1% quantiles of D* (linear interpolation);
    ``min``; ``n_zero``: points whose hidden vector is 0 (D* = 0);
    ``fraction_below``: fraction of points with D* < t for each absolute ``t``;
    ``fraction_below_mean``: fraction with D* < f * mean(D*) for each ``f`` (the mean
    is rank / N, so this compares curves of different hidden sizes); ``q1%_over_median``.
    """
    d = np.asarray(dstar_N, np.float64)
    q_1e3, q_1e2, median = np.quantile(d, [1e-3, 1e-2, 0.5])
    return {"q0.1%": float(q_1e3), "q1%": float(q_1e2), "min": float(d.min()), "n_zero": int((d == 0).sum()),
            "q1%_over_median": float(q_1e2 / median) if median > 0 else None,
            "fraction_below": {f"{t:g}": float((d < t).mean()) for t in thresholds},
            "fraction_below_mean": {f"{f:g}": float((d < f * d.mean()).mean()) for f in relative}}


def tail_table(models: list) -> dict:
    """Per tail statistic, its value for each model of a part (from ``_model``'s ``tail``)."""
    tails = [m["tail"] for m in models]
    out = {k: [t[k] for t in tails] for k in ("q0.1%", "q1%", "min", "n_zero", "q1%_over_median")}
    for group in ("fraction_below", "fraction_below_mean"):
        for k in tails[0][group]:
            out[f"{group} {k}"] = [t[group][k] for t in tails]
    return out


def _model(ds: dict, r: int, wrong=None, accuracy=None, test_accuracy=None, n=None,
           thresholds=(1e-2, 1e-3, 1e-4)) -> dict:
    d = ds["dstar"][r][:n]
    q10, q50, q90 = np.quantile(d, [0.1, 0.5, 0.9])
    out = {"sum_check": _check(ds, r), "dstar_max": float(d.max()), "dstar_q90": float(q90),
           "dstar_median": float(q50), "dstar_q10": float(q10), "dstar_min": float(d.min()),
           "dstar_q90_over_q10": float(q90 / q10) if q10 > 0 else None, "tail": tail(d, thresholds)}
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


def _train_data(pool: Pool, n: int, normalized: bool = True) -> dict:
    """The first ``n`` training rows as ``classifier.fit``'s data (``x``, ``labels``)."""
    x = pool.normalized if normalized else pool.raw
    return {"x": jnp.asarray(x[:n]), "labels": jnp.asarray(pool.labels[:n])}


#: dims of the arrays most parts keep; ``*`` is what the part's models differ in
CURVE = {"dstar": ("*", "example"), "wrong": ("*", "example"), "train_accuracy": ("*",)}


def _part(res: dict, arrays: dict, dims: dict, n_runs: int, **coords) -> Part:
    """A part: its results ``res`` in ``info``; ``dims`` beside ``CURVE``'s, whose ``*``
    is ``coords``'s first dim (what the part's models differ in; ``None``: no labels);
    a matrix's second dim ``vs_X`` has the coordinates of ``X``."""
    first, flat = next(iter(coords)), flatten(arrays)
    curve = {k: tuple(first if d == "*" else d for d in v) for k, v in CURVE.items()}
    dims = {k: v for k, v in {**curve, **dims}.items() if k in flat}
    for d in {d for v in dims.values() for d in v if d.startswith("vs_")}:
        coords.setdefault(d, coords.get(d[3:]))
    return Part(arrays, dims, {k: v for k, v in coords.items() if v is not None}, info=res, n_runs=n_runs)


# ---------------------------------------------------------------- parts


def part_inputs(p: Preset, pool: Pool, timing: dict, done: dict) -> Part:
    """(a, b, c): raw vs L2-normalised inputs, one program of two runs (the ``input``
    axis; the same init and minibatch order)."""
    n = p.n_train
    x_RxNxI = np.stack([pool.raw[:n], pool.normalized[:n]])
    data = {"x": jnp.asarray(x_RxNxI.transpose(1, 0, 2)), "labels": jnp.asarray(pool.labels[:n])}
    fit = _fit(timing, p, data, {"seed": [0], "input": [0, 1]})
    ds = _dstar(timing, p, _hidden(fit.params, x_RxNxI), solve=True)
    wrong = ~_correct(fit.params, x_RxNxI, pool.labels[:n])
    test_x = np.stack([pool.test_raw, pool.test_normalized])
    test_acc = _correct(fit.params, test_x, pool.test_labels).mean(-1)
    labels = pool.labels[:n]
    input_norm = np.linalg.norm(pool.raw[:n], axis=-1)
    res = {"variants": ["raw", "normalized"]}
    for r, name in enumerate(res["variants"]):
        pos = curve_position(ds["dstar"][r])
        res[name] = {**_model(ds, r, wrong[r], fit.accuracy[r], test_acc[r], thresholds=p.tail_thresholds),
                     "spearman_dstar_vs_input_norm": _rho(p, ds["dstar"][r], input_norm),
                     "class_mean_position": [float(pos[labels == c].mean()) for c in range(10)],
                     "class_share_top_decile": _class_share(pos, labels, top=True),
                     "class_share_bottom_decile": _class_share(pos, labels, top=False)}
    res["spearman_raw_vs_normalized"] = _rho(p, ds["dstar"][0], ds["dstar"][1])
    arrays = {"dstar": ds["dstar"], "wrong": wrong, "labels": labels, "images": pool.images[:n],
              "input_norm": input_norm, "train_accuracy": fit.accuracy, "test_accuracy": test_acc,
              "history": {"accuracy": fit.history.accuracy, "loss": fit.history.loss},
              "total": ds["total"], "rank": ds["rank"], "live": ds["live"]}
    per_input = ("input",)
    dims = {"labels": ("example",), "images": ("example", "row", "col"), "input_norm": ("example",),
            "test_accuracy": per_input, "history/accuracy": ("input", "step"), "history/loss": ("input", "step"),
            "total": per_input, "rank": per_input, "live": per_input}
    return _part(res, arrays, dims, 2, input=res["variants"], example=pool.index[:n], step=fit.history.step)


def _class_share(pos, labels, top: bool) -> list:
    sel = pos <= 0.1 if top else pos >= 0.9
    return (np.bincount(labels[sel], minlength=10) / max(sel.sum(), 1)).round(4).tolist()


def part_hidden_sizes(p: Preset, pool: Pool, timing: dict, done: dict) -> Part:
    """(d): one program per hidden size (shapes differ)."""
    data = _train_data(pool, p.n_train)
    curves, models, acc = [], {}, []
    for m in p.hidden_sizes:
        fit = _fit(timing, p, data, {"seed": [0]}, n_hidden=m)
        ds = _dstar(timing, p, _hidden(fit.params, data["x"]))
        wrong = ~_correct(fit.params, data["x"], data["labels"])
        models[str(m)] = _model(ds, 0, wrong[0], fit.accuracy[0], thresholds=p.tail_thresholds)
        curves.append(ds["dstar"][0])
        acc.append(fit.accuracy[0])
    rho = _spearman(p, curves)
    res = {"hidden_sizes": list(p.hidden_sizes), "models": models, "spearman": _listed(rho),
           "tail": tail_table(list(models.values()))}
    arrays = {"dstar": np.stack(curves), "train_accuracy": np.array(acc), "spearman": rho}
    return _part(res, arrays, {"spearman": ("n_hidden", "vs_n_hidden")}, len(p.hidden_sizes),
                 n_hidden=p.hidden_sizes, example=pool.index[:p.n_train])


def _grid_part(p: Preset, pool: Pool, timing: dict, grid: dict, labels: list, name: str, dim: str) -> Part:
    """One program over ``grid``; its models differ in ``dim`` (``labels``, ``res[name]``)."""
    data = _train_data(pool, p.n_train)
    fit = _fit(timing, p, data, grid)
    ds = _dstar(timing, p, _hidden(fit.params, data["x"]))
    wrong = ~_correct(fit.params, data["x"], data["labels"])
    rho = _spearman(p, ds["dstar"])
    models = [_model(ds, r, wrong[r], fit.accuracy[r], thresholds=p.tail_thresholds) for r in range(len(labels))]
    res = {name: labels, "models": models, "spearman": _listed(rho), "tail": tail_table(models)}
    arrays = {"dstar": ds["dstar"], "wrong": wrong, "train_accuracy": fit.accuracy, "spearman": rho}
    return _part(res, arrays, {"spearman": (dim, f"vs_{dim}")}, len(labels),
                 **{dim: labels, "example": pool.index[:p.n_train]})


def part_seeds(p: Preset, pool: Pool, timing: dict, done: dict) -> Part:
    """(e): ``p.seeds`` init/shuffle seeds, one program."""
    seeds = list(range(p.seeds))
    return _grid_part(p, pool, timing, {"seed": seeds}, seeds, "seeds", "seed")


def part_weight_decay(p: Preset, pool: Pool, timing: dict, done: dict) -> Part:
    """(g): weight decays, one program (seed 0 for all)."""
    return _grid_part(p, pool, timing, {"seed": [0], "weight_decay": list(p.weight_decays)},
                      list(p.weight_decays), "weight_decays", "weight_decay")


def part_dataset_sizes(p: Preset, pool: Pool, timing: dict, done: dict) -> Part:
    """(f): nested training sets (``n_train``: the first rows of the pool), each trained
    for ``p.epochs`` epochs in its own program (the update counts differ); the curves
    padded to the largest set with D* 0."""
    sizes = sorted(p.dataset_sizes)
    n_pad = sizes[-1]
    weights = (np.arange(n_pad)[None, :] < np.array(sizes)[:, None]).astype(np.float32)
    updates = [p.epochs * _per_epoch(n, p.batch_size) for n in sizes]
    data = _train_data(pool, n_pad)
    fits = [_fit(timing, p, data, {"seed": [0], "n_train": [n]}, steps=s) for n, s in zip(sizes, updates)]
    params = jax.tree.map(lambda *a: np.concatenate(a), *[f.params for f in fits])
    accuracy = np.concatenate([f.accuracy for f in fits])
    h = _hidden(params, data["x"]) * weights[:, :, None]
    ds = _dstar(timing, p, h)
    wrong = ~_correct(params, data["x"], data["labels"]) & (weights > 0)
    common = sizes[0]
    rho = _spearman(p, ds["dstar"][:, :common])
    res = {"dataset_sizes": sizes, "updates": updates,
           "models": [_model(ds, r, wrong[r], accuracy[r], n=n, thresholds=p.tail_thresholds)
                      for r, n in enumerate(sizes)],
           "spearman_common_points": _listed(rho), "n_common_points": common}
    arrays = {"dstar": ds["dstar"], "wrong": wrong, "train_accuracy": accuracy, "spearman": rho}
    return _part(res, arrays, {"spearman": ("n_train", "vs_n_train")}, len(sizes), n_train=sizes,
                 example=pool.index[:n_pad])


def part_training(p: Preset, pool: Pool, timing: dict, done: dict) -> Part:
    """(h): one run keeping its params after each of the first minibatches and at
    ``checkpoint_epochs``; D* of the training points at each."""
    per_epoch = _per_epoch(p.n_train, p.batch_size)
    epochs = sorted({e * per_epoch for e in p.checkpoint_epochs})
    batches = list(range(min(p.first_batches, p.steps) + 1))
    steps = sorted(set(epochs) | set(batches))
    data = _train_data(pool, p.n_train)
    fit = _fit(timing, p, data, {"seed": [0]}, checkpoints=steps)
    ckpt = jax.tree.map(lambda a: a[0], fit.checkpoints)  # [K, ...]
    h = np.asarray(classifier.hidden_at(ckpt, data["x"]))
    ds = _dstar(timing, p, h)
    correct = np.asarray(jax.vmap(mlp.correct, in_axes=(0, None, None))(ckpt, data["x"], data["labels"]))
    acc = correct.mean(-1)
    at = {s: i for i, s in enumerate(steps)}
    e_idx, b_idx = [at[s] for s in epochs], [at[s] for s in batches]
    rho_e, rho_b = _spearman(p, ds["dstar"][e_idx]), _spearman(p, ds["dstar"][b_idx])
    res = {"checkpoint_updates": steps, "updates_per_epoch": per_epoch,
           "models": [_model(ds, i, ~correct[i], acc[i], thresholds=p.tail_thresholds) for i in range(len(steps))],
           "epochs": [s // per_epoch for s in epochs], "spearman_epochs": _listed(rho_e),
           "first_batches": batches, "spearman_first_batches": _listed(rho_b)}
    arrays = {"dstar": ds["dstar"], "wrong": ~correct, "train_accuracy": acc, "epoch_index": np.array(e_idx),
              "batch_index": np.array(b_idx), "updates_per_epoch": per_epoch, "spearman_epochs": rho_e,
              "spearman_first_batches": rho_b}
    dims = {"epoch_index": ("epoch",), "batch_index": ("batch",), "spearman_epochs": ("epoch", "vs_epoch"),
            "spearman_first_batches": ("batch", "vs_batch")}
    return _part(res, arrays, dims, 1, step=steps, epoch=res["epochs"], batch=batches, example=pool.index[:p.n_train])


def part_error_rates(p: Preset, pool: Pool, timing: dict, done: dict) -> Part:
    """(i): models trained from scratch (one init and minibatch order, seed 1000) for
    ``horizons`` updates, each schedule spanning its own horizon (a traced ``horizon``
    axis), one program; errors per D* decile."""
    horizons = sorted(p.horizons)
    data = _train_data(pool, p.n_train)
    fit = _fit(timing, p, data, {"seed": [1000], "horizon": horizons}, steps=horizons[-1])
    ds = _dstar(timing, p, _hidden(fit.params, data["x"]))
    wrong = ~_correct(fit.params, data["x"], data["labels"])
    res = {"updates": horizons, "models": [_model(ds, r, wrong[r], fit.accuracy[r], thresholds=p.tail_thresholds)
                                          for r in range(len(horizons))]}
    res["train_error"] = [1 - m["train_accuracy"] for m in res["models"]]
    arrays = {"dstar": ds["dstar"], "wrong": wrong, "train_accuracy": fit.accuracy}
    return _part(res, arrays, {}, len(horizons), horizon=horizons, example=pool.index[:p.n_train])


def ae_hidden(params, x, variant: str):
    """Hidden vectors of the ReLU-output autoencoder: ``W x`` (``"linear"``) or
    ``ReLU(W x)`` (``"relu"``, our reading of the seed's appendix "ReLU Hidden model")."""
    if variant not in AE_VARIANTS:
        raise ValueError(f"variant must be one of {AE_VARIANTS}, got {variant!r}")
    return relu_output.hidden(params, x, hidden_relu=variant == "relu")


def fit_autoencoder(timing: dict, p: Preset, x, n_hidden: int, variant: str):
    """``(params, train loss)`` of the ReLU-output autoencoder (SMDD's model and AdamW
    schedule, ``train.TrainConfig``) trained on ``x`` through ``run_grid``, one run. Its
    init key is ``_key(p, 0)`` (not the grid's), as when it trained through
    ``train.train``: the same params."""
    cfg = train.TrainConfig(n_features=int(x.shape[1]), n_hidden=n_hidden, steps=p.ae_steps,
                            n_history=min(20, p.ae_steps), hidden_relu=variant == "relu")
    key, per_example = _key(p, 0), example_loss_fn(cfg)
    out = train.run_grid(lambda _, hp: relu_output.init(key, cfg.n_features, cfg.n_hidden, 1.0, cfg.use_bias),
                         lambda params, batch, hp: per_example(params, batch), x,
                         {"seed": [0], "lr": [p.ae_lr], "weight_decay": [p.ae_weight_decay]}, cfg.steps,
                         schedule=AE_SCHEDULES[cfg.schedule], warmup_frac=cfg.warmup_frac, b1=cfg.b1,
                         b2=cfg.b2, eps=cfg.eps, n_history=cfg.n_history, progress=False)
    timing["compile"] += out.compile_seconds
    timing["train"] += out.train_seconds
    return jax.tree.map(lambda a: a[0, 0, 0], out.params), float(out.train_loss[0, 0, 0])


def part_autoencoder(p: Preset, pool: Pool, timing: dict, done: dict) -> Part:
    """(j): ReLU-output autoencoder ``ReLU(W^T h + b)`` on the normalised training
    points with ``h = W x`` and with ``h = ReLU(W x)`` (``p.ae_variants``), one
    program per variant and hidden size; D* of ``h``."""
    x = jnp.asarray(pool.normalized[: p.n_train])
    curves = np.zeros((len(p.ae_variants), len(p.ae_hidden), p.n_train))
    losses = np.zeros(curves.shape[:2])
    live = np.zeros(curves.shape[:2], int)
    models = {}
    for v, variant in enumerate(p.ae_variants):
        models[variant] = {}
        for k, m in enumerate(p.ae_hidden):
            params, loss = fit_autoencoder(timing, p, x, m, variant)
            ds = _dstar(timing, p, np.asarray(ae_hidden(params, x, variant))[None])
            models[variant][str(m)] = {**_model(ds, 0, thresholds=p.tail_thresholds), "train_loss": loss}
            curves[v, k], losses[v, k], live[v, k] = ds["dstar"][0], loss, ds["live"][0]
    rho = _spearman(p, curves.reshape(-1, p.n_train))  # [variants x sizes] squared
    res = {"hidden_sizes": list(p.ae_hidden), "variants": list(p.ae_variants), "models": models,
           "spearman": _listed(rho)}
    if len(p.ae_variants) == 2:  # the same size, linear vs ReLU hidden layer
        res["spearman_linear_vs_relu"] = [_rho(p, curves[0, k], curves[1, k]) for k in range(len(p.ae_hidden))]
    arrays = {"dstar": curves, "train_loss": losses, "live": live, "spearman": rho}
    if "inputs" in done:  # the classifier's D* of the same points (normalised inputs)
        mlp_curve = done["inputs"]["dstar"][1]
        res["spearman_vs_classifier"] = {variant: [_rho(p, c, mlp_curve) for c in curves[v]]
                                         for v, variant in enumerate(p.ae_variants)}
        arrays["classifier_dstar"] = mlp_curve
    grid = ("variant", "n_hidden")
    dims = {"dstar": grid + ("example",), "train_loss": grid, "live": grid, "spearman": ("model", "vs_model"),
            "classifier_dstar": ("example",)}
    return _part(res, arrays, dims, curves.shape[0] * curves.shape[1], variant=p.ae_variants, n_hidden=p.ae_hidden,
                 model=[f"{v} {m}" for v in p.ae_variants for m in p.ae_hidden], example=pool.index[:p.n_train])


def closest_run(errors, epochs, target: float) -> int:
    """Index of the run whose error count is closest to ``target``; ties go to fewer epochs."""
    errors, epochs = np.asarray(errors), np.asarray(epochs)
    return int(min(range(errors.size), key=lambda r: (abs(errors[r] - target), epochs[r])))


def error_positions(dstar_N, wrong_N) -> dict:
    """Where the misclassified points sit along the sorted curve.

    ``position``: each error's place, 0 at the highest D* (left of the seed's plots),
    1 at the lowest (``curve_position``); ``mean_position`` (0.5 for an even spread),
    ``share_high_half`` (position < 0.5), the two-sided ``binomial_p`` of that count
    against 1/2 and ``ks_p``, the Kolmogorov-Smirnov p-value against a uniform spread.
    """
    wrong = np.asarray(wrong_N, bool)
    pos = curve_position(dstar_N)[wrong]
    k = int(pos.size)
    high = int((pos < 0.5).sum())
    return {"n": k, "position": pos.round(6).tolist(),
            "mean_position": float(pos.mean()) if k else None,
            "share_high_half": high / k if k else None,
            "binomial_p": float(scipy.stats.binomtest(high, k, 0.5).pvalue) if k else None,
            "ks_p": float(scipy.stats.kstest(pos, "uniform").pvalue) if k else None}


def part_target_error(p: Preset, pool: Pool, timing: dict, done: dict) -> Part:
    """(b) at the seed's training error: ``target_seeds`` x ``target_epochs`` models
    trained from scratch (each its own cosine schedule, a traced horizon in one
    program) on the first ``target_n`` rows of the permutation, all images by
    default; per seed the run whose errors are closest to ``target_error_rate * n``,
    and where its misclassified points sit along its sorted D* curve."""
    n = pool.file_labels.size if p.target_n is None else p.target_n
    rows, held = pool.perm[:n], pool.perm[n:]
    x = jnp.asarray(_unit_rows(pool.file_raw[rows]))
    labels = pool.file_labels[rows]
    data = {"x": x, "labels": jnp.asarray(labels)}
    per_epoch = _per_epoch(n, p.batch_size)
    epochs = sorted(p.target_epochs)
    grid = [(s, e) for s in range(p.target_seeds) for e in epochs]  # run_grid's order: seed, then horizon
    fit = _fit(timing, p, data, {"seed": [2000 + s for s in range(p.target_seeds)],
                                 "horizon": [e * per_epoch for e in epochs]},
               steps=epochs[-1] * per_epoch, lr=p.target_lr)
    wrong = ~_correct(fit.params, x, labels)
    test_acc = None
    if held.size:
        test_acc = _correct(fit.params, _unit_rows(pool.file_raw[held]), pool.file_labels[held]).mean(-1)
    dstar_RxN = np.zeros((len(grid), n))
    runs = []
    for r in range(len(grid)):  # one run at a time: [R, N, 512] float64 at N = 10,000 is large
        params = jax.tree.map(lambda a: a[r: r + 1], fit.params)
        ds = _dstar(timing, p, _hidden(params, x))
        dstar_RxN[r] = ds["dstar"][0]
        runs.append({"seed": grid[r][0], "epochs": grid[r][1],
                     **_model(ds, 0, wrong[r], fit.accuracy[r], None if test_acc is None else test_acc[r],
                              thresholds=p.tail_thresholds)})
    target = p.target_error_rate * n
    selected, pooled_positions = [], []
    for s in range(p.target_seeds):
        mine = [r for r in range(len(grid)) if grid[r][0] == s]
        r = mine[closest_run([runs[i]["n_misclassified"] for i in mine], [grid[i][1] for i in mine], target)]
        rows_wrong = np.flatnonzero(wrong[r])
        selected.append({"run": r, "seed": s, "epochs": grid[r][1], "n_misclassified": int(wrong[r].sum()),
                         "train_error": float(1 - fit.accuracy[r]), **error_positions(dstar_RxN[r], wrong[r]),
                         "dstar": dstar_RxN[r][rows_wrong].tolist(), "labels": labels[rows_wrong].tolist(),
                         "file_index": rows[rows_wrong].tolist()})
        pooled_positions.append(selected[-1]["position"])
    pos = np.concatenate(pooled_positions) if pooled_positions else np.zeros(0)
    pooled = {"n": int(pos.size), "n_distinct_points": len({i for sel in selected for i in sel["file_index"]}),
              "mean_position": float(pos.mean()) if pos.size else None,
              "share_high_half": float((pos < 0.5).mean()) if pos.size else None,
              "count_per_decile": np.bincount(np.minimum((pos * N_BINS).astype(int), N_BINS - 1),
                                              minlength=N_BINS).tolist(),
              "ks_p": float(scipy.stats.kstest(pos, "uniform").pvalue) if pos.size else None}
    # the seeds' errors are often the same images, so the pooled positions are not independent
    errors = [[run["n_misclassified"] for run in runs if run["seed"] == s] for s in range(p.target_seeds)]
    res = {"n_train": n, "n_held_out": int(held.size), "updates_per_epoch": per_epoch, "epochs": epochs,
           "seeds": p.target_seeds, "lr": p.target_lr, "target_error_rate": p.target_error_rate,
           "target_errors": target, "runs": runs, "errors": errors, "selected": selected, "pooled_selected": pooled}
    chosen = np.array([sel["run"] for sel in selected])
    error_rows = np.unique(np.concatenate([np.flatnonzero(wrong[r]) for r in chosen]))
    arrays = {"dstar": dstar_RxN, "wrong": wrong, "seed": np.array([g[0] for g in grid]),
              "epochs": np.array([g[1] for g in grid]), "train_accuracy": fit.accuracy, "selected": chosen,
              "labels": labels, "error_rows": error_rows, "error_images": pool.file_images[rows[error_rows]],
              "target_errors": target}
    dims = {"seed": ("run",), "epochs": ("run",), "selected": ("target_seed",), "labels": ("example",),
            "error_rows": ("error",), "error_images": ("error", "row", "col")}
    return _part(res, arrays, dims, len(grid), run=None, example=rows, target_seed=range(p.target_seeds),
                 error=rows[error_rows])


PART_FNS = {"inputs": part_inputs, "hidden_sizes": part_hidden_sizes, "seeds": part_seeds,
            "dataset_sizes": part_dataset_sizes, "weight_decay": part_weight_decay, "training": part_training,
            "error_rates": part_error_rates, "autoencoder": part_autoencoder, "target_error": part_target_error}


# ---------------------------------------------------------------- run


def compute(name: str, p: Preset, pool: Pool, done: dict) -> Part:
    """Part ``name``, with its timings (compile, train, D*) and the data in ``info``."""
    timing = {"compile": 0.0, "train": 0.0, "dstar": 0.0}
    t0 = time.perf_counter()
    part = PART_FNS[name](p, pool, timing, done)
    part.info = {**part.info, "n_runs": part.n_runs, "seconds": {**timing, "total": time.perf_counter() - t0},
                 "data": pool.info}
    part.compile_seconds = timing["compile"]
    return part


def _same_data(info: dict) -> dict:
    return {k: v for k, v in strict_json(info).items() if k != "data_dir"}


def run(p: Preset, store) -> None:
    """Every part of ``p.parts`` in turn, each saved as it finishes. A part loaded by
    ``--resume`` must have been trained on the same data files."""
    pool = load_pool(p, store.options.get("data_dir"))
    progress = store.progress if isinstance(store.progress, Progress) else Progress(len(p.parts),
                                                                                    enabled=store.progress)
    done = {}
    for name in p.parts:
        part = store.part(name, lambda name=name: compute(name, p, pool, done))
        if part.loaded and _same_data(part.info.get("data", {})) != _same_data(pool.info):
            raise ValueError(f"--resume: part {name!r} in {store.out} was trained on other MNIST files "
                             f"({part.info.get('data')}) than these ({pool.info}); use a new --out")
        done[name] = part
        progress.update(1, f"{name} {'loaded' if part.loaded else 'done'}")


def summarize(parts: dict, p: Preset) -> dict:
    """Per part its results (``info`` less the data), and the data files once."""
    names = [n for n in p.parts if n in parts]
    out = {n: {k: v for k, v in parts[n].info.items() if k != "data"} for n in names}
    return {**out, "data": parts[names[0]].info.get("data") if names else None}


def table_axes(summary: dict) -> dict:
    """Row and column labels of the Spearman matrices for ``jaxmem show``."""
    res = summary.get("results") or {}
    matrices = (("hidden_sizes", "spearman", "hidden_sizes", "n_hidden"), ("seeds", "spearman", "seeds", "seed"),
                ("weight_decay", "spearman", "weight_decays", "weight decay"),
                ("dataset_sizes", "spearman_common_points", "dataset_sizes", "n_train"),
                ("training", "spearman_epochs", "epochs", "epoch"),
                ("training", "spearman_first_batches", "first_batches", "batch"))
    axes = {f"{part}/{key}": (label, res[part][field], label, res[part][field])
            for part, key, field, label in matrices if field in res.get(part, {})}
    target = res.get("target_error", {})
    if "errors" in target:
        axes["target_error/errors"] = ("seed", range(target["seeds"]), "epochs", target["epochs"])
    ae = res.get("autoencoder", {})
    if "variants" in ae:
        models = [f"{v} {m}" for v in ae["variants"] for m in ae["hidden_sizes"]]
        axes["autoencoder/spearman"] = ("model", models, "model", models)
    return axes


def draw(parts: dict, summary: dict, p: Preset, out) -> None:
    """The figures of every saved part."""
    for name in p.parts:
        if name in parts:
            figures_dstar.draw(name, parts[name], Path(out))
