"""``smdd``: dimensionality, feature/hidden vectors, test loss and norms vs dataset size T.

Henighan et al. 2023, "Superposition, Memorization, and Double Descent" (docs/sources.md §1).
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
#: ``reduced`` is Hobbhahn's reduced setting in full (n = 1,000, S = 0.99, which moves the
#: transitions 10x lower in T; the paper's 50,000 steps, schedule, lr 1e-3 and weight
#: decay 1e-2; 4 data seeds); ``quick`` is the same with 4,000 steps and 2 seeds, to fit
#: 5 minutes on a 2-core CPU; ``paper`` is the paper's own (n = 10,000, S = 0.999).
#: The infinite-data line trains on a new batch every step (``Sweep.fresh``). The sources
#: give no batch size; we take batch (1 - S) = 10, so that each batch holds every feature
#: about 10 times, the scale at which Jermyn finds the model generalises.
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


def summarize(parts: dict, cfg) -> dict:
    cfg, sweep, _ = cfg
    a = _cells(parts[""])
    W_norm = np.asarray(metrics.weight_norm(a))
    b_norm = np.sqrt(np.sum(a["b"] ** 2, axis=-1))
    n_learned = np.asarray(metrics.n_learned(a["feature_dim"]))
    by_T = []
    for i, T in enumerate(sweep.T):
        data_dim = a["data_dim"][i][:, :T]
        by_T.append({"T": T, "test_loss": _mean(a["test_loss"][i]), "train_loss": _mean(a["train_loss"][i]),
                     "W_norm": _mean(W_norm[i]), "b_norm": _mean(b_norm[i]),
                     "data_dim_mean": _mean(np.nanmean(data_dim, axis=-1)),
                     "data_dim_max": _mean(np.nanmax(data_dim, axis=-1)),
                     "feature_dim_max": _mean(a["feature_dim"][i].max(-1)),
                     "n_learned_features": _mean(n_learned[i])})
    test = np.array([r["test_loss"] for r in by_T])
    peak = int(np.nanargmax(test))
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
    figures.curve_vs_T(T, {"||W||_F": np.asarray(metrics.weight_norm(a)),
                           "||b||": np.sqrt(np.sum(a["b"] ** 2, axis=-1))},
                       "norm", "Weight and bias norms vs T", out / "norms.png")
