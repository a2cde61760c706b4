"""``smdd-phase``: test loss over dataset size T x hidden size m (SMDD's 2-D figure).

Henighan et al. 2023, "Superposition, Memorization, and Double Descent" (SPEC §1): a
map of where double descent appears in T and m, 4 models per cell (paper preset).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from jaxmem import presets, results
from jaxmem.studies.smdd import figures
from jaxmem.studies.smdd.per_setting import diverged_runs, run_variants
from jaxmem.studies.smdd.smdd import _log_grid, config_dict, zero_output_loss
from jaxmem.sweep import Sweep
from jaxmem.train import TrainConfig

DESCRIPTION = "SMDD phase diagram: test loss over dataset size T x hidden size m (1..8)"

#: preset -> (TrainConfig for m = 1, Sweep, hidden sizes m). ``quick`` is the reduced
#: setting (n = 1,000, S = 0.99) with T to 1,000 and 2,500 steps, sized for 5 minutes on
#: a 2-core CPU; ``paper`` is the paper's (n = 10,000, S = 0.999, 50,000 steps, 4 seeds).
PRESETS = {
    "quick": (TrainConfig(n_features=1000, n_hidden=1, steps=2500),
              Sweep(T=_log_grid(3, 1000, 9), sparsity=0.99, data_seeds=2, n_test=5000),
              tuple(range(1, 9))),
    "paper": (TrainConfig(n_features=10_000, n_hidden=1, steps=50_000),
              Sweep(T=_log_grid(3, 100_000, 20), sparsity=0.999, data_seeds=4),
              tuple(range(1, 9))),
}


def preset(name: str, seeds: int | None = None, overrides: dict | None = None):
    """``(cfg, sweep, ms)`` with ``--seeds`` and ``--set`` (``hidden_sizes=1,2,4`` sets ``ms``)."""
    cfg, sweep, ms = presets.pick(PRESETS, name)
    return presets.override((cfg, presets.with_seeds(sweep, seeds), ms), overrides, names={2: "hidden_sizes"})


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


def run(preset_name: str, out, seeds: int | None = None, resume: bool = False, progress=None,
        overrides: dict | None = None) -> dict:
    cfg, sweep, ms = preset(preset_name, seeds, overrides)
    out = Path(out)
    config = presets.record_overrides(dict(config_dict(cfg, sweep), n_hidden=list(ms)), overrides)
    labels = [f"m{m}" for m in ms]
    variants = [(label, dataclasses.replace(cfg, n_hidden=m), sweep) for label, m in zip(labels, ms)]
    saved = run_variants(variants, out, config, resume, progress)

    def grid(name):  # [len(T), len(m)]: mean over seeds
        return np.stack([np.nanmean(saved[f"{label}_{name}"][:, 0, 0, 0], axis=-1) for label in labels], axis=1)

    test_grid = grid("test_loss")
    summary = results.summary("smdd-phase", preset_name, {"n_runs": len(ms) * len(sweep.T) * sweep.data_seeds,
               "wall_seconds": float(saved["wall_seconds"]), "compile_seconds": float(saved["compile_seconds"]),
               "config": config,
               "results": {"test_loss_grid": test_grid, "train_loss_grid": grid("train_loss"),
                           "feature_dim_max_grid": grid("feature_dim_max"), "n_learned_grid": grid("n_learned"),
                           "bump_T_per_m": {str(m): bump_T(sweep.T, test_grid[:, j]) for j, m in enumerate(ms)},
                           "zero_output_loss": zero_output_loss(cfg, sweep.sparsity),
                           "diverged": diverged_runs(saved, labels)}})
    results.save_json(out / "summary.json", summary)
    draw(out, summary)
    return summary


def draw(out, summary: dict | None = None) -> None:
    """The phase diagram of an ``smdd-phase`` run from its ``summary.json``."""
    out = Path(out)
    summary = results.run_summary(out, summary)
    config, res = summary["config"], summary["results"]
    figures.phase_diagram([int(t) for t in config["T"]], [int(m) for m in config["n_hidden"]],
                          np.asarray(res["test_loss_grid"], float), res["zero_output_loss"], out)
