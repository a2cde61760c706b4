"""``smdd``: dimensionality, feature/hidden vectors, test loss and norms vs dataset size T.

Henighan et al. 2023, "Superposition, Memorization, and Double Descent" (SPEC §1).
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import numpy as np

from jaxmem import metrics, presets, results
from jaxmem.studies.smdd import figures
from jaxmem.sweep import Sweep, run_sweep
from jaxmem.train import TrainConfig

DESCRIPTION = "SMDD double descent: dimensionality, vectors, test loss and norms vs T (m = 2)"


def _log_grid(lo: int, hi: int, count: int) -> tuple[int, ...]:
    return tuple(int(t) for t in np.unique(np.round(np.geomspace(lo, hi, count))))


#: preset -> (TrainConfig, Sweep). ``reduced`` is Hobbhahn's reduced setting in full
#: (n = 1,000, S = 0.99, which moves the transitions 10x lower in T; the paper's 50,000
#: steps, schedule, lr 1e-3 and weight decay 1e-2; 4 data seeds); ``quick`` is the same
#: with 4,000 steps and 2 seeds, to fit 5 minutes on a 2-core CPU; ``paper`` is the
#: paper's own (n = 10,000, S = 0.999).
PRESETS = {
    "quick": (TrainConfig(n_features=1000, n_hidden=2, steps=4000),
              Sweep(T=_log_grid(3, 3000, 14), sparsity=0.99, data_seeds=2)),
    "reduced": (TrainConfig(n_features=1000, n_hidden=2, steps=50_000),
                Sweep(T=_log_grid(3, 3000, 17), sparsity=0.99, data_seeds=4)),
    "paper": (TrainConfig(n_features=10_000, n_hidden=2, steps=50_000),
              Sweep(T=_log_grid(3, 100_000, 24), sparsity=0.999, data_seeds=4)),
}

#: preset -> batch size of its infinite-data line (a new batch every step, ``Sweep.fresh``).
#: The sources give none; we take batch (1 - S) = 10, so that each batch holds every
#: feature about 10 times, the scale at which Jermyn finds the model generalises.
INFINITE_BATCH = {"quick": 1000, "reduced": 1000, "paper": 10_000}


def preset(name: str, seeds: int | None = None, overrides: dict | None = None) -> tuple[TrainConfig, Sweep]:
    """The preset's configs, with ``--seeds`` and ``--set FIELD=VALUE`` (``overrides``) applied."""
    cfg, sweep = presets.pick(PRESETS, name)
    return presets.override((cfg, presets.with_seeds(sweep, seeds)), overrides)


def infinite_sweep(name: str, sweep: Sweep) -> Sweep | None:
    """The preset's infinite-data sweep (same seeds and settings, one batch size), or None."""
    batch = INFINITE_BATCH.get(name)
    return None if batch is None else dataclasses.replace(sweep, T=(batch,), fresh=True)


#: arrays of the infinite-data line kept in runs.npz, as ``infinite_<name>``
INFINITE_ARRAYS = ("W", "b", "train_loss", "test_loss", "history", "diverged", "feature_dim")


def config_dict(cfg: TrainConfig, sweep: Sweep) -> dict:
    return {"n_features": cfg.n_features, "n_hidden": cfg.n_hidden, "sparsity": sweep.sparsity,
            "steps": cfg.steps, "T": list(sweep.T), "data_seeds": sweep.data_seeds,
            "init_seeds": sweep.init_seeds, "lr": list(sweep.lr), "weight_decay": list(sweep.weight_decay),
            "init_scale": list(sweep.init_scale), "warmup_frac": cfg.warmup_frac,
            "reduction": cfg.reduction, "hidden_relu": cfg.hidden_relu, "n_test": sweep.n_test,
            "seed": sweep.seed, "learned_threshold": metrics.LEARNED_THRESHOLD}


def run(preset_name: str, out, seeds: int | None = None, resume: bool = False, progress=None,
        overrides: dict | None = None) -> dict:
    cfg, sweep = preset(preset_name, seeds, overrides)
    infinite = infinite_sweep(preset_name, sweep)
    out = Path(out)
    config = presets.record_overrides(config_dict(cfg, sweep), overrides)
    if infinite is not None:
        config["infinite_batch"] = infinite.T[0]
    arrays_path, summary_path = out / "runs.npz", out / "summary.json"
    timing = None
    if resume and arrays_path.exists() and summary_path.exists():
        previous = results.load_json(summary_path)
        if previous.get("config") != config:
            raise ValueError(f"--resume: {summary_path} was made with another config; use a new --out")
        arrays = results.load_arrays(arrays_path)
        timing = previous["wall_seconds"], previous["compile_seconds"], previous["results"]["pad_ratio"]
        buckets = previous.get("buckets", [])
    if timing is None:
        start = time.perf_counter()
        checkpoints = out / "checkpoints"  # one file per finished bucket: a killed run resumes
        if not resume:
            shutil.rmtree(checkpoints, ignore_errors=True)
        result = run_sweep(cfg, sweep, progress=progress, checkpoint_dir=checkpoints)
        arrays = dict(result.arrays, T=np.array(sweep.T))
        buckets, compile_seconds = _bucket_times(result, "finite"), result.compile_seconds
        if infinite is not None:
            inf = run_sweep(cfg, infinite, progress=progress, checkpoint_dir=checkpoints)
            arrays.update({f"infinite_{k}": inf.arrays[k] for k in INFINITE_ARRAYS})
            buckets += _bucket_times(inf, "infinite")
            compile_seconds += inf.compile_seconds
        axes = {"": results.sweep_axes(sweep)}
        if infinite is not None:
            axes["infinite_"] = results.sweep_axes(infinite)
        results.save_arrays(arrays_path, arrays, axes=axes)
        shutil.rmtree(checkpoints, ignore_errors=True)
        timing = time.perf_counter() - start, compile_seconds, result.pad_ratio
    n_runs = (len(sweep.T) + (infinite is not None)) * int(np.prod(sweep.grid_shape[1:])) * sweep.init_seeds
    summary = results.summary("smdd", preset_name, {"n_runs": n_runs,
               "wall_seconds": timing[0], "compile_seconds": timing[1], "config": config, "buckets": buckets,
               "results": summarize(arrays, sweep, cfg, timing[2])})
    results.save_json(summary_path, summary)
    draw(out, summary)
    return summary


def _bucket_times(result, kind: str) -> list:
    """Each bucket's sizes, padded rows and seconds in training steps (0 when it was
    loaded from a checkpoint of an earlier, killed invocation)."""
    return [{"kind": kind, "sizes": list(b.sizes), "padded": b.padded, "train_seconds": t}
            for b, t in zip(result.buckets, result.bucket_train_seconds)]


def _cells(arrays: dict) -> dict:
    """The first (lr, weight decay, init scale) cell: ``[len(T), seeds, ...]``."""
    return {k: v[:, 0, 0, 0] for k, v in arrays.items() if k != "T" and not k.startswith("infinite_")}


def summarize_infinite(arrays: dict) -> dict | None:
    """Means over seeds of the infinite-data line (first cell), or None without one."""
    if "infinite_test_loss" not in arrays:
        return None
    a = {k: arrays[f"infinite_{k}"][0, 0, 0, 0] for k in INFINITE_ARRAYS}  # [seeds, ...]
    return {"test_loss": _mean(a["test_loss"]), "test_loss_per_seed": a["test_loss"].tolist(),
            "heldout_batch_loss": _mean(a["train_loss"]),
            "W_norm": _mean(np.asarray(metrics.weight_norm(a))),
            "b_norm": _mean(np.sqrt(np.sum(a["b"] ** 2, axis=-1))),
            "feature_dim_max": _mean(a["feature_dim"].max(-1)),
            "n_learned_features": _mean(np.asarray(metrics.n_learned(a["feature_dim"]))),
            "n_diverged": int(np.sum(a["diverged"]))}


def summarize(arrays: dict, sweep: Sweep, cfg: TrainConfig, pad: float) -> dict:
    a = _cells(arrays)
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
                for c in zip(*np.nonzero(arrays["diverged"]))]
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
        "infinite": summarize_infinite(arrays),
        "pad_ratio": pad,
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


def draw(out, summary: dict | None = None) -> None:
    """Every figure of an ``smdd`` run from its ``runs.npz`` and ``summary.json``."""
    out = Path(out)
    summary = results.run_summary(out, summary)
    config = summary["config"]
    cfg, sparsity = presets.from_record(TrainConfig, config), float(config["sparsity"])
    arrays = results.load_arrays(out / "runs.npz")
    a, T = _cells(arrays), [int(t) for t in arrays["T"]]
    figures.dimensionality(T, a["feature_dim"], a["data_dim"], cfg.n_hidden, out / "dimensionality.png")
    pick = sorted(set(np.round(np.linspace(0, len(T) - 1, min(8, len(T)))).astype(int)))
    for shared, name in ((True, "vectors_shared_scale.png"), (False, "vectors_per_panel.png")):
        figures.vectors([T[i] for i in pick], a["W"][pick, 0], a["hidden"][pick, 0], out / name, shared)
    infinite = arrays["infinite_test_loss"][0, 0, 0, 0] if "infinite_test_loss" in arrays else None
    figures.loss_vs_T(T, a["test_loss"], a["train_loss"], zero_output_loss(cfg, sparsity), out / "test_loss.png",
                      infinite=infinite)
    figures.curve_vs_T(T, {"||W||_F": np.asarray(metrics.weight_norm(a)),
                           "||b||": np.sqrt(np.sum(a["b"] ** 2, axis=-1))},
                       "norm", "Weight and bias norms vs T", out / "norms.png")
