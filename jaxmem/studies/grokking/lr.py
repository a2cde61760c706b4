"""``grokking-lr``: what learning rate, optimizer, loss and initial scale do to grokking
on the explorable's main modular-addition model (docs/sources.md §3, the discussion of Vaintrob &
Kaarel).

Claims checked: larger learning rates grok faster and more reliably up to an optimum
that depends on p (a large lr may generalise at once); Adam beats SGD at matched step
counts; cross-entropy and MSE behave differently; a small initial weight norm can stand
in for weight decay. Each grid (its lrs x weight decays x init scales x seeds) is one
``run_grid`` (``modular_addition.train_seeds``) on the faithful model of
``modular-addition`` (``ModularConfig``) with only the grid's own settings changed, and
one part of the results, named by the grid.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from jaxmem.store import Part
from jaxmem.studies.grokking import figures as figures_grok
from jaxmem.studies.grokking import grok
from jaxmem.studies.grokking.modular_addition import ModularConfig, train_seeds
from jaxmem.validate import finite_values, in_range, one_of

DESCRIPTION = "Modular addition (faithful model): time to generalise vs lr at p = 67 and 113, Adam vs SGD, CE vs MSE, init scale"


@dataclasses.dataclass(frozen=True)
class LrGrid:
    """One ``run_grid``: ``lrs`` x ``weight_decays`` x ``init_scales`` x seeds at modulus
    ``p``; ``name`` names its part of the results."""

    name: str
    lrs: tuple[float, ...]
    optimizer: str = "adamw"
    loss: str = "ce"
    p: int = 67
    weight_decays: tuple[float, ...] = (1.0,)
    init_scales: tuple[float, ...] = (1.0,)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ValueError(f"a grid's name must be a non-empty string without '/', got {self.name!r}")
        what = f"grid {self.name!r}:"
        one_of(f"{what} optimizer", self.optimizer, grok.OPTIMIZERS)
        one_of(f"{what} loss", self.loss, grok.LOSSES)
        finite_values(f"{what} weight_decays", self.weight_decays)
        for field in ("lrs", "init_scales"):
            values = finite_values(f"{what} {field}", getattr(self, field))
            if min(values) <= 0:
                raise ValueError(f"{what} {field} must be positive, got {values!r}")


@dataclasses.dataclass(frozen=True)
class GrokLrConfig:
    """``model``: the faithful setting every grid starts from; SGD uses momentum
    ``sgd_momentum`` (the discussion gives none; 0.9 here)."""

    model: ModularConfig = dataclasses.field(default_factory=lambda: ModularConfig(seeds=4))
    grids: tuple[LrGrid, ...] = (
        LrGrid("adam_p67", (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)),
        LrGrid("adam_p113", (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3), p=113),
        LrGrid("sgd", (0.01, 0.03, 0.1, 0.3, 1.0, 3.0), optimizer="sgd"),
        LrGrid("mse", (1e-4, 1e-3, 1e-2, 0.1), loss="mse"),
        LrGrid("init_scale", (1e-3, 1e-2), weight_decays=(0.0,), init_scales=(0.03, 0.1, 0.3, 1.0)),
    )
    sgd_momentum: float = 0.9

    def __post_init__(self):
        names = [g.name for g in self.grids]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"grids must be at least one, with distinct names, got {names}")
        in_range("sgd_momentum", self.sgd_momentum, 0.0, 1.0)
        for g in self.grids:
            self.grid_model(g)  # ModularConfig's checks (p)

    @property
    def seeds(self) -> int:
        return self.model.seeds

    def grid_model(self, grid: LrGrid) -> ModularConfig:
        return dataclasses.replace(self.model, p=grid.p, loss=grid.loss, optimizer=grid.optimizer)


#: quick: float32 (about 3x faster than the source's float64 here), 10,000 steps, 2 seeds
#: and fewer lrs; the source's float64 and 50,000 steps are the paper preset's
QUICK = GrokLrConfig(
    model=ModularConfig(seeds=2, steps=10_000, n_history=100, precision="float32"),
    grids=(LrGrid("adam_p67", (1e-4, 1e-3, 1e-2, 0.1, 0.3)),
           LrGrid("adam_p113", (1e-3, 1e-2, 0.1), p=113),
           LrGrid("sgd", (0.1, 1.0), optimizer="sgd"),
           LrGrid("mse", (1e-3, 1e-2), loss="mse"),
           LrGrid("init_scale", (1e-2,), weight_decays=(0.0,), init_scales=(0.1, 0.3))))
PRESETS = {"quick": QUICK, "paper": GrokLrConfig()}
#: ``--seeds`` sets the model's seed count
SEEDS = "model.seeds"


def record(cfg: GrokLrConfig) -> dict:
    """The config, and the constants of the analysis beside it."""
    return {**dataclasses.asdict(cfg), "accuracy_threshold": grok.ACCURACY_THRESHOLD, "grok_delay": grok.GROK_DELAY}


#: a grid's dims, in ``runs_of``'s order
GRID = ("lr", "weight_decay", "init_scale", "seed")


def runs_of(grid: LrGrid, seeds: int) -> dict:
    """Each run's settings, flattened in ``GRID``'s order."""
    axes = np.meshgrid(grid.lrs, grid.weight_decays, grid.init_scales, np.arange(seeds), indexing="ij")
    return dict(zip(GRID, (a.ravel() for a in axes)))


def train_grid(cfg: GrokLrConfig, grid: LrGrid, progress=None, checkpoint_dir=None):
    """``grid``'s runs (in the order of ``runs_of``) by ``train_seeds``: (``GrokResult``,
    compile s, train s)."""
    m = cfg.grid_model(grid)
    axes = {"lr": list(grid.lrs), "weight_decay": list(grid.weight_decays), "init_scale": list(grid.init_scales),
            "b1": [cfg.sgd_momentum if grid.optimizer == "sgd" else m.b1]}
    with m.precision_context():
        return train_seeds(m, "factored", axes, progress=progress, checkpoint_dir=checkpoint_dir)


def grid_part(cfg: GrokLrConfig, grid: LrGrid, store) -> Part:
    """One grid: accuracies ``[GRID..., step]`` and each run's outcomes (``grok.outcomes``)."""
    res, compile_s, run_s = train_grid(cfg, grid, store.progress, store.checkpoints(grid.name))
    steps = cfg.model.grok_config.history_steps
    flat = {**grok.outcomes(res.history, steps), "test_accuracy": np.asarray(res.history.test_accuracy),
            "train_accuracy": np.asarray(res.history.train_accuracy), "diverged": res.diverged}
    shape = (len(grid.lrs), len(grid.weight_decays), len(grid.init_scales), cfg.seeds)
    arrays = {k: np.asarray(v).reshape(shape + np.shape(v)[1:]) for k, v in flat.items()}
    dims = {k: GRID + ("step",) * (v.ndim - len(GRID)) for k, v in arrays.items()}
    coords = {"lr": grid.lrs, "weight_decay": grid.weight_decays, "init_scale": grid.init_scales,
              "seed": range(cfg.seeds), "step": steps}
    return Part(arrays, dims, coords, info={"train_seconds": run_s}, n_runs=int(np.prod(shape)),
                compile_seconds=compile_s)


def run(cfg: GrokLrConfig, store) -> None:
    """A part per grid, named by the grid."""
    for grid in cfg.grids:
        store.part(grid.name, lambda g=grid: grid_part(cfg, g, store))


def flat(part: Part, grid: LrGrid, seeds: int) -> dict:
    """A grid's per-run arrays and settings, flattened in ``runs_of``'s order."""
    return {**runs_of(grid, seeds), **{k: v.reshape((-1,) + v.shape[len(GRID):]) for k, v in part.arrays.items()}}


def summarize(parts: dict, cfg: GrokLrConfig) -> dict:
    out = {}
    for grid in cfg.grids:
        a = flat(parts[grid.name], grid, cfg.seeds)
        out[grid.name] = {"optimizer": grid.optimizer, "loss": grid.loss, "p": grid.p,
                          "outcomes": grok.outcome_counts(a["outcome"]), "cells": cells(a)}
    return out


def draw(parts: dict, summary: dict, cfg: GrokLrConfig, out) -> None:
    """``grokking-lr``'s figure."""
    figures_grok.grokking_lr({g.name: flat(parts[g.name], g, cfg.seeds) for g in cfg.grids}, cfg, out)


def cells(a: dict) -> list[dict]:
    """Per setting (seeds pooled) of a grid's flat arrays ``a`` (``flat``): how many
    memorised and generalised, median steps, outcomes."""
    keys = np.stack([a[k] for k in ("lr", "weight_decay", "init_scale")], axis=-1)
    median = lambda x: float(np.median(x[np.isfinite(x)])) if np.isfinite(x).any() else None
    out = []
    for setting in np.unique(keys, axis=0):
        sel = np.all(keys == setting, axis=-1)
        mem, gen = a["memorise_step"][sel], a["generalise_step"][sel]
        out.append({"lr": float(setting[0]), "weight_decay": float(setting[1]), "init_scale": float(setting[2]),
                    "seeds": int(sel.sum()), "memorised": int(np.isfinite(mem).sum()),
                    "generalised": int(np.isfinite(gen).sum()), "median_memorise_step": median(mem),
                    "median_generalise_step": median(gen),
                    "median_plateau_steps": float(np.median(a["plateau_steps"][sel])),
                    "outcomes": grok.outcome_counts(a["outcome"][sel])})
    return out
