"""``memorisation``: counterfactual memorisation of every training example, against D*.

Memorisation of example i (Feldman & Zhang 2020; Zhang et al. 2021 with a loss score;
docs/sources.md §6): ``mem_i = E[score_i | i in S'] - E[score_i | i not in S']`` over models
trained on random subsets S' (a fixed ``fraction`` of the training set, each model its own
init: ``run_grid(grid={"subset": ...}, subset_init="own")``), estimated with
``jaxmem.memorisation`` (per-example standard error from the two groups' variances).
D* (docs/sources.md §2) is the leverage of the hidden vectors of the model trained on the
whole set (``dstar.exact``); Hobbhahn calls it "a metric that supposedly tells to which
degree a network memorized a datapoint". Parts, each saved as it finishes:

- ``smdd``: the SMDD autoencoder ``ReLU(W^T W x + b)`` (m = ``n_hidden``) on the nested
  training sets of one data seed, for each T of ``T`` (chosen so that the subset size
  ``fraction * T`` falls in the memorising, intermediate and generalising regimes);
  score = minus the example's reconstruction loss (summed over features), so memorised
  is positive: ``mem_i = loss_i(out) - loss_i(in)``. Per T also the full-data model
  (its hidden vectors give D* and the data dimensionality);
- ``mnist``: the ``dstar-mnist`` MLP classifier (one ReLU hidden layer, unit-L2 inputs,
  AdamW minibatches, cosine schedule) on the first ``mnist_n`` images of a fixed
  permutation of the MNIST file (the shipped 10,000 test images by default, ``--data``
  for another); scores = the correct-class probability (headline) and correctness
  (Feldman & Zhang's 0/1 score). The full-data model gives D* (float64) and its training
  errors; each subset model gives the D* of its own training rows (``dstar``).

Besides the full-data model's D*, both parts report ``dstar_in``: an example's mean D* in
the subset models that trained on it (the leverage in the same models whose scores make
its memorisation).

Subset models train ``steps`` full-batch updates (SMDD) or ``mnist_epochs`` epochs of their
own subset (MNIST); the full-data models the same number of updates (SMDD) or epochs of the
whole set (MNIST). ``summarize`` computes the estimates from the saved per-model scores.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from jaxmem import dstar, metrics, mnist
from jaxmem.memorisation import memorisation as estimate
from jaxmem.models import mlp, relu_output
from jaxmem.store import Part
from jaxmem.studies.smdd.sweep import Sweep, training_set
from jaxmem.train import TrainConfig, run_grid
from jaxmem.train.relu import example_loss_fn
from jaxmem.validate import finite_values, in_range, one_of, positive_int

DESCRIPTION = "Counterfactual memorisation (random-subset models) vs D* and data dimensionality: SMDD regimes, MNIST"
OPTIONS = ("data_dir",)
SEEDS = "subsets"
PARTS = ("smdd", "mnist")
REGIMES = ("memorising", "intermediate", "generalising")
#: |mem| / SE above which an example counts as significantly memorised
Z_SIGNIFICANT = 2.0


@dataclasses.dataclass(frozen=True)
class Preset:
    """SMDD fields (``n_features`` .. ``subsets``), MNIST fields (``mnist_*``), and the
    subset design shared by both (``fraction``, ``subset_init``, ``seed``).

    ``regimes`` labels each T by the regime its subset size ``fraction * T`` sits in (our
    reading of the ``smdd`` sweeps; the summary reports the full-data model's train loss
    and learned features beside it). ``subsets``/``mnist_subsets``: K, the number of
    subset models (``--seeds`` sets ``subsets``).
    """

    n_features: int = 1000
    n_hidden: int = 2
    sparsity: float = 0.99
    T: tuple[int, ...] = (4, 16, 150, 2000)
    regimes: tuple[str, ...] = ("memorising", "intermediate", "intermediate", "generalising")
    steps: int = 50_000
    lr: float = 1e-3
    weight_decay: float = 1e-2
    subsets: int = 200
    data_seed: int = 0
    mnist_n: int = 5000
    mnist_hidden: int = 512
    mnist_epochs: int = 100
    mnist_batch: int = 500
    mnist_lr: float = 3e-3
    mnist_weight_decay: float = 1e-2
    mnist_subsets: int = 200
    fraction: float = 0.7
    subset_init: str = "own"
    seed: int = 0
    parts: tuple[str, ...] = PARTS

    def __post_init__(self):
        for name in ("n_features", "n_hidden", "steps", "subsets", "mnist_n", "mnist_hidden", "mnist_epochs",
                     "mnist_batch", "mnist_subsets"):
            positive_int(name, getattr(self, name))
        if not self.T or list(self.T) != sorted(set(self.T)):
            raise ValueError(f"T must be strictly increasing dataset sizes, got {self.T!r}")
        for t in self.T:
            positive_int("T", t)
        if len(self.regimes) != len(self.T):
            raise ValueError(f"regimes must label each T ({len(self.T)}), got {self.regimes!r}")
        for r in self.regimes:
            one_of("regimes", r, REGIMES)
        in_range("sparsity", self.sparsity, 0.0, 1.0)
        in_range("fraction", self.fraction, 0.0, 1.0)
        finite_values("lr", (self.lr, self.mnist_lr, self.weight_decay, self.mnist_weight_decay))
        one_of("subset_init", self.subset_init, ("shared", "own"))
        for n in (*self.T, self.mnist_n):
            m = int(np.floor(self.fraction * n + 0.5))
            if not 1 <= m < n:
                raise ValueError(f"fraction={self.fraction} of {n} rows gives subsets of {m}: every subset needs "
                                 f"a row in it and a row outside it")
        if self.subsets < 2 or self.mnist_subsets < 2:
            raise ValueError("subsets and mnist_subsets must be >= 2 (runs with and without each example)")
        if not self.parts or len(set(self.parts)) != len(self.parts):
            raise ValueError(f"parts must be distinct names of {PARTS}, got {self.parts!r}")
        for v in self.parts:
            one_of("parts", v, PARTS)

    @property
    def train(self) -> TrainConfig:
        """SMDD's training settings (``smdd``'s: 5% warm-up, half-cosine, AdamW, summed loss)."""
        return TrainConfig(n_features=self.n_features, n_hidden=self.n_hidden, steps=self.steps,
                           n_history=min(20, self.steps))

    def mnist_steps(self, rows: int) -> int:
        """Updates of ``mnist_epochs`` epochs over ``rows`` rows in minibatches of ``mnist_batch``."""
        return self.mnist_epochs * -(-rows // self.mnist_batch)

    @property
    def mnist_subset_rows(self) -> int:
        return int(np.floor(self.fraction * self.mnist_n + 0.5))


#: ``quick`` (a few minutes on a 2-core CPU) is scaled down: SMDD at n = 200 features,
#: S = 0.95 (``smdd-repeat``'s quick setting; the regimes sit at 5x smaller T than
#: Hobbhahn's reduced n = 1,000, S = 0.99, as T (1 - S) sets them), 2,500 steps, K = 48
#: subset models of half the set per T, T = 6, 40, 100, 640 (subset sizes 3, 20, 50,
#: 320); MNIST on 1,000 images, 128 hidden neurons, 20 epochs of each subset (batch 100,
#: lr 1e-2 as ``dstar-mnist`` quick), K = 32. ``paper``: Hobbhahn's reduced SMDD setting
#: (n = 1,000, S = 0.99, 50,000 steps, m = 2) and ``dstar-mnist``'s paper setting (5,000
#: images, 512 neurons, 100 epochs, batch 500, lr 3e-3), with Feldman & Zhang's subset
#: fraction 0.7 and K = 200 (the number of models is ours).
PRESETS = {
    "quick": Preset(n_features=200, sparsity=0.95, T=(6, 40, 100, 640),
                    regimes=("memorising", "intermediate", "intermediate", "generalising"), steps=2500,
                    subsets=48, mnist_n=1000, mnist_hidden=128, mnist_epochs=20, mnist_batch=100, mnist_lr=1e-2,
                    mnist_subsets=32, fraction=0.5),
    "paper": Preset(),
}


def record(p: Preset) -> dict:
    return {**dataclasses.asdict(p), "subset_rows": {"smdd": [int(np.floor(p.fraction * t + 0.5)) for t in p.T],
                                                     "mnist": p.mnist_subset_rows}}


# ---------------------------------------------------------------- SMDD


def smdd_data(p: Preset) -> np.ndarray:
    """Dense ``[max(T), n]``: data seed ``p.data_seed``'s training set; size T is its first T rows."""
    sweep = Sweep(T=(max(p.T),), sparsity=p.sparsity, seed=p.seed)
    return np.asarray(training_set(sweep, p.n_features, max(p.T), p.data_seed))


def smdd_model(cfg: TrainConfig):
    """``(init, loss, evaluate)`` of the ReLU-output autoencoder for ``run_grid``; evaluate
    gives every row's loss and hidden vector (``W x``) at the end."""
    per_example = example_loss_fn(cfg)

    def init(key, hp):
        return relu_output.init(key, cfg.n_features, cfg.n_hidden, 1.0, cfg.use_bias)

    def loss(params, x, hp):
        return per_example(params, x)

    def evaluate(params, x, weights, hp, aux):
        return {"loss": relu_output.example_losses(params, x, cfg.reduction, cfg.hidden_relu),
                "hidden": relu_output.hidden(params, x, cfg.hidden_relu)}

    return init, loss, evaluate


def smdd_part(p: Preset, store) -> Part:
    """K subset models and one full-data model per T (two ``run_grid`` calls)."""
    cfg = p.train
    x = jnp.asarray(smdd_data(p))
    init, loss, evaluate = smdd_model(cfg)
    common = dict(warmup_frac=cfg.warmup_frac, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, schedule="warmup_cosine",
                  n_history=cfg.n_history, evaluate=evaluate, seed=p.seed, progress=store.progress)
    hp = {"lr": [p.lr], "weight_decay": [p.weight_decay]}
    sub = run_grid(init, loss, x, {"n_train": p.T, **hp, "subset": range(p.subsets)}, cfg.steps,
                   subset_fraction=p.fraction, subset_seed=p.seed, subset_init=p.subset_init,
                   checkpoint_dir=store.checkpoints("smdd") / "subsets", **common)
    full = run_grid(init, loss, x, {"n_train": p.T, **hp}, cfg.steps,
                    checkpoint_dir=store.checkpoints("smdd") / "full", **common)
    rows = max(p.T)

    def cells(a, lead=None):  # drop the lr and weight-decay axes; the example axis ``lead`` to max(T) rows
        a = np.asarray(a)[:, 0, 0]
        if lead is not None:
            pad = [(0, 0)] * a.ndim
            pad[lead] = (0, max(0, rows - a.shape[lead]))
            a = np.pad(a, pad, constant_values=np.nan if a.dtype.kind == "f" else False)
            a = np.take(a, np.arange(rows), axis=lead)
        return a

    valid = np.arange(rows)[None, :] < np.asarray(p.T)[:, None]  # [T, example]
    arrays = {"loss": cells(sub.outputs["loss"], 2), "hidden": cells(sub.outputs["hidden"], 2),
              "in_subset": cells(sub.subset_mask, 2), "train_loss": cells(sub.train_loss),
              "diverged": cells(sub.diverged), "valid": valid,
              "full": {"loss": cells(full.outputs["loss"], 1), "hidden": cells(full.outputs["hidden"], 1),
                       "train_loss": cells(full.train_loss), "W": cells(full.params["W"]),
                       "b": cells(full.params["b"]), "diverged": cells(full.diverged)}}
    dims = {"loss": ("T", "subset", "example"), "hidden": ("T", "subset", "example", "neuron"),
            "in_subset": ("T", "subset", "example"), "train_loss": ("T", "subset"), "diverged": ("T", "subset"),
            "valid": ("T", "example"),
            "full/loss": ("T", "example"), "full/hidden": ("T", "example", "neuron"), "full/train_loss": ("T",),
            "full/W": ("T", "neuron", "feature"), "full/b": ("T", "feature"), "full/diverged": ("T",)}
    coords = {"T": p.T, "subset": range(p.subsets), "example": range(rows), "neuron": range(p.n_hidden)}
    return Part(arrays, dims, coords, n_runs=len(p.T) * (p.subsets + 1),
                compile_seconds=sub.compile_seconds + full.compile_seconds,
                info={"train_seconds": sub.train_seconds + full.train_seconds})


# ---------------------------------------------------------------- MNIST


def mnist_data(p: Preset, data_dir=None) -> dict:
    """The first ``mnist_n`` rows of a fixed permutation (seed ``p.seed``) of the MNIST file:
    uint8 images, unit-L2 float inputs (as ``dstar-mnist``), labels, file rows, file hashes."""
    kinds = mnist.available(data_dir)
    if not kinds:
        raise ValueError(f"no MNIST files in {data_dir or mnist.default_dir()}")
    kind = "train" if "train" in kinds else "t10k"
    images, labels = mnist.load(data_dir, kind)
    if p.mnist_n > images.shape[0]:
        raise ValueError(f"mnist_n={p.mnist_n} exceeds the {images.shape[0]} images of {kind} MNIST")
    rows = np.random.default_rng(p.seed).permutation(images.shape[0])[: p.mnist_n]
    flat = images[rows].reshape(p.mnist_n, -1).astype(np.float32) / 255
    norm = np.linalg.norm(flat, axis=-1, keepdims=True)
    folder = Path(data_dir) if data_dir is not None else mnist.default_dir()
    files = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in mnist.FILES[kind]}
    return {"x": (flat / np.where(norm > 0, norm, 1)).astype(np.float32), "labels": labels[rows].astype(np.int32),
            "images": images[rows], "rows": rows,
            "info": {"kind": kind, "files": files, "n_file": int(images.shape[0]), "permutation_seed": p.seed}}


def mnist_model(n_in: int, n_hidden: int, keep_hidden: bool):
    """``(init, loss, evaluate)`` of the ``dstar-mnist`` MLP; evaluate gives every row's
    correct-class probability and correctness, and its hidden vector (``keep_hidden``) or
    its D* among the run's training rows (float32; 0 for rows the run did not train on)."""

    def init(key, hp):
        return mlp.init(key, n_in, n_hidden, 10)

    def loss(params, batch, hp):
        return mlp.example_losses(params, batch["x"], batch["labels"])

    def evaluate(params, batch, weights, hp, aux):
        logits = mlp.apply(params, batch["x"])
        prob = jnp.take_along_axis(jax.nn.softmax(logits, -1), batch["labels"][:, None], axis=-1)[:, 0]
        out = {"prob": prob, "correct": (jnp.argmax(logits, -1) == batch["labels"]).astype(jnp.float32)}
        h = mlp.hidden(params, batch["x"])
        if keep_hidden:
            out["hidden"] = h
        else:  # D* within the run's own training set (rows outside it: 0, which leaves the others' D* unchanged)
            out["dstar"] = dstar.exact(h * weights[:, None])
        return out

    return init, loss, evaluate


def mnist_dstar(hidden) -> np.ndarray:
    """D* of hidden vectors ``[N, d]`` in float64 (``dstar-mnist``'s precision)."""
    from jaxmem.studies.dstar.mnist import one_blas_thread

    with jax.enable_x64(True), one_blas_thread():
        return np.asarray(dstar.exact(np.asarray(hidden, np.float64)))


def mnist_part(p: Preset, store) -> Part:
    """K subset models and the full-data model on the same images."""
    d = mnist_data(p, store.options.get("data_dir"))
    data = {"x": jnp.asarray(d["x"]), "labels": jnp.asarray(d["labels"])}
    hp = {"lr": [p.mnist_lr], "weight_decay": [p.mnist_weight_decay]}
    common = dict(schedule="warmup_cosine", warmup_frac=0.0, batch_size=p.mnist_batch, n_history=1, seed=p.seed,
                  progress=store.progress)
    init, loss, evaluate = mnist_model(784, p.mnist_hidden, False)
    sub = run_grid(init, loss, data, {**hp, "subset": range(p.mnist_subsets)}, p.mnist_steps(p.mnist_subset_rows),
                   subset_fraction=p.fraction, subset_seed=p.seed, subset_init=p.subset_init, evaluate=evaluate,
                   checkpoint_dir=store.checkpoints("mnist") / "subsets", **common)
    init, loss, evaluate = mnist_model(784, p.mnist_hidden, True)
    full = run_grid(init, loss, data, {**hp}, p.mnist_steps(p.mnist_n), evaluate=evaluate,
                    checkpoint_dir=store.checkpoints("mnist") / "full", **common)
    hidden = np.asarray(full.outputs["hidden"])[0, 0]
    arrays = {"prob": np.asarray(sub.outputs["prob"])[0, 0], "correct": np.asarray(sub.outputs["correct"])[0, 0],
              "in_subset": np.asarray(sub.subset_mask)[0, 0], "dstar": np.asarray(sub.outputs["dstar"])[0, 0],
              "train_loss": np.asarray(sub.train_loss)[0, 0],
              "diverged": np.asarray(sub.diverged)[0, 0], "labels": d["labels"], "images": d["images"],
              "full": {"prob": np.asarray(full.outputs["prob"])[0, 0],
                       "correct": np.asarray(full.outputs["correct"])[0, 0], "hidden": hidden,
                       "dstar": mnist_dstar(hidden), "train_loss": np.asarray(full.train_loss)[0, 0]}}
    dims = {"prob": ("subset", "example"), "correct": ("subset", "example"), "in_subset": ("subset", "example"),
            "dstar": ("subset", "example"),
            "train_loss": ("subset",), "diverged": ("subset",), "labels": ("example",),
            "images": ("example", "row", "col"), "full/prob": ("example",), "full/correct": ("example",),
            "full/hidden": ("example", "unit"), "full/dstar": ("example",)}
    return Part(arrays, dims, {"subset": range(p.mnist_subsets), "example": d["rows"]},
                n_runs=p.mnist_subsets + 1, compile_seconds=sub.compile_seconds + full.compile_seconds,
                info={"data": d["info"], "train_seconds": sub.train_seconds + full.train_seconds,
                      "steps": {"subset": p.mnist_steps(p.mnist_subset_rows), "full": p.mnist_steps(p.mnist_n)}})


# ---------------------------------------------------------------- run, summary


def run(p: Preset, store) -> None:
    for name, fn in (("smdd", smdd_part), ("mnist", mnist_part)):
        if name in p.parts:
            store.part(name, lambda fn=fn: fn(p, store))


def spearman(a, b) -> float | None:
    """Spearman's rho over the entries finite in both (None with fewer than 3)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return None
    return float(scipy.stats.spearmanr(a[ok], b[ok]).statistic)


def _se_stats(se) -> dict:
    se = np.asarray(se, np.float64)
    se = se[np.isfinite(se)]
    return {"max": float(se.max()) if se.size else None, "median": float(np.median(se)) if se.size else None}


def _mean_where(values, where) -> np.ndarray:
    """Mean over axis 0 of ``values`` where ``where`` (NaN where nothing counts)."""
    count = where.sum(0)
    total = np.where(where, values, 0.0).sum(0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def smdd_estimates(part: Part, i: int) -> dict:
    """T index ``i``: memorisation (score = minus the loss), the full model's D*, data
    dimensionality and hidden-vector norms, each ``[T]``; subset models' in-set D* mean."""
    T = int(part.coords["T"][i])
    loss, mask = part["loss"][i][:, :T], part["in_subset"][i][:, :T]
    ok = ~part["diverged"][i][:, None]
    m = estimate(-loss, mask, axis=0, valid=ok)
    h_full = part["full/hidden"][i][:T].astype(np.float64)
    h_sub = np.where(mask[..., None], np.nan_to_num(part["hidden"][i][:, :T]), 0.0)  # out-of-subset rows: 0
    d_sub = np.asarray(dstar.exact(h_sub))  # [K, T]: leverage within each subset model's own training set
    dstar_in = _mean_where(d_sub, mask & ok)
    return {"T": T, "mem": m.value, "se": m.stderr, "n_in": m.n_in, "n_out": m.n_out, "loss_in": -m.mean_in,
            "loss_out": -m.mean_out, "dstar": np.asarray(dstar.exact(h_full)),
            "data_dim": np.asarray(metrics.dimensionality(h_full)), "norm": np.linalg.norm(h_full, axis=-1),
            "dstar_in": dstar_in, "full_loss": part["full/loss"][i][:T]}


def summarize_smdd(part: Part, p: Preset) -> dict:
    by_T, all_se = [], []
    for i, regime in enumerate(p.regimes):
        e = smdd_estimates(part, i)
        all_se.append(e["se"])
        sig = e["mem"] > Z_SIGNIFICANT * e["se"]
        W = part["full/W"][i]
        feature_dim = np.asarray(metrics.dimensionality(W.T))
        by_T.append({
            "T": e["T"], "regime": regime, "subset_rows": int(np.floor(p.fraction * e["T"] + 0.5)),
            "full_train_loss": float(part["full/train_loss"][i]),
            "full_learned_features": int(metrics.n_learned(feature_dim)),
            "subset_train_loss_mean": float(np.mean(part["train_loss"][i])),
            "loss_in_mean": float(np.nanmean(e["loss_in"])), "loss_out_mean": float(np.nanmean(e["loss_out"])),
            "mem_mean": float(np.nanmean(e["mem"])), "mem_median": float(np.nanmedian(e["mem"])),
            "mem_min": float(np.nanmin(e["mem"])), "mem_max": float(np.nanmax(e["mem"])),
            "mem_mean_se": float(np.sqrt(np.nansum(e["se"] ** 2)) / np.isfinite(e["se"]).sum()),
            "share_significant": float(sig.mean()),
            "se": _se_stats(e["se"]), "n_in_min": int(e["n_in"].min()), "n_out_min": int(e["n_out"].min()),
            "spearman": {"dstar": spearman(e["mem"], e["dstar"]), "data_dim": spearman(e["mem"], e["data_dim"]),
                         "hidden_norm": spearman(e["mem"], e["norm"]), "dstar_in": spearman(e["mem"], e["dstar_in"]),
                         "full_loss": spearman(e["mem"], e["full_loss"]),
                         "dstar_vs_data_dim": spearman(e["dstar"], e["data_dim"]),
                         "dstar_vs_dstar_in": spearman(e["dstar"], e["dstar_in"])},
            "dstar_min": float(e["dstar"].min()), "dstar_max": float(e["dstar"].max()),
            "dstar_sum": float(e["dstar"].sum()),
            "n_diverged": int(part["diverged"][i].sum() + part["full/diverged"][i]),
        })
    se = np.concatenate([s.ravel() for s in all_se])
    return {"K": p.subsets, "fraction": p.fraction, "subset_init": p.subset_init, "steps": p.steps,
            "n_features": p.n_features, "sparsity": p.sparsity, "n_hidden": p.n_hidden,
            "score": "minus the reconstruction loss (mem = mean loss out - mean loss in)",
            "se": _se_stats(se), "by_T": by_T}


def mnist_estimates(part: Part) -> dict:
    ok = ~part["diverged"][:, None]
    prob = estimate(part["prob"], part["in_subset"], axis=0, valid=ok)
    acc = estimate(part["correct"], part["in_subset"], axis=0, valid=ok)
    dstar_in = _mean_where(part["dstar"], part["in_subset"] & ok)
    return {"mem": prob.value, "se": prob.stderr, "mem_acc": acc.value, "se_acc": acc.stderr, "dstar_in": dstar_in,
            "acc_in": acc.mean_in, "acc_out": acc.mean_out, "n_in": prob.n_in, "n_out": prob.n_out,
            "dstar": part["full/dstar"], "labels": part["labels"], "wrong": part["full/correct"] < 0.5}


def summarize_mnist(part: Part, p: Preset) -> dict:
    e = mnist_estimates(part)
    mem, d, labels, wrong = e["mem"], e["dstar"], e["labels"], e["wrong"]
    held_out_wrong = e["acc_out"] < 0.5
    order = np.argsort(-np.nan_to_num(mem, nan=-np.inf), kind="stable")
    top = order[: max(1, len(order) // 10)]

    def mean(a, where):
        return float(np.nanmean(a[where])) if where.any() else None

    by_class = [{"label": c, "n": int((labels == c).sum()), "mem_mean": mean(mem, labels == c),
                 "spearman_dstar": spearman(mem[labels == c], d[labels == c]),
                 "spearman_dstar_in": spearman(mem[labels == c], e["dstar_in"][labels == c])}
                for c in range(mnist.N_CLASSES)]
    return {"K": p.mnist_subsets, "fraction": p.fraction, "subset_init": p.subset_init, "n_images": p.mnist_n,
            "n_hidden": p.mnist_hidden, "steps": part.info.get("steps"), "data": part.info.get("data"),
            "score": "correct-class probability (mem_acc: correctness, 0/1)",
            "se": _se_stats(e["se"]), "se_acc": _se_stats(e["se_acc"]),
            "mem_mean": float(np.nanmean(mem)), "mem_median": float(np.nanmedian(mem)),
            "mem_max": float(np.nanmax(mem)), "mem_acc_mean": float(np.nanmean(e["mem_acc"])),
            "share_significant": float((mem > Z_SIGNIFICANT * e["se"]).mean()),
            "acc_in_mean": float(np.nanmean(e["acc_in"])), "acc_out_mean": float(np.nanmean(e["acc_out"])),
            "full_train_accuracy": float(1 - wrong.mean()),
            "subset_train_loss_mean": float(np.mean(part["train_loss"])),
            "spearman": {"dstar": spearman(mem, d), "dstar_acc": spearman(e["mem_acc"], d),
                         "dstar_in": spearman(mem, e["dstar_in"]),
                         "dstar_in_acc": spearman(e["mem_acc"], e["dstar_in"]),
                         "dstar_vs_dstar_in": spearman(d, e["dstar_in"]), "acc_vs_prob": spearman(mem, e["mem_acc"])},
            "by_class": by_class,
            "spearman_by_class_median": float(np.nanmedian([c["spearman_dstar"] for c in by_class
                                                              if c["spearman_dstar"] is not None] or [np.nan])),
            "misclassified": {
                "full_model_errors": int(wrong.sum()), "mem_mean_errors": mean(mem, wrong),
                "mem_mean_correct": mean(mem, ~wrong), "dstar_mean_errors": mean(d, wrong),
                "held_out_errors": int(held_out_wrong.sum()),
                "mem_mean_held_out_errors": mean(mem, held_out_wrong),
                "mem_mean_held_out_correct": mean(mem, ~held_out_wrong),
                "share_top_decile_held_out_errors": float(held_out_wrong[top].mean()),
                "share_all_held_out_errors": float(held_out_wrong.mean())},
            "dstar_mean_top_decile": float(d[top].mean()), "dstar_mean_all": float(d.mean())}


def summarize(parts: dict, p: Preset) -> dict:
    out = {}
    if "smdd" in parts:
        out["smdd"] = summarize_smdd(parts["smdd"], p)
    if "mnist" in parts:
        out["mnist"] = summarize_mnist(parts["mnist"], p)
    return out


def draw(parts: dict, summary: dict, p: Preset, out) -> None:
    from jaxmem.studies.memorisation import figures

    out = Path(out)
    if "smdd" in parts:
        figures.smdd_scatter(parts["smdd"], p, out / "memorisation_smdd_scatter.png")
        figures.smdd_hidden(parts["smdd"], p, out / "memorisation_smdd_hidden.png")
    if "mnist" in parts:
        figures.mnist_scatter(parts["mnist"], out / "memorisation_mnist_scatter.png")
        figures.mnist_grid(parts["mnist"], out / "memorisation_mnist_images.png")
