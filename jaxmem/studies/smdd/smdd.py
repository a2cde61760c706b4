"""``smdd``: dimensionality, feature/hidden vectors, test loss and norms vs dataset size T.

Henighan et al. 2023, "Superposition, Memorization, and Double Descent", with Jermyn's
replication comment (docs/sources.md §1). Besides the paper's figures, ``summarize``
measures three things the comments say and ``draw`` plots each:

- the norms ``||h_t||`` of the hidden vectors ``h_t = W x_t`` of the training examples
  per T (the seed: "lengths of both hidden and feature vectors vary widely with dataset
  size"; the T of the peak is lost from the seed's text);
- the largest feature dimensionality after the generalising jump (Jermyn: "the peak
  feature dimensions decrease as the datasets grow post-generalization");
- Jermyn's norm comparison: "a rise in the weight norms over the range T=100-1000
  whereas the figure in the paper shows more of a plateau", at the paper's n = 10,000;
  read here over the same T / n (T = 10-100 at n = 1,000). His "peak bias norms ...
  roughly 3 times larger than those in the paper" cannot be checked: the seed lost the
  paper's numbers; ``||b||``'s peak is reported for whoever has the figure.

The mean data dimensionality is *measured* against m / T (``data_dim_mean_rel_dev``):
no identity forces it (the sum of D*, not of the data dimensionality, is the rank).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from jaxmem import metrics
from jaxmem.studies.smdd import figures
from jaxmem.studies.smdd.per_setting import sweep_part, tuple_record
from jaxmem.studies.smdd.sweep import Sweep
from jaxmem.train import TrainConfig

DESCRIPTION = "SMDD double descent: dimensionality, vectors, test loss and norms vs T (m = 2)"


def _log_grid(lo: int, hi: int, count: int) -> tuple[int, ...]:
    return tuple(int(t) for t in np.unique(np.round(np.geomspace(lo, hi, count))))


#: preset -> (TrainConfig, Sweep, batch size of the infinite-data line; 0: none).
#: Where each setting comes from (docs/sources.md §1; seed = the seed's text, paper = the
#: paper's full text outside the seed, not verifiable from it, ours = our choice):
#:
#: - ``paper``: n = 10,000 (seed: "encode 10,000 features into 2 neurons"), S = 0.999
#:   (seed 000: Hobbhahn uses "sparsity 0.99 instead of 0.999"), m = 2 (seed: the
#:   pentagon in a "two dimensional hidden space"), 50,000 full-batch AdamW updates
#:   (seed); lr 1e-3, 5% linear warm-up then half-cosine to 0 and weight decay 1e-2
#:   (paper: the seed lost the numbers: "we use a weight decay of ___"; Hobbhahn uses
#:   "the schedulers as described in the paper"); betas (0.9, 0.999), eps 1e-8, Xavier
#:   normal init with b = 0, 4 data seeds, one init seed each, 10,000 test samples,
#:   float32 and the T grid are ours.
#: - ``reduced``: Hobbhahn's reduced setting (seed 000: n = 1,000, S = 0.99; he says the
#:   double descent "happens exactly 10x earlier" there) with the ``paper`` preset's
#:   training; T to 3,000 is ours (he cut T off "much earlier").
#: - ``quick``: ``reduced`` with 4,000 steps and 2 seeds (ours), to fit 5 minutes on a
#:   2-core CPU.
#:
#: The infinite-data line trains on a new batch every step (``Sweep.fresh``). The sources
#: give no batch size; we take batch (1 - S) = 10 (ours), so that each batch holds every
#: feature about 10 times, the scale at which Jermyn finds the model generalises.
PRESETS = {
    "quick": (TrainConfig(n_features=1000, n_hidden=2, steps=4000),
              Sweep(T=_log_grid(3, 3000, 14), sparsity=0.99, data_seeds=2), 1000),
    "reduced": (TrainConfig(n_features=1000, n_hidden=2, steps=50_000),
                Sweep(T=_log_grid(3, 3000, 17), sparsity=0.99, data_seeds=4), 1000),
    "paper": (TrainConfig(n_features=10_000, n_hidden=2, steps=50_000),
              Sweep(T=_log_grid(3, 100_000, 24), sparsity=0.999, data_seeds=4), 10_000),
}
SEEDS = "data_seeds"
SET_NAMES = {2: "infinite_batch"}


def record(cfg) -> dict:
    infinite_sweep(cfg[1], cfg[2])  # refuses a bad batch before anything is written
    return tuple_record(cfg, SET_NAMES, learned_threshold=metrics.LEARNED_THRESHOLD)


def infinite_sweep(sweep: Sweep, batch: int) -> Sweep | None:
    """The infinite-data sweep (same seeds and settings, one batch size), or None for batch 0."""
    if batch is None or int(batch) == 0:
        return None
    if int(batch) != batch or batch < 0:
        raise ValueError(f"infinite_batch must be a whole number >= 0 (0: no infinite-data line), got {batch!r}")
    return dataclasses.replace(sweep, T=(int(batch),), fresh=True, repeat=(0, 1))


#: arrays of the infinite-data line kept in its part
INFINITE_ARRAYS = ("W", "b", "train_loss", "test_loss", "history", "diverged", "feature_dim")


def run(cfg, store) -> None:
    train, sweep, batch = cfg
    store.part("", lambda: sweep_part(train, sweep, store, ""))
    infinite = infinite_sweep(sweep, batch)
    if infinite is not None:
        store.part("infinite", lambda: sweep_part(train, infinite, store, "infinite", INFINITE_ARRAYS))


def _cells(part) -> dict:
    """The first (lr, weight decay, init scale) cell: ``[len(T), seeds, ...]``."""
    return {k: v[:, 0, 0, 0] for k, v in part.arrays.items()}


def summarize_infinite(parts: dict) -> dict | None:
    """Means over seeds of the infinite-data line (first cell), or None without one."""
    if "infinite" not in parts:
        return None
    a = {k: v[0] for k, v in _cells(parts["infinite"]).items()}  # [seeds, ...]
    return {"test_loss": _mean(a["test_loss"]), "test_loss_per_seed": a["test_loss"].tolist(),
            "heldout_batch_loss": _mean(a["train_loss"]),
            "W_norm": _mean(np.asarray(metrics.weight_norm(a))),
            "b_norm": _mean(np.sqrt(np.sum(a["b"] ** 2, axis=-1))),
            "feature_dim_max": _mean(a["feature_dim"].max(-1)),
            "n_learned_features": _mean(np.asarray(metrics.n_learned(a["feature_dim"]))),
            "n_diverged": int(np.sum(a["diverged"]))}


#: Jermyn's norm comparison (docs/sources.md §1, seed 001): "a rise in the weight norms
#: over the range T=100-1000 whereas the figure in the paper shows more of a plateau",
#: in his replication at the paper's n = 10,000. We read it over the same T / n.
JERMYN_T_RANGE, JERMYN_N = (100, 1000), 10_000
#: labels of a norm's trend over a T range (ours): "rise" when its last value is at least
#: ``RISE`` times its first, "fall" when at most 1 / ``RISE``, "plateau" when every value
#: lies within a factor ``PLATEAU`` of every other, else "mixed"
RISE, PLATEAU = 1.5, 1.25


def hidden_norm_stats(hidden_SxTxM) -> dict:
    """Norms ``||h_t||`` of the hidden vectors of one T's training examples, ``[seeds, T, m]``:
    per seed the mean, standard deviation, median and largest over the examples (each
    then averaged over seeds), and the 10% and 90% quantiles over every seed's examples."""
    norms = np.linalg.norm(np.asarray(hidden_SxTxM, float), axis=-1)  # [seeds, T]
    return {"hidden_norm_mean": _mean(norms.mean(-1)), "hidden_norm_std": _mean(norms.std(-1)),
            "hidden_norm_median": _mean(np.median(norms, -1)), "hidden_norm_max": _mean(norms.max(-1)),
            "hidden_norm_q10": float(np.quantile(norms, 0.1)), "hidden_norm_q90": float(np.quantile(norms, 0.9))}


def trend(T, values_TxS, lo: float, hi: float) -> dict:
    """The trend of the seed mean of ``values [len(T), seeds]`` over the grid's T in
    ``[lo, hi]``: those T and values, last over first, largest over smallest, and a label
    (``RISE``, ``PLATEAU``); None with fewer than two T in the range."""
    idx = [i for i, t in enumerate(T) if lo <= t <= hi]
    if len(idx) < 2:
        return None
    mean = np.nanmean(np.asarray(values_TxS, float)[idx], axis=-1)
    ratio, spread = float(mean[-1] / mean[0]), float(mean.max() / mean.min())
    label = ("rise" if ratio >= RISE else "fall" if ratio <= 1 / RISE else
             "plateau" if spread <= PLATEAU else "mixed")
    return {"T_range": [lo, hi], "T": [int(T[i]) for i in idx], "mean": mean.tolist(),
            "last_over_first": ratio, "max_over_min": spread, "label": label}


def after_generalising(T, feature_dim_SxN) -> dict:
    """Jermyn's "the peak feature dimensions decrease as the datasets grow
    post-generalization", on the largest feature dimensionality ``[len(T), seeds, n]``:
    the generalising T (after the largest rise of its seed mean between neighbouring T),
    the highest seed mean at or after it and its T, the value at the largest T, and
    ``falls``: whether the drop from that peak to the largest T exceeds the seeds'
    spread (largest minus smallest) at either of those two T (ours: a drop within the
    seed-to-seed noise is not counted). Also the mean of each run's 5 largest feature
    dimensionalities (the pentagon's) at the same T."""
    if len(T) < 2:
        return None
    fdim = np.asarray(feature_dim_SxN, float)
    top, top5 = fdim.max(-1), np.sort(fdim, -1)[..., -5:].mean(-1)  # [len(T), seeds]
    mean = np.nanmean(top, -1)
    jump = int(np.argmax(np.diff(mean))) + 1
    peak = jump + int(np.argmax(mean[jump:]))
    spread = top.max(-1) - top.min(-1)
    drop = float(mean[peak] - mean[-1])
    return {"generalising_T": int(T[jump]), "peak_T": int(T[peak]), "peak": float(mean[peak]),
            "largest_T": int(T[-1]), "at_largest_T": float(mean[-1]), "drop_from_peak": drop,
            "seed_spread": float(max(spread[peak], spread[-1])),
            "falls": bool(peak < len(T) - 1 and drop > max(spread[peak], spread[-1])),
            "T_after": [int(t) for t in T[jump:]], "feature_dim_max_after": mean[jump:].tolist(),
            "top5_mean_after": np.nanmean(top5[jump:], -1).tolist()}


def summarize(parts: dict, cfg) -> dict:
    cfg, sweep, _ = cfg
    a = _cells(parts[""])
    W_norm = np.asarray(metrics.weight_norm(a))
    b_norm = np.sqrt(np.sum(a["b"] ** 2, axis=-1))
    n_learned = np.asarray(metrics.n_learned(a["feature_dim"]))
    by_T = []
    for i, T in enumerate(sweep.T):
        data_dim = a["data_dim"][i][:, :T]
        # measured, not forced: the data dimensionality is at most D*, whose sum is m
        dev = np.nanmean(data_dim, axis=-1) * T / cfg.n_hidden - 1.0  # [seeds]
        by_T.append({"T": T, "test_loss": _mean(a["test_loss"][i]), "train_loss": _mean(a["train_loss"][i]),
                     "W_norm": _mean(W_norm[i]), "b_norm": _mean(b_norm[i]),
                     "data_dim_mean": _mean(np.nanmean(data_dim, axis=-1)),
                     "data_dim_mean_rel_dev": _mean(dev), "data_dim_mean_rel_dev_max_abs": float(np.max(np.abs(dev))),
                     "data_dim_max": _mean(np.nanmax(data_dim, axis=-1)),
                     "feature_dim_max": _mean(a["feature_dim"][i].max(-1)),
                     "n_learned_features": _mean(n_learned[i]),
                     **hidden_norm_stats(a["hidden"][i][:, :T])})
    test = np.array([r["test_loss"] for r in by_T])
    peak = int(np.nanargmax(test))
    devs = [r["data_dim_mean_rel_dev_max_abs"] for r in by_T]
    scale = cfg.n_features / JERMYN_N  # the same T / n as Jermyn's range
    jermyn = {"T_scale": scale,
              "W_norm": trend(sweep.T, W_norm, JERMYN_T_RANGE[0] * scale, JERMYN_T_RANGE[1] * scale),
              "W_norm_unscaled_T": trend(sweep.T, W_norm, *JERMYN_T_RANGE),
              "b_norm_peak": float(np.max(np.nanmean(b_norm, -1))),
              "b_norm_peak_T": sweep.T[int(np.nanargmax(np.nanmean(b_norm, -1)))],
              "b_norm_at_largest_T": _mean(b_norm[-1]), "W_norm_peak": float(np.max(np.nanmean(W_norm, -1)))}
    T0 = sweep.T[0]
    small_dev = np.abs(a["data_dim"][0][:, :T0] * T0 / cfg.n_hidden - 1.0)
    h0 = a["hidden"][0][:, :T0]
    diverged = [{"T": sweep.T[c[0]], "lr": sweep.lr[c[1]], "weight_decay": sweep.weight_decay[c[2]],
                 "init_scale": sweep.init_scale[c[3]], "data_seed": int(c[4])}
                for c in zip(*np.nonzero(parts[""]["diverged"]))]
    return {
        "by_T": by_T,
        "W_norm_peak_T": sweep.T[int(np.nanargmax([r["W_norm"] for r in by_T]))],
        "b_norm_peak_T": sweep.T[int(np.nanargmax([r["b_norm"] for r in by_T]))],
        "test_loss_peak_T": sweep.T[peak],
        "test_loss_peak_is_interior": 0 < peak < len(by_T) - 1,
        "test_loss_lower_at_largest_T": bool(test[-1] < test[peak]),
        "hidden_norm_mean_peak_T": sweep.T[int(np.nanargmax([r["hidden_norm_mean"] for r in by_T]))],
        "hidden_norm_mean_peak_over_largest_T": by_T[int(np.nanargmax([r["hidden_norm_mean"] for r in by_T]))][
            "hidden_norm_mean"] / by_T[-1]["hidden_norm_mean"],
        "data_dim_mean_rel_dev_max_abs": float(np.max(devs)),
        "data_dim_mean_rel_dev_max_abs_T": sweep.T[int(np.argmax(devs))],
        "feature_dim_after_generalising": after_generalising(sweep.T, a["feature_dim"]),
        "jermyn_norms": jermyn,
        "smallest_T_data_dim_max_rel_error": float(np.nanmax(small_dev)),
        "smallest_T_data_dim_within_10pct": bool(np.nanmax(small_dev) <= 0.1),
        **({"smallest_T_angle_gap_max_error_deg": float(np.max(np.abs(polygon_gaps(h0) - 360.0 / T0))),
            "smallest_T_norm_ratio_max": float(np.max(np.linalg.norm(h0, axis=-1).max(-1)
                                                      / np.linalg.norm(h0, axis=-1).min(-1)))}
           if cfg.n_hidden == 2 else {}),
        "zero_output_loss": zero_output_loss(cfg, sweep.sparsity),
        "infinite": summarize_infinite(parts),
        "pad_ratio": parts[""].info["pad_ratio"],
        "buckets": parts[""].info["buckets"],
        "n_diverged": len(diverged),
        "diverged": diverged,
    }


def polygon_gaps(h_SxTx2) -> np.ndarray:
    """Angles (degrees) between angularly consecutive 2-D hidden vectors, ``[S, T]``;
    a regular T-gon has every gap ``360 / T``."""
    angles = np.sort(np.degrees(np.arctan2(h_SxTx2[..., 1], h_SxTx2[..., 0])), axis=-1)
    return np.diff(np.concatenate([angles, angles[..., :1] + 360.0], axis=-1), axis=-1)


def _mean(x) -> float:
    return float(np.nanmean(x))


def zero_output_loss(cfg: TrainConfig, sparsity: float) -> float:
    """Expected loss of the all-zero output: ``E ||x||^2 = 1 - S^n`` for unit-norm rows."""
    nonzero_rows = 1.0 - sparsity**cfg.n_features
    return nonzero_rows / cfg.n_features if cfg.reduction == "mean" else nonzero_rows


def draw(parts: dict, summary: dict, cfg, out) -> None:
    """Every figure of an ``smdd`` run."""
    cfg, sweep, _ = cfg
    out = Path(out)
    a, T = _cells(parts[""]), list(sweep.T)
    figures.dimensionality(T, a["feature_dim"], a["data_dim"], cfg.n_hidden, out / "dimensionality.png")
    pick = sorted(set(np.round(np.linspace(0, len(T) - 1, min(8, len(T)))).astype(int)))
    for shared, name in ((True, "vectors_shared_scale.png"), (False, "vectors_per_panel.png")):
        figures.vectors([T[i] for i in pick], a["W"][pick, 0], a["hidden"][pick, 0], out / name, shared)
    infinite = _cells(parts["infinite"])["test_loss"][0] if "infinite" in parts else None
    figures.loss_vs_T(T, a["test_loss"], a["train_loss"], zero_output_loss(cfg, sweep.sparsity),
                      out / "test_loss.png", infinite=infinite)
    W_norm, b_norm = np.asarray(metrics.weight_norm(a)), np.sqrt(np.sum(a["b"] ** 2, axis=-1))
    figures.curve_vs_T(T, {"||W||_F": W_norm, "||b||": b_norm}, "norm", "Weight and bias norms vs T",
                       out / "norms.png")
    # from the parts, not the summary: `jaxmem plot` also redraws runs summarised before these existed
    figures.hidden_norms(T, a["hidden"], out / "hidden_norms.png")
    lo, hi = (r * cfg.n_features / JERMYN_N for r in JERMYN_T_RANGE)
    figures.norms_vs_jermyn(T, W_norm, b_norm, (lo, hi), trend(T, W_norm, lo, hi), out / "norms_vs_jermyn.png")
    after = after_generalising(T, a["feature_dim"])
    infinite_fdim = (_cells(parts["infinite"])["feature_dim"][0].max(-1) if "infinite" in parts else None)
    figures.feature_dim_after(T, a["feature_dim"], None if after is None else after["generalising_T"],
                              infinite_fdim, out / "feature_dim_max.png")
