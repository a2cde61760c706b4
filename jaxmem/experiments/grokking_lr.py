"""``grokking-lr``: how learning rate, weight decay, optimizer and initial scale decide
whether and when modular addition groks (SPEC §3, the discussion).

Claims checked: larger learning rates grok faster and more reliably up to an optimum;
Adam beats SGD; a small initial weight norm can stand in for weight decay. Each
optimizer's grid (lr x weight decay x seed, plus init scale x seed at zero decay for
Adam) is one program.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from jaxmem import figures_grok, grok, results
from jaxmem.experiments import presets
from jaxmem.experiments.modular_addition import ModularConfig, train_seeds

DESCRIPTION = "Modular addition: time to generalise over lr x weight decay, Adam vs SGD, init scale without decay"


@dataclasses.dataclass(frozen=True)
class GrokLrConfig:
    model: ModularConfig = dataclasses.field(default_factory=lambda: ModularConfig(seeds=2))
    adam_lrs: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
    sgd_lrs: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0, 3.0)
    sgd_momentum: float = 0.9
    weight_decays: tuple[float, ...] = (0.0, 0.1, 0.3, 1.0, 3.0)
    init_scales: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0)

    @property
    def seeds(self) -> int:
        return self.model.seeds


PRESETS = {"quick": GrokLrConfig(model=ModularConfig(seeds=2, steps=4000, n_history=50),
                                 adam_lrs=(1e-3, 3e-3, 1e-2), sgd_lrs=(0.1, 0.3, 1.0),
                                 weight_decays=(0.1, 1.0, 3.0), init_scales=(0.1, 0.3, 1.0)),
           "paper": GrokLrConfig(model=ModularConfig(seeds=4))}


def _runs(lrs, wds, scales, seeds) -> dict:
    axes = np.meshgrid(lrs, wds, scales, np.arange(seeds), indexing="ij")
    return dict(zip(("lr", "weight_decay", "init_scale", "seed"), (a.ravel() for a in axes)))


def grids(cfg: GrokLrConfig) -> dict:
    """name -> (optimizer, runs): lr x wd at init scale 1 (Adam, SGD) and, for Adam,
    init scale at zero decay and the preset's middle lr."""
    mid_lr = cfg.adam_lrs[len(cfg.adam_lrs) // 2]
    return {"adam": ("adamw", _runs(cfg.adam_lrs, cfg.weight_decays, [1.0], cfg.seeds)),
            "sgd": ("sgd", _runs(cfg.sgd_lrs, cfg.weight_decays, [1.0], cfg.seeds)),
            "init_scale": ("adamw", _runs([mid_lr], [0.0], cfg.init_scales, cfg.seeds))}


def train_runs(cfg: GrokLrConfig, optimizer: str, runs: dict):
    m = cfg.model
    b1 = cfg.sgd_momentum if optimizer == "sgd" else m.b1
    hyper = grok.GrokHyper(runs["lr"], runs["weight_decay"], b1, m.b2, runs["init_scale"])
    grok_cfg = dataclasses.replace(m.grok_config, optimizer=optimizer, keep_params=False)
    return train_seeds(m, "factored", hyper, grok_cfg, runs["seed"])


def preset(name: str, seeds: int | None = None) -> GrokLrConfig:
    cfg = presets.pick(PRESETS, name)
    return dataclasses.replace(cfg, model=presets.with_seeds(cfg.model, seeds, field="seeds"))


def run(preset_name: str, out, seeds: int | None = None, resume: bool = False, progress=None) -> dict:
    cfg = preset(preset_name, seeds)
    out, start = Path(out), time.perf_counter()
    config = json.loads(json.dumps(dataclasses.asdict(cfg)))
    config.update(accuracy_threshold=grok.ACCURACY_THRESHOLD, grok_delay=grok.GROK_DELAY)
    arrays_path = out / "runs.npz"
    arrays = results.resume_arrays(out, config, resume)
    steps = cfg.model.grok_config.history_steps
    summary_results = {}
    for name, (optimizer, runs) in grids(cfg).items():
        if f"{name}_outcome" not in arrays:
            res, compile_s, run_s = train_runs(cfg, optimizer, runs)
            o = grok.outcomes(res.history, steps)
            arrays.update({f"{name}_{k}": np.asarray(v) for k, v in {**runs, **o}.items()})
            arrays.update({f"{name}_test_accuracy": np.asarray(res.history.test_accuracy),
                           f"{name}_train_accuracy": np.asarray(res.history.train_accuracy),
                           f"{name}_compile_seconds": np.array(compile_s), f"{name}_train_seconds": np.array(run_s)})
            results.save_arrays(arrays_path, arrays)  # after every grid: nothing is lost
            if progress or (progress is None and sys.stderr.isatty()):
                print(f"grokking-lr: {name} ({len(runs['seed'])} runs) in {run_s:.1f} s", file=sys.stderr, flush=True)
        summary_results[name] = {"optimizer": optimizer, "outcomes": grok.outcome_counts(arrays[f"{name}_outcome"]),
                                 "cells": cells(arrays, name)}
    arrays["history_steps"] = steps
    names = list(grids(cfg))
    summary = {"experiment": "grokking-lr", "preset": preset_name, **results.device_info(),
               "n_runs": int(sum(arrays[f"{n}_seed"].size for n in names)),
               "wall_seconds": time.perf_counter() - start,
               "compile_seconds": float(sum(arrays[f"{n}_compile_seconds"] for n in names)),
               "train_seconds": float(sum(arrays[f"{n}_train_seconds"] for n in names)),
               "config": config, "results": summary_results}
    results.save_json(out / "summary.json", summary)
    figures_grok.grokking_lr(arrays, cfg, out)
    return summary


def cells(arrays: dict, name: str) -> list[dict]:
    """Per setting (seeds pooled): how many generalised, median step to generalise, outcomes."""
    keys = np.stack([arrays[f"{name}_{k}"] for k in ("lr", "weight_decay", "init_scale")], axis=-1)
    out = []
    for setting in np.unique(keys, axis=0):
        sel = np.all(keys == setting, axis=-1)
        gen = arrays[f"{name}_generalise_step"][sel]
        out.append({"lr": float(setting[0]), "weight_decay": float(setting[1]), "init_scale": float(setting[2]),
                    "generalised": int(np.isfinite(gen).sum()), "seeds": int(sel.sum()),
                    "median_generalise_step": float(np.median(gen[np.isfinite(gen)])) if np.isfinite(gen).any() else None,
                    "outcomes": grok.outcome_counts(arrays[f"{name}_outcome"][sel])})
    return out
