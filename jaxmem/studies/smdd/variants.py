"""``smdd-variants``: does SMDD's double descent survive Hobbhahn's variants?

Hobbhahn's comment on SMDD (SPEC §1): double descent also appears "with different loss
functions or when adding a ReLU activation between the layers". Four variants of the
m = 2 sweep, on the same datasets:

- ``sum``: the paper's model and loss (baseline);
- ``hidden_relu``: ``h = ReLU(W x)``, then ``x' = ReLU(W^T h + b)``;
- ``mean``: the loss averaged over features too, as other codebases do, with the same
  Adam eps 1e-8. The gradients are n times smaller, so eps weighs n times more;
- ``mean_eps``: the loss averaged over features with eps / n. Adam's update
  ``m / (sqrt(v) + eps)`` is unchanged when the gradient and eps are scaled alike, so
  this is the ``sum`` run up to float rounding: a control that separates the loss's
  scale (no effect) from eps's weight (the only effect of ``mean``).

The source does not say which other losses Hobbhahn tried, how he averaged, or his
eps; we take the per-feature mean (the common alternative named in SPEC §1) and keep
every other setting of the baseline. Test losses are reported in the baseline's units
(per example, summed over features: the ``mean`` variants' times n).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from jaxmem import presets, results
from jaxmem.studies.smdd import figures_extra as figures_smdd_extra
from jaxmem.studies.smdd.per_setting import diverged_runs, run_variants
from jaxmem.studies.smdd.phase import bump_T
from jaxmem.studies.smdd.smdd import _log_grid, config_dict, zero_output_loss
from jaxmem.sweep import Sweep
from jaxmem.train import TrainConfig

DESCRIPTION = "SMDD double descent with a hidden ReLU and with the loss averaged over features (Hobbhahn)"

VARIANTS = ("sum", "hidden_relu", "mean", "mean_eps")

#: preset -> (baseline TrainConfig, Sweep). ``quick``: the reduced setting (n = 1,000,
#: S = 0.99) with 2,500 steps and 2 seeds on T = 3..3,000 (the grid of smdd-wd's quick
#: preset), sized for 5 minutes on a 2-core CPU; ``paper``: the paper's setting.
PRESETS = {
    "quick": (TrainConfig(n_features=1000, n_hidden=2, steps=2500),
              Sweep(T=_log_grid(3, 3000, 9), sparsity=0.99, data_seeds=2, n_test=5000)),
    "paper": (TrainConfig(n_features=10_000, n_hidden=2, steps=50_000),
              Sweep(T=_log_grid(3, 100_000, 16), sparsity=0.999, data_seeds=4)),
}


def variant_config(cfg: TrainConfig, name: str) -> TrainConfig:
    """The baseline ``cfg`` changed as variant ``name`` says (see the module doc)."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    if cfg.reduction != "sum" or cfg.hidden_relu:
        raise ValueError(f"the baseline must be the paper's model (reduction='sum', no hidden ReLU), "
                         f"got reduction={cfg.reduction!r}, hidden_relu={cfg.hidden_relu!r}")
    return {"sum": cfg, "hidden_relu": dataclasses.replace(cfg, hidden_relu=True),
            "mean": dataclasses.replace(cfg, reduction="mean"),
            "mean_eps": dataclasses.replace(cfg, reduction="mean", eps=cfg.eps / cfg.n_features)}[name]


def loss_scale(cfg: TrainConfig) -> float:
    """Factor that puts ``cfg``'s losses in per-example, summed-over-features units."""
    return float(cfg.n_features) if cfg.reduction == "mean" else 1.0


def peak_stats(T, test_loss) -> dict:
    """The double-descent bump of a mean test-loss curve ``[len(T)]``: its T
    (``smdd_phase.bump_T``: the highest local maximum after the first local minimum), its
    height over the loss at the largest T (difference and ratio) and over the lowest loss
    at smaller T (the dip before the bump), and whether the loss falls again after it
    (the largest T's loss below the peak's)."""
    loss = np.asarray(test_loss, float)
    peak = bump_T(T, loss)
    if not isinstance(peak, int):
        return {"peak_T": peak, "peak_loss": None, "largest_T_loss": float(loss[-1]),
                "height_over_largest_T": None, "ratio_to_largest_T": None, "height_over_dip": None,
                "falls_again": False}
    i = list(T).index(peak)
    top = float(loss[i])
    return {"peak_T": peak, "peak_loss": top, "largest_T_loss": float(loss[-1]),
            "height_over_largest_T": top - float(loss[-1]), "ratio_to_largest_T": top / float(loss[-1]),
            "height_over_dip": top - float(np.min(loss[:i])), "falls_again": bool(loss[-1] < top)}


def preset(name: str, seeds: int | None = None, overrides: dict | None = None):
    """The baseline ``(cfg, sweep)`` with ``--seeds`` and ``--set`` applied."""
    cfg, sweep = presets.pick(PRESETS, name)
    return presets.override((cfg, presets.with_seeds(sweep, seeds)), overrides)


def run(preset_name: str, out, seeds: int | None = None, resume: bool = False, progress=None,
        overrides: dict | None = None) -> dict:
    cfg, sweep = preset(preset_name, seeds, overrides)
    out = Path(out)
    cfgs = {name: variant_config(cfg, name) for name in VARIANTS}
    config = dict(config_dict(cfg, sweep), variants={name: {"reduction": c.reduction, "hidden_relu": c.hidden_relu,
                                                            "eps": c.eps} for name, c in cfgs.items()})
    presets.record_overrides(config, overrides)
    saved = run_variants([(name, c, sweep) for name, c in cfgs.items()], out, config, resume, progress)
    T = list(sweep.T)
    rows, test_curves, learned_curves = [], {}, {}
    for name, c in cfgs.items():
        test = saved[f"{name}_test_loss"][:, 0, 0, 0] * loss_scale(c)  # [len(T), seeds]
        train = saved[f"{name}_train_loss"][:, 0, 0, 0] * loss_scale(c)
        learned = saved[f"{name}_n_learned"][:, 0, 0, 0].astype(float)
        test_curves[name], learned_curves[name] = test, learned
        rows.append({"variant": name, **config["variants"][name],
                     **peak_stats(T, np.nanmean(test, -1)),
                     "test_loss": np.nanmean(test, -1), "test_loss_per_seed": test, "train_loss": np.nanmean(train, -1),
                     "feature_dim_max": np.nanmean(saved[f"{name}_feature_dim_max"][:, 0, 0, 0], -1),
                     "n_learned": np.nanmean(learned, -1)})
    base = test_curves["sum"]
    summary = results.summary("smdd-variants", preset_name, {"n_runs": len(VARIANTS) * len(T) * sweep.data_seeds,
               "wall_seconds": float(saved["wall_seconds"]), "compile_seconds": float(saved["compile_seconds"]),
               "config": config,
               "results": {"by_variant": rows,
                           "zero_output_loss": zero_output_loss(cfg, sweep.sparsity),
                           # the control: mean loss with eps / n against the baseline
                           "mean_eps_vs_sum_max_rel_diff": float(np.nanmax(np.abs(test_curves["mean_eps"] - base)
                                                                           / base)),
                           "diverged": diverged_runs(saved, list(VARIANTS))}})
    results.save_json(out / "summary.json", summary)
    draw(out, summary)
    return summary


def draw(out, summary: dict | None = None) -> None:
    """``smdd-variants``' figure from its ``runs.npz`` and ``summary.json``."""
    out = Path(out)
    summary = results.run_summary(out, summary)
    config, saved = summary["config"], results.load_arrays(out / "runs.npz")
    n = float(config["n_features"])
    test_curves, learned_curves = {}, {}
    for name, v in config["variants"].items():
        scale = n if v["reduction"] == "mean" else 1.0  # loss_scale: per example, summed over features
        test_curves[name] = saved[f"{name}_test_loss"][:, 0, 0, 0] * scale
        learned_curves[name] = saved[f"{name}_n_learned"][:, 0, 0, 0].astype(float)
    figures_smdd_extra.variant_curves([int(t) for t in config["T"]], test_curves, learned_curves,
                                      summary["results"]["zero_output_loss"], out / "variants.png",
                                      dashed=("mean_eps",))
