"""``smdd-repeat``: is a datapoint repeated R times stored beside the generalising features?

Jermyn's comment on SMDD (SPEC §1): with 2-3 repeats nothing changes; with more, the
model stores the point, and the boundary follows R ≈ 0.4 T / n. A point counts as stored
when the model reconstructs it: its loss below ``STORED_FRACTION`` of ``||x||^2``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from jaxmem import data, figures, results
from jaxmem.experiments import presets
from jaxmem.experiments.smdd import _log_grid, config_dict
from jaxmem.experiments.variants import diverged_runs, run_variants
from jaxmem.sweep import Sweep, _keys, dataset_key
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


def point_losses(W, b, x) -> np.ndarray:
    """Squared error of one example ``x [n]`` under ``W [..., m, n]``, ``b [..., n]``."""
    out = np.maximum(np.einsum("...mn,...m->...n", W, W @ x) + b, 0.0)
    return np.sum((x - out) ** 2, axis=-1)


def run(preset_name: str, out, seeds: int | None = None, resume: bool = False, progress=None) -> dict:
    cfg, sweep, Rs = presets.pick(PRESETS, preset_name)
    sweep = presets.with_seeds(sweep, seeds)
    out = Path(out)
    config = dict(config_dict(cfg, sweep), repeats=list(Rs), stored_fraction=STORED_FRACTION)
    variants = [(f"R{R}", cfg, dataclasses.replace(sweep, repeat=(1, R))) for R in Rs]
    saved = run_variants(variants, out, config, resume, progress)
    _, stored = _stored(saved, cfg, sweep, Rs, out)
    boundary = [R * cfg.n_features / 0.4 for R in Rs]  # T where R = 0.4 T / n
    summary = {"experiment": "smdd-repeat", "preset": preset_name, **results.device_info(),
               "n_runs": len(Rs) * len(sweep.T) * sweep.data_seeds,
               "wall_seconds": float(saved["wall_seconds"]), "compile_seconds": float(saved["compile_seconds"]),
               "config": config,
               "results": {"stored_fraction_grid": stored,  # [len(T), len(R)]
                           "largest_T_stored": {str(R): _largest_stored(sweep.T, stored[:, j])
                                                for j, R in enumerate(Rs)},
                           "boundary_T_predicted": dict(zip(map(str, Rs), boundary)),
                           "diverged": diverged_runs(saved, [v[0] for v in variants])}}
    results.save_json(out / "summary.json", summary)
    figures.repeat_map(list(sweep.T), list(Rs), stored, cfg.n_features, out / "repeat_map.png")
    return summary


def _stored(saved, cfg, sweep, Rs, out):
    """Loss of the repeated point (row 0 of every set) and whether it is stored."""
    data_root = _keys(sweep)[0]
    losses = np.zeros((len(sweep.T), len(Rs), sweep.data_seeds))
    for iT, T in enumerate(sweep.T):
        for s in range(sweep.data_seeds):
            x0 = np.asarray(data.sparse_features(dataset_key(data_root, T, s), 1, cfg.n_features,
                                                 sweep.sparsity))[0]
            for j, R in enumerate(Rs):
                W, b = saved[f"R{R}_W"][iT, 0, 0, 0, s], saved[f"R{R}_b"][iT, 0, 0, 0, s]
                losses[iT, j, s] = point_losses(W, b, x0) / max(np.sum(x0**2), 1e-12)
    stored = (losses < STORED_FRACTION).mean(-1)
    results.save_arrays(out / "repeated_point.npz", {"relative_loss": losses, "T": np.array(sweep.T),
                                                    "R": np.array(Rs)})
    return losses, stored


def _largest_stored(T, stored_T) -> int | None:
    hits = [t for t, f in zip(T, stored_T) if f >= 0.5]
    return int(max(hits)) if hits else None
