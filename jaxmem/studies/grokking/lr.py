"""``grokking-lr``: what learning rate, optimizer, loss and initial scale do to grokking
on the explorable's main modular-addition model (SPEC §3, the discussion of Vaintrob &
Kaarel).

Claims checked: larger learning rates grok faster and more reliably up to an optimum
that depends on p (a large lr may generalise at once); Adam beats SGD at matched step
counts; cross-entropy and MSE behave differently; a small initial weight norm can stand
in for weight decay. Each grid (its lrs x weight decays x init scales x seeds) is one
``run_grid`` (``modular_addition.train_seeds``) on the faithful model of ``modular-addition`` (``ModularConfig``), with only the
grid's own settings changed.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from jaxmem import presets, results
from jaxmem.studies.grokking import figures as figures_grok
from jaxmem.studies.grokking import grok
from jaxmem.studies.grokking.modular_addition import ModularConfig, train_seeds

DESCRIPTION = "Modular addition (faithful model): time to generalise vs lr at p = 67 and 113, Adam vs SGD, CE vs MSE, init scale"


@dataclasses.dataclass(frozen=True)
class LrGrid:
    """One ``run_grid``: ``lrs`` x ``weight_decays`` x ``init_scales`` x seeds at modulus ``p``."""

    name: str
    lrs: tuple[float, ...]
    optimizer: str = "adamw"
    loss: str = "ce"
    p: int = 67
    weight_decays: tuple[float, ...] = (1.0,)
    init_scales: tuple[float, ...] = (1.0,)

    def __post_init__(self):
        if self.optimizer not in grok.OPTIMIZERS or self.loss not in grok.LOSSES:
            raise ValueError(f"grid {self.name!r}: optimizer must be one of {grok.OPTIMIZERS} and loss one of "
                             f"{grok.LOSSES}, got {self.optimizer!r}, {self.loss!r}")
        for field in ("lrs", "init_scales"):
            if not getattr(self, field) or min(getattr(self, field)) <= 0:
                raise ValueError(f"grid {self.name!r}: {field} must be positive, got {getattr(self, field)!r}")


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


def runs_of(grid: LrGrid, seeds: int) -> dict:
    axes = np.meshgrid(grid.lrs, grid.weight_decays, grid.init_scales, np.arange(seeds), indexing="ij")
    return dict(zip(("lr", "weight_decay", "init_scale", "seed"), (a.ravel() for a in axes)))


def train_grid(cfg: GrokLrConfig, grid: LrGrid, runs: dict | None = None):
    """``grid``'s runs (in the order of ``runs_of``) by ``train_seeds``: (``GrokResult``,
    compile s, train s)."""
    m = cfg.grid_model(grid)
    axes = {"lr": list(grid.lrs), "weight_decay": list(grid.weight_decays), "init_scale": list(grid.init_scales),
            "b1": [cfg.sgd_momentum if grid.optimizer == "sgd" else m.b1]}
    if runs is not None and len(runs["seed"]) != len(grid.lrs) * len(grid.weight_decays) * len(grid.init_scales) * cfg.seeds:
        raise ValueError(f"grid {grid.name!r}: runs must be runs_of(grid, {cfg.seeds})")
    with m.precision_context():
        return train_seeds(m, "factored", axes)


def preset(name: str, seeds: int | None = None, overrides: dict | None = None) -> GrokLrConfig:
    """The preset's config with ``--seeds`` and ``--set`` (the model's fields as ``model.steps=...``)."""
    cfg = presets.pick(PRESETS, name)
    cfg = dataclasses.replace(cfg, model=presets.with_seeds(cfg.model, seeds, field="seeds"))
    return presets.override(cfg, overrides)


def run(preset_name: str, out, seeds: int | None = None, resume: bool = False, progress=None,
        overrides: dict | None = None) -> dict:
    cfg = preset(preset_name, seeds, overrides)
    out, start = Path(out), time.perf_counter()
    config = json.loads(json.dumps(dataclasses.asdict(cfg)))
    config.update(accuracy_threshold=grok.ACCURACY_THRESHOLD, grok_delay=grok.GROK_DELAY)
    presets.record_overrides(config, overrides)
    arrays = results.resume_arrays(out, config, resume)
    steps = cfg.model.grok_config.history_steps
    summary_results = {}
    for grid in cfg.grids:
        name = grid.name
        if f"{name}_outcome" not in arrays:
            runs = runs_of(grid, cfg.seeds)
            res, compile_s, run_s = train_grid(cfg, grid, runs)
            o = grok.outcomes(res.history, steps)
            arrays.update({f"{name}_{k}": np.asarray(v) for k, v in {**runs, **o}.items()})
            arrays.update({f"{name}_test_accuracy": np.asarray(res.history.test_accuracy),
                           f"{name}_train_accuracy": np.asarray(res.history.train_accuracy),
                           f"{name}_compile_seconds": np.array(compile_s), f"{name}_train_seconds": np.array(run_s)})
            results.save_arrays(out / "runs.npz", arrays,  # after every grid: nothing is lost
                                axes={f"{g.name}_": {"lr": g.lrs, "weight_decay": g.weight_decays,
                                                     "init_scale": g.init_scales, "seed": range(cfg.seeds)}
                                      for g in cfg.grids})
            if progress or (progress is None and sys.stderr.isatty()):
                print(f"grokking-lr: {name} ({len(runs['seed'])} runs) in {run_s:.1f} s", file=sys.stderr, flush=True)
        summary_results[name] = {"optimizer": grid.optimizer, "loss": grid.loss, "p": grid.p,
                                 "outcomes": grok.outcome_counts(arrays[f"{name}_outcome"]),
                                 "cells": cells(arrays, name)}
    arrays["history_steps"] = steps
    names = [g.name for g in cfg.grids]
    summary = {"experiment": "grokking-lr", "preset": preset_name, **results.device_info(),
               "n_runs": int(sum(arrays[f"{n}_seed"].size for n in names)),
               "wall_seconds": time.perf_counter() - start,
               "compile_seconds": float(sum(arrays[f"{n}_compile_seconds"] for n in names)),
               "train_seconds": float(sum(arrays[f"{n}_train_seconds"] for n in names)),
               "config": config, "results": summary_results}
    results.save_json(out / "summary.json", summary)
    draw(out, summary)
    return summary


def draw(out, summary: dict | None = None) -> None:
    """``grokking-lr``'s figure from its ``runs.npz`` and ``summary.json``."""
    out = Path(out)
    summary = results.run_summary(out, summary)
    figures_grok.grokking_lr(results.load_arrays(out / "runs.npz"), presets.from_record(GrokLrConfig, summary["config"]),
                             out)


def cells(arrays: dict, name: str) -> list[dict]:
    """Per setting (seeds pooled): how many memorised and generalised, median steps, outcomes."""
    keys = np.stack([arrays[f"{name}_{k}"] for k in ("lr", "weight_decay", "init_scale")], axis=-1)
    median = lambda x: float(np.median(x[np.isfinite(x)])) if np.isfinite(x).any() else None
    out = []
    for setting in np.unique(keys, axis=0):
        sel = np.all(keys == setting, axis=-1)
        mem, gen = arrays[f"{name}_memorise_step"][sel], arrays[f"{name}_generalise_step"][sel]
        out.append({"lr": float(setting[0]), "weight_decay": float(setting[1]), "init_scale": float(setting[2]),
                    "seeds": int(sel.sum()), "memorised": int(np.isfinite(mem).sum()),
                    "generalised": int(np.isfinite(gen).sum()), "median_memorise_step": median(mem),
                    "median_generalise_step": median(gen),
                    "median_plateau_steps": float(np.median(arrays[f"{name}_plateau_steps"][sel])),
                    "outcomes": grok.outcome_counts(arrays[f"{name}_outcome"][sel])})
    return out
