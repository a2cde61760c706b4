"""``smdd-repeat``: is a datapoint repeated R times stored beside the generalising features?

Jermyn's comment on SMDD (docs/sources.md §1, seed 001): "When a datapoint appears a small
number of times (2-3) the phenomenology is the same as in this paper, but with more
repeats models switch to learning a combination of datapoints and generalizing
features". He gives no formula for where the switch lies; this maps it over (T, R) and
reports, per R, the largest T (and T / n) at which the point is stored: measured, with
no predicted line. A point counts as stored when the model reconstructs it: its loss
below ``STORED_FRACTION`` of ``||x||^2`` (ours).

``smdd-repeat-slot`` (``summarize_slot``, ``draw_slot``) is Jermyn's own run: T = 30,000
(seed; his n and S are not given, we assume the paper's), one point repeated 5 times,
which "is embedded alongside four generalizing features and suppresses the fifth". It
counts each run's learned features (``metrics.n_learned``) outside the point's non-zero
features and asks whether the point takes a pentagon slot: stored,
with one learned feature fewer than the pentagon's 5. Its quick preset is the reduced
setting (n = 1,000, S = 0.99) at T = 3,000: there n (1 - S) = 10 as in the paper's setting,
so T (1 - S) = 30 and T / n = 3 both give T = 3,000.

Both train one part per R (``"R1"``, ``"R2"``, ...: the sweep with the first point of
every set repeated R times) and then part ``"repeated_point"``: the point ``x0
[data_seed, feature]`` and its loss relative to ``||x0||^2``, ``relative_loss [T, R,
data_seed]``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from jaxmem import data, metrics
from jaxmem.store import Part
from jaxmem.studies.smdd import figures
from jaxmem.studies.smdd import figures_extra as figures_smdd_extra
from jaxmem.studies.smdd.per_setting import diverged_runs, distinct_labels, run_variants, tuple_record
from jaxmem.studies.smdd.smdd import _log_grid
from jaxmem.studies.smdd.sweep import Sweep, data_key
from jaxmem.train import TrainConfig
from jaxmem.validate import positive_int

DESCRIPTION = "SMDD with one datapoint repeated R times: is it stored, over R x T (Jermyn's 2-3 repeats)"
STORED_FRACTION = 0.5

#: quick (ours) uses n = 200, S = 0.95 and 2,500 steps, a scaled setting: T = 30..6,000
#: then spans T / n = 0.15..30 and T (1 - S) = 1.5..300 in a grid a CPU trains in minutes
#: (Jermyn's T = 30,000 at n = 10,000 is T / n = 3, T (1 - S) = 30). paper: the comment's
#: n and S (seed), with the paper's 50,000 steps; its T grid and Rs are ours.
PRESETS = {
    "quick": (TrainConfig(n_features=200, n_hidden=2, steps=2500),
              Sweep(T=_log_grid(30, 6000, 8), sparsity=0.95, data_seeds=2, n_test=2000), (1, 2, 3, 5, 8, 13)),
    "paper": (TrainConfig(n_features=10_000, n_hidden=2, steps=50_000),
              Sweep(T=_log_grid(1000, 100_000, 10), sparsity=0.999, data_seeds=4), (1, 2, 3, 5, 8, 13)),
}
SEEDS = "data_seeds"
SET_NAMES = {2: "repeats"}


#: smdd-repeat-slot's presets: (TrainConfig, Sweep, repeats R). Jermyn's comment gives T
#: and R = 5 only (seed); n and S are the paper's (assumed, ours); his steps, seeds and the
#: other Rs are not given: we keep the paper's
#: training (50,000 steps for ``paper``, 2,500 for ``quick``, where smdd-wd's quick preset
#: already learns the pentagon by T = 1,265) and add T / 3 to see where R = 2, 3 start to matter.
SLOT_PRESETS = {
    "quick": (TrainConfig(n_features=1000, n_hidden=2, steps=2500),
              Sweep(T=(1000, 3000), sparsity=0.99, data_seeds=3, n_test=2000), (1, 2, 3, 5)),
    "paper": (TrainConfig(n_features=10_000, n_hidden=2, steps=50_000),
              Sweep(T=(10_000, 30_000), sparsity=0.999, data_seeds=4), (1, 2, 3, 5, 8)),
}
PENTAGON = 5  # features the m = 2 model learns at large T (SMDD)


def record(cfg) -> dict:
    return tuple_record(cfg, SET_NAMES, stored_fraction=STORED_FRACTION, learned_threshold=metrics.LEARNED_THRESHOLD)


def record_slot(cfg) -> dict:
    return {**record(cfg), "pentagon": PENTAGON}


def point_losses(W, b, x) -> np.ndarray:
    """Squared error of one example ``x [n]`` under ``W [..., m, n]``, ``b [..., n]``."""
    out = np.maximum(np.einsum("...mn,...m->...n", W, W @ x) + b, 0.0)
    return np.sum((x - out) ** 2, axis=-1)


def angle_gaps(v_Kx2) -> np.ndarray:
    """Angles (degrees) between angularly consecutive 2-D directions ``[K, 2]`` -> ``[K]``;
    ``K`` directions in a regular K-gon have every gap ``360 / K``."""
    a = np.sort(np.degrees(np.arctan2(v_Kx2[:, 1], v_Kx2[:, 0])))
    return np.diff(np.concatenate([a, a[:1] + 360.0]))


def slot_geometry(W_MxN, b_N, x0_N, threshold: float = metrics.LEARNED_THRESHOLD) -> dict:
    """How one run holds the repeated point ``x0``: learned features (``metrics``'
    dimensionality above ``threshold``) in all and outside ``x0``'s non-zeros, the
    point's relative loss and whether it is stored, whether it takes a pentagon slot
    (stored, with ``PENTAGON - 1`` learned features outside it), and for m = 2 the largest
    deviation from ``360 / K`` of the angle gaps between the K directions made of those
    features and, if stored, the point's hidden vector ``W x0`` (0 for a regular K-gon,
    None for K < 2)."""
    dims = np.asarray(metrics.feature_dimensionality({"W": np.asarray(W_MxN)}))
    learned, support = dims > threshold, np.asarray(x0_N) != 0
    rel = float(point_losses(W_MxN, b_N, x0_N) / max(float(np.sum(np.asarray(x0_N) ** 2)), 1e-12))
    stored = rel < STORED_FRACTION
    outside = int(np.sum(learned & ~support))
    out = {"n_learned": int(np.sum(learned)), "n_learned_outside": outside, "support": int(np.sum(support)),
           "relative_loss": rel, "stored": bool(stored), "slot": bool(stored and outside == PENTAGON - 1),
           "pentagon": bool(not stored and outside == PENTAGON)}
    if W_MxN.shape[0] == 2:
        dirs = np.concatenate([W_MxN[:, learned & ~support].T, (W_MxN @ x0_N)[None]] if stored
                              else [W_MxN[:, learned & ~support].T])
        out["gap_error_deg"] = (float(np.max(np.abs(angle_gaps(dirs) - 360.0 / len(dirs)))) if len(dirs) > 1
                                else None)  # no polygon of fewer than 2 directions
    return out


def variants(cfg) -> list[tuple[str, TrainConfig, Sweep]]:
    """``(label, cfg, sweep)`` per R: part ``"R{R}"``, the first point of each set repeated R times."""
    train, sweep, Rs = cfg
    labels = [f"R{positive_int('repeats R', R)}" for R in Rs]
    distinct_labels("repeats", labels)
    return [(label, train, dataclasses.replace(sweep, repeat=(1, R))) for label, R in zip(labels, Rs)]


def repeated_point(cfg, parts: dict) -> Part:
    """Part ``"repeated_point"``: the repeated point (row 0 of every training set of a
    seed), ``x0 [data_seed, feature]``, and its loss relative to ``||x0||^2`` under each
    run, ``relative_loss [T, R, data_seed]``."""
    train, sweep, Rs = cfg
    x0 = np.stack([np.asarray(data.sparse_features(data_key(sweep, s), 1, train.n_features, sweep.sparsity))[0]
                   for s in range(sweep.data_seeds)])
    losses = np.zeros((len(sweep.T), len(Rs), sweep.data_seeds))
    for iT in range(len(sweep.T)):
        for j, R in enumerate(Rs):
            for s in range(sweep.data_seeds):
                W, b = parts[f"R{R}"]["W"][iT, 0, 0, 0, s], parts[f"R{R}"]["b"][iT, 0, 0, 0, s]
                losses[iT, j, s] = point_losses(W, b, x0[s]) / max(np.sum(x0[s] ** 2), 1e-12)
    return Part({"x0": x0, "relative_loss": losses},
                {"x0": ("data_seed", "feature"), "relative_loss": ("T", "R", "data_seed")},
                {"T": sweep.T, "R": Rs, "data_seed": range(sweep.data_seeds)})


def run(cfg, store) -> None:
    """Both experiments' training: one part per R, then the repeated point."""
    parts = run_variants(variants(cfg), store)
    store.part("repeated_point", lambda: repeated_point(cfg, parts))


def _runs(parts: dict) -> dict:
    """The R parts alone (for ``diverged_runs``)."""
    return {k: v for k, v in parts.items() if k != "repeated_point"}


def geometry(parts: dict, cfg) -> list:
    """``slot_geometry`` of every run, ``[len(T)][len(R)][seeds]``."""
    _, sweep, Rs = cfg
    x0 = parts["repeated_point"]["x0"]
    return [[[slot_geometry(parts[f"R{R}"]["W"][iT, 0, 0, 0, s], parts[f"R{R}"]["b"][iT, 0, 0, 0, s], x0[s])
              for s in range(sweep.data_seeds)] for R in Rs] for iT in range(len(sweep.T))]


def stored_fraction(parts: dict) -> np.ndarray:
    """Fraction of seeds whose repeated point is stored, ``[len(T), len(R)]``."""
    return (parts["repeated_point"]["relative_loss"] < STORED_FRACTION).mean(-1)


def _largest_stored(T, stored_T) -> int | None:
    hits = [t for t, f in zip(T, stored_T) if f >= 0.5]
    return int(max(hits)) if hits else None


def summarize(parts: dict, cfg) -> dict:
    train, sweep, Rs = cfg
    stored, runs = stored_fraction(parts), geometry(parts, cfg)

    def grid(key):  # [len(T), len(R)]: mean over seeds
        return np.array([[np.mean([r[key] for r in cell]) for cell in row] for row in runs])

    return {"stored_fraction_grid": stored,  # [len(T), len(R)]
            "largest_T_stored": {str(R): _largest_stored(sweep.T, stored[:, j]) for j, R in enumerate(Rs)},
            # the same boundary in T / n, and R over it (measured; the sources give no formula)
            "largest_T_over_n_stored": {str(R): (None if t is None else t / train.n_features)
                                        for R, t in zip(Rs, (_largest_stored(sweep.T, stored[:, j])
                                                             for j in range(len(Rs))))},
            "n_learned_grid": grid("n_learned"),  # [len(T), len(R)], metrics.n_learned
            "n_learned_outside_grid": grid("n_learned_outside"),  # outside the point's non-zeros
            "slot_fraction_grid": grid("slot"),  # stored with PENTAGON - 1 features beside it
            "diverged": diverged_runs(_runs(parts))}


def table_axes(summary: dict) -> dict:
    """``jaxmem show``: the grids' rows are T, their columns R."""
    T, Rs = summary["config"]["Sweep"]["T"], summary["config"]["repeats"]
    return {f"{k}_grid": ("T", T, "R", Rs) for k in ("stored_fraction", "n_learned", "n_learned_outside",
                                                     "slot_fraction")}


def draw(parts: dict, summary: dict, cfg, out) -> None:
    """The map of the stored fraction over (T, R)."""
    train, sweep, Rs = cfg
    figures.repeat_map(list(sweep.T), list(Rs), stored_fraction(parts), train.n_features,
                       Path(out) / "repeat_map.png")


def summarize_slot(parts: dict, cfg) -> dict:
    """``smdd-repeat-slot``: Jermyn's run (see the module doc), per T, R and seed."""
    train, sweep, Rs = cfg
    runs = geometry(parts, cfg)
    by_cell = []
    for iT, T in enumerate(sweep.T):
        base = runs[iT][0] if Rs[0] == 1 else None
        for j, R in enumerate(Rs):
            cell = runs[iT][j]
            by_cell.append({"T": T, "R": R, "T_over_n": T / train.n_features,
                            "T_times_1_minus_S": T * (1 - sweep.sparsity),
                            **{k: float(np.mean([r[k] for r in cell]))
                               for k in ("n_learned", "n_learned_outside", "relative_loss", "stored", "slot",
                                         "pentagon")},
                            # seeds whose learned-feature count or storage differ from R = 1 on the same data
                            "differs_from_R1": (None if base is None else
                                                float(np.mean([(r["stored"], r["n_learned_outside"]) !=
                                                               (b["stored"], b["n_learned_outside"])
                                                               for r, b in zip(cell, base)]))),
                            "per_seed": cell})
    return {"by_cell": by_cell, "diverged": diverged_runs(_runs(parts))}


def draw_slot(parts: dict, summary: dict, cfg, out) -> None:
    """``smdd-repeat-slot``'s figure: the largest T's runs, two seeds per R."""
    _, sweep, Rs = cfg
    iT, x0 = len(sweep.T) - 1, parts["repeated_point"]["x0"]
    panels = []
    for R in Rs:
        for s in range(min(2, sweep.data_seeds)):
            W = parts[f"R{R}"]["W"][iT, 0, 0, 0, s]
            r = slot_geometry(W, parts[f"R{R}"]["b"][iT, 0, 0, 0, s], x0[s])
            panels.append((f"T={sweep.T[iT]}, R={R}, seed {s}: {r['n_learned_outside']} features"
                           + (" + point" if r["stored"] else ""), W, x0[s] != 0, W @ x0[s]))
    figures_smdd_extra.repeat_slots(panels, Path(out) / "repeat_slots.png")
