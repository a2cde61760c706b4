"""``smdd-phase``: test loss over dataset size T x hidden size m (SMDD's 2-D figure).

Henighan et al. 2023, "Superposition, Memorization, and Double Descent" (docs/sources.md §1): a
map of where double descent appears in T and m, 4 models per cell (paper preset). One
part per hidden size (``"m1"``, ``"m2"``, ...), each the sweep over T at that m.

It also measures, per m, how much the seeds' curves of the largest feature
dimensionality against T differ (``seed_spread``): Jermyn (seed 001) finds that "for
models with more hidden dimensions the dimensionality curves don't lie as cleanly on
top of each other". His curves are those of different sparsities against T (1 - S)
(``smdd-sparsity``, whose summary has the spread across sparsities; run it with
``--set n_hidden=M``); one sparsity here, so the seed-to-seed spread is the nearest
measure of "clean" this sweep gives (ours).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from jaxmem import metrics
from jaxmem.studies.smdd import figures
from jaxmem.studies.smdd.per_setting import (diverged_runs, distinct_labels, first_cell, run_variants,
                                             tuple_record)
from jaxmem.studies.smdd.smdd import _log_grid, zero_output_loss
from jaxmem.studies.smdd.sweep import Sweep
from jaxmem.train import TrainConfig
from jaxmem.validate import positive_int

DESCRIPTION = "SMDD phase diagram: test loss over dataset size T x hidden size m (1..8)"

#: preset -> (TrainConfig for m = 1, Sweep, hidden sizes m). ``quick`` (ours) is the reduced
#: setting (seed 000: n = 1,000, S = 0.99) with T to 1,000 and 2,500 steps, sized for 5
#: minutes on a 2-core CPU; ``paper`` has the paper's n = 10,000, S = 0.999 and 50,000
#: steps (seed) and its other training settings (``smdd``'s paper preset; lr, schedule and
#: weight decay from the paper's full text); m = 1..8, 4 seeds and the T grid are ours
#: (the seed lost the map's axes).
PRESETS = {
    "quick": (TrainConfig(n_features=1000, n_hidden=1, steps=2500),
              Sweep(T=_log_grid(3, 1000, 9), sparsity=0.99, data_seeds=2, n_test=5000),
              tuple(range(1, 9))),
    "paper": (TrainConfig(n_features=10_000, n_hidden=1, steps=50_000),
              Sweep(T=_log_grid(3, 100_000, 20), sparsity=0.999, data_seeds=4),
              tuple(range(1, 9))),
}
SEEDS = "data_seeds"
SET_NAMES = {2: "hidden_sizes"}


def record(cfg) -> dict:
    return tuple_record(cfg, SET_NAMES, learned_threshold=metrics.LEARNED_THRESHOLD)


def variants(cfg) -> list[tuple[str, TrainConfig, Sweep]]:
    """``(label, cfg, sweep)`` per hidden size m: part ``"m{m}"``."""
    train, sweep, ms = cfg
    labels = [f"m{positive_int('hidden size m', m)}" for m in ms]
    distinct_labels("hidden_sizes", labels)
    return [(label, dataclasses.replace(train, n_hidden=m), sweep) for label, m in zip(labels, ms)]


def run(cfg, store) -> None:
    run_variants(variants(cfg), store)


def bump_T(T, test_loss) -> int | str | None:
    """Where the double-descent bump sits: the T of the highest local maximum of the test
    loss after its first local minimum (the memorising side falls from the smallest T);
    ``"> T_max"`` if the loss still rises at the largest T, None if there is no bump."""
    loss = np.asarray(test_loss)
    first_min = next((i for i in range(1, len(loss)) if loss[i] <= loss[i - 1]
                      and (i == len(loss) - 1 or loss[i] <= loss[i + 1])), None)
    if first_min is None:
        return None
    rest = loss[first_min:]
    top = first_min + int(np.argmax(rest))
    if top == len(loss) - 1 and loss[-1] > loss[-2]:
        return f"> {T[-1]}"
    return int(T[top]) if rest.max() > loss[first_min] else None


def grids(parts: dict, ms) -> dict:
    """``[len(T), len(m)]`` means over seeds (first cell) of the test and train loss, the
    largest feature dimensionality and the learned features (``metrics.n_learned``)."""
    per_m = {}
    for m in ms:
        fdim = first_cell(parts[f"m{m}"], "feature_dim")  # [len(T), seeds, n]
        per_m[m] = {"test_loss": first_cell(parts[f"m{m}"], "test_loss"),
                    "train_loss": first_cell(parts[f"m{m}"], "train_loss"),
                    "feature_dim_max": fdim.max(-1), "n_learned": np.asarray(metrics.n_learned(fdim))}
    return {k: np.stack([np.nanmean(per_m[m][k], axis=-1) for m in ms], axis=1)
            for k in ("test_loss", "train_loss", "feature_dim_max", "n_learned")}


def seed_spread(fdim_max_TxS) -> dict:
    """How far apart the seeds' curves of one m are (ours, see the module doc): per T the
    largest minus the smallest seed's largest feature dimensionality ``[len(T), seeds]``;
    its mean over T, its largest, and the mean divided by the range of the seed-mean
    curve (largest minus smallest over T; a flat curve gives a large ratio)."""
    y = np.asarray(fdim_max_TxS, float)
    gap, mean = y.max(-1) - y.min(-1), np.nanmean(y, -1)
    return {"mean": float(np.mean(gap)), "max": float(np.max(gap)),
            "mean_over_range": float(np.mean(gap) / max(float(np.ptp(mean)), 1e-12)), "per_T": gap.tolist()}


def summarize(parts: dict, cfg) -> dict:
    train, sweep, ms = cfg
    g = grids(parts, ms)
    spread = {str(m): seed_spread(first_cell(parts[f"m{m}"], "feature_dim").max(-1)) for m in ms}
    return {"feature_dim_max_seed_spread": spread,
            # is m = 2's spread smaller than that of every larger m?
            "m2_smallest_seed_spread": (None if 2 not in ms or len([m for m in ms if m > 2]) == 0 else
                                        all(spread["2"]["mean"] < spread[str(m)]["mean"] for m in ms if m > 2)),
            "test_loss_grid": g["test_loss"], "train_loss_grid": g["train_loss"],
            "feature_dim_max_grid": g["feature_dim_max"], "n_learned_grid": g["n_learned"],
            "bump_T_per_m": {str(m): bump_T(sweep.T, g["test_loss"][:, j]) for j, m in enumerate(ms)},
            "zero_output_loss": zero_output_loss(train, sweep.sparsity),
            "diverged": diverged_runs(parts)}


def table_axes(summary: dict) -> dict:
    """``jaxmem show``: the grids' rows are T, their columns m."""
    T, ms = summary["config"]["Sweep"]["T"], summary["config"]["hidden_sizes"]
    return {f"{k}_grid": ("T", T, "m", ms) for k in ("test_loss", "train_loss", "feature_dim_max", "n_learned")}


def draw(parts: dict, summary: dict, cfg, out) -> None:
    """The phase diagram: heatmap and one line per m."""
    train, sweep, ms = cfg
    figures.phase_diagram(list(sweep.T), list(ms), grids(parts, ms)["test_loss"],
                          zero_output_loss(train, sweep.sparsity), Path(out))
    fdim = {m: first_cell(parts[f"m{m}"], "feature_dim").max(-1) for m in ms}
    figures.feature_dim_by_m(list(sweep.T), fdim, {m: seed_spread(v)["mean"] for m, v in fdim.items()},
                             Path(out) / "feature_dim_by_m.png")
