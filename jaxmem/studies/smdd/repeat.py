"""``smdd-repeat``: is a datapoint repeated R times stored beside the generalising features?

Jermyn's comment on SMDD (SPEC §1): with 2-3 repeats nothing changes; with more, the
model stores the point, and the boundary follows R ≈ 0.4 T / n. A point counts as stored
when the model reconstructs it: its loss below ``STORED_FRACTION`` of ``||x||^2``.

``smdd-repeat-slot`` (``run_slot``) is Jermyn's own run: T = 30,000 at the paper's n and S,
one point repeated 5 times, which "is embedded alongside four generalizing features and
suppresses the fifth". It counts each run's learned features (``metrics.n_learned``) outside
the point's non-zero features and asks whether the point takes a pentagon slot: stored,
with one learned feature fewer than the pentagon's 5. Its quick preset is the reduced
setting (n = 1,000, S = 0.99) at T = 3,000: there n (1 - S) = 10 as in the paper's setting,
so T (1 - S) = 30 and T / n = 3 both give T = 3,000.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from jaxmem import data, metrics, presets, results
from jaxmem.studies.smdd import figures
from jaxmem.studies.smdd import figures_extra as figures_smdd_extra
from jaxmem.studies.smdd.per_setting import diverged_runs, run_variants
from jaxmem.studies.smdd.smdd import _log_grid, config_dict
from jaxmem.sweep import Sweep, data_key
from jaxmem.train import TrainConfig

DESCRIPTION = "SMDD with one datapoint repeated R times: stored or not, over R x T, vs R = 0.4 T / n"
STORED_FRACTION = 0.5

#: quick uses n = 200, S = 0.95 so that the boundary R = 0.4 T / n (T = 500..12,500 for
#: R = 1..25) falls inside a grid a CPU trains in minutes; paper is the comment's setting.
PRESETS = {
    "quick": (TrainConfig(n_features=200, n_hidden=2, steps=2500),
              Sweep(T=_log_grid(30, 6000, 8), sparsity=0.95, data_seeds=2, n_test=2000), (1, 2, 3, 5, 8, 13)),
    "paper": (TrainConfig(n_features=10_000, n_hidden=2, steps=50_000),
              Sweep(T=_log_grid(1000, 100_000, 10), sparsity=0.999, data_seeds=4), (1, 2, 3, 5, 8, 13)),
}


#: smdd-repeat-slot's presets: (TrainConfig, Sweep, repeats R). Jermyn's comment gives T,
#: n, S and R = 5 only; his steps, seeds and the other Rs are not given: we keep the paper's
#: training (50,000 steps for ``paper``, 2,500 for ``quick``, where smdd-wd's quick preset
#: already learns the pentagon by T = 1,265) and add T / 3 to see where R = 2, 3 start to matter.
SLOT_PRESETS = {
    "quick": (TrainConfig(n_features=1000, n_hidden=2, steps=2500),
              Sweep(T=(1000, 3000), sparsity=0.99, data_seeds=3, n_test=2000), (1, 2, 3, 5)),
    "paper": (TrainConfig(n_features=10_000, n_hidden=2, steps=50_000),
              Sweep(T=(10_000, 30_000), sparsity=0.999, data_seeds=4), (1, 2, 3, 5, 8)),
}
PENTAGON = 5  # features the m = 2 model learns at large T (SMDD)


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


def preset(name: str, seeds: int | None = None, overrides: dict | None = None, table: dict | None = None):
    """``(cfg, sweep, Rs)`` of preset ``name`` in ``table`` (``PRESETS`` by default) with
    ``--seeds`` and ``--set`` (``repeats=1,2,5`` sets ``Rs``)."""
    cfg, sweep, Rs = presets.pick(PRESETS if table is None else table, name)
    return presets.override((cfg, presets.with_seeds(sweep, seeds), Rs), overrides, names={2: "repeats"})


def run_slot(preset_name: str, out, seeds: int | None = None, resume: bool = False, progress=None,
             overrides: dict | None = None) -> dict:
    """``smdd-repeat-slot``: Jermyn's run (see the module doc), per T, R and seed."""
    cfg, sweep, Rs = preset(preset_name, seeds, overrides, table=SLOT_PRESETS)
    out = Path(out)
    config = dict(config_dict(cfg, sweep), repeats=list(Rs), stored_fraction=STORED_FRACTION, pentagon=PENTAGON)
    presets.record_overrides(config, overrides)
    variants = [(f"R{R}", cfg, dataclasses.replace(sweep, repeat=(1, R))) for R in Rs]
    saved = run_variants(variants, out, config, resume, progress)
    x0 = _repeated_points(cfg, sweep)
    runs = [[[slot_geometry(saved[f"R{R}_W"][iT, 0, 0, 0, s], saved[f"R{R}_b"][iT, 0, 0, 0, s], x0[iT, s])
              for s in range(sweep.data_seeds)] for R in Rs] for iT in range(len(sweep.T))]
    by_cell = []
    for iT, T in enumerate(sweep.T):
        base = runs[iT][0] if Rs[0] == 1 else None
        for j, R in enumerate(Rs):
            cell = runs[iT][j]
            by_cell.append({"T": T, "R": R, "T_over_n": T / cfg.n_features, "T_times_1_minus_S": T * (1 - sweep.sparsity),
                            "R_over_0.4_T_over_n": R / (0.4 * T / cfg.n_features),
                            **{k: float(np.mean([r[k] for r in cell]))
                               for k in ("n_learned", "n_learned_outside", "relative_loss", "stored", "slot", "pentagon")},
                            # seeds whose learned-feature count or storage differ from R = 1 on the same data
                            "differs_from_R1": (None if base is None else
                                                float(np.mean([(r["stored"], r["n_learned_outside"]) !=
                                                               (b["stored"], b["n_learned_outside"])
                                                               for r, b in zip(cell, base)]))),
                            "per_seed": cell})
    summary = results.summary("smdd-repeat-slot", preset_name, {"n_runs": len(Rs) * len(sweep.T) * sweep.data_seeds,
               "wall_seconds": float(saved["wall_seconds"]), "compile_seconds": float(saved["compile_seconds"]),
               "config": config,
               "results": {"by_cell": by_cell, "diverged": diverged_runs(saved, [v[0] for v in variants])}})
    results.save_arrays(out / "repeated_points.npz", {"x0": x0, "T": np.array(sweep.T)})  # for draw_slot
    results.save_json(out / "summary.json", summary)
    draw_slot(out, summary)
    return summary


def draw_slot(out, summary: dict | None = None) -> None:
    """``smdd-repeat-slot``'s figure from its ``runs.npz``, ``repeated_points.npz`` and
    ``summary.json``: the largest T's runs, two seeds per R."""
    out = Path(out)
    summary = results.run_summary(out, summary)
    config, saved = summary["config"], results.load_arrays(out / "runs.npz")
    x0 = results.load_arrays(out / "repeated_points.npz")["x0"]
    T, Rs = [int(t) for t in config["T"]], [int(R) for R in config["repeats"]]
    iT = len(T) - 1
    cells = {int(c["R"]): c["per_seed"] for c in summary["results"]["by_cell"] if int(c["T"]) == T[iT]}
    figures_smdd_extra.repeat_slots(
        [(f"T={T[iT]}, R={R}, seed {s}: {cells[R][s]['n_learned_outside']} features"
          + (" + point" if cells[R][s]["stored"] else ""),
          saved[f"R{R}_W"][iT, 0, 0, 0, s], x0[iT, s] != 0, saved[f"R{R}_W"][iT, 0, 0, 0, s] @ x0[iT, s])
         for R in Rs for s in range(min(2, int(config["data_seeds"])))], out / "repeat_slots.png")


def _repeated_points(cfg, sweep) -> np.ndarray:
    """The repeated point (row 0 of every training set of a seed), ``[len(T), seeds, n]``."""
    x0 = np.stack([np.asarray(data.sparse_features(data_key(sweep, s), 1, cfg.n_features, sweep.sparsity))[0]
                   for s in range(sweep.data_seeds)])
    return np.broadcast_to(x0, (len(sweep.T),) + x0.shape)


def run(preset_name: str, out, seeds: int | None = None, resume: bool = False, progress=None,
        overrides: dict | None = None) -> dict:
    cfg, sweep, Rs = preset(preset_name, seeds, overrides)
    out = Path(out)
    config = presets.record_overrides(dict(config_dict(cfg, sweep), repeats=list(Rs), stored_fraction=STORED_FRACTION),
                                      overrides)
    variants = [(f"R{R}", cfg, dataclasses.replace(sweep, repeat=(1, R))) for R in Rs]
    saved = run_variants(variants, out, config, resume, progress)
    x0 = _repeated_points(cfg, sweep)
    _, stored = _stored(saved, x0, sweep, Rs, out)
    geometry = [[[slot_geometry(saved[f"R{R}_W"][iT, 0, 0, 0, s], saved[f"R{R}_b"][iT, 0, 0, 0, s], x0[iT, s])
                  for s in range(sweep.data_seeds)] for R in Rs] for iT in range(len(sweep.T))]

    def grid(key):  # [len(T), len(R)]: mean over seeds
        return np.array([[np.mean([r[key] for r in cell]) for cell in row] for row in geometry])

    boundary = [R * cfg.n_features / 0.4 for R in Rs]  # T where R = 0.4 T / n
    summary = results.summary("smdd-repeat", preset_name, {"n_runs": len(Rs) * len(sweep.T) * sweep.data_seeds,
               "wall_seconds": float(saved["wall_seconds"]), "compile_seconds": float(saved["compile_seconds"]),
               "config": config,
               "results": {"stored_fraction_grid": stored,  # [len(T), len(R)]
                           "largest_T_stored": {str(R): _largest_stored(sweep.T, stored[:, j])
                                                for j, R in enumerate(Rs)},
                           "boundary_T_predicted": dict(zip(map(str, Rs), boundary)),
                           "n_learned_grid": grid("n_learned"),  # [len(T), len(R)], metrics.n_learned
                           "n_learned_outside_grid": grid("n_learned_outside"),  # outside the point's non-zeros
                           "slot_fraction_grid": grid("slot"),  # stored with PENTAGON - 1 features beside it
                           "diverged": diverged_runs(saved, [v[0] for v in variants])}})
    results.save_json(out / "summary.json", summary)
    draw(out, summary)
    return summary


def draw(out, summary: dict | None = None) -> None:
    """``smdd-repeat``'s map from its ``summary.json``."""
    out = Path(out)
    summary = results.run_summary(out, summary)
    config = summary["config"]
    figures.repeat_map([int(t) for t in config["T"]], [int(R) for R in config["repeats"]],
                       np.asarray(summary["results"]["stored_fraction_grid"], float), int(config["n_features"]),
                       out / "repeat_map.png")


def _stored(saved, x0, sweep, Rs, out):
    """Loss of the repeated point (row 0 of every set, ``x0 [len(T), seeds, n]``) and
    whether it is stored."""
    losses = np.zeros((len(sweep.T), len(Rs), sweep.data_seeds))
    for iT in range(len(sweep.T)):
        for s in range(sweep.data_seeds):
            for j, R in enumerate(Rs):
                W, b = saved[f"R{R}_W"][iT, 0, 0, 0, s], saved[f"R{R}_b"][iT, 0, 0, 0, s]
                losses[iT, j, s] = point_losses(W, b, x0[iT, s]) / max(np.sum(x0[iT, s] ** 2), 1e-12)
    stored = (losses < STORED_FRACTION).mean(-1)
    results.save_arrays(out / "repeated_point.npz", {"relative_loss": losses, "T": np.array(sweep.T),
                                                    "R": np.array(Rs)})
    return losses, stored


def _largest_stored(T, stored_T) -> int | None:
    hits = [t for t, f in zip(T, stored_T) if f >= 0.5]
    return int(max(hits)) if hits else None
