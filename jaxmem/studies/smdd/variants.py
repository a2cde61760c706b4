"""``smdd-variants``: does SMDD's double descent survive a hidden ReLU, and a rescaled loss?

Hobbhahn's comment on SMDD (docs/sources.md §1, seed 001): double descent also appears "with
different loss functions or when adding a ReLU activation between the layers". We test
the ReLU. We do not test another loss function: the seed does not say which he used, and
the ``mean`` variants below are the *same* squared error divided by n (averaged over
features instead of summed), a rescaling whose only effect under Adam is through eps.
Four variants of the m = 2 sweep, on the same datasets:

- ``sum``: the paper's model and loss (baseline);
- ``hidden_relu``: ``h = ReLU(W x)``, then ``x' = ReLU(W^T h + b)``;
- ``mean``: the same squared error averaged over features too (divided by n, as other
  codebases do), with the same Adam eps 1e-8. The gradients are n times smaller, so eps
  weighs n times more;
- ``mean_eps``: the loss averaged over features with eps / n. Adam's update
  ``m / (sqrt(v) + eps)`` is unchanged when the gradient and eps are scaled alike, so
  this is the ``sum`` run up to float rounding: a control that separates the loss's
  scale (no effect) from eps's weight (the only effect of ``mean``).

The source does not say which other losses Hobbhahn tried, how he averaged, or his
eps; the per-feature mean (ours: a rescaling common in other codebases, not another
loss) keeps every other setting of the baseline. Test losses are reported in the
baseline's units (per example, summed over features: the ``mean`` variants' times n).
One part per variant, named as above.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from jaxmem import metrics
from jaxmem.studies.smdd import figures_extra as figures_smdd_extra
from jaxmem.studies.smdd.per_setting import diverged_runs, first_cell, run_variants, tuple_record
from jaxmem.studies.smdd.phase import bump_T
from jaxmem.studies.smdd.smdd import _log_grid, zero_output_loss
from jaxmem.studies.smdd.sweep import Sweep
from jaxmem.train import TrainConfig

DESCRIPTION = ("SMDD double descent with a hidden ReLU (Hobbhahn) and with the same squared error averaged "
               "over features (a rescaling against Adam's eps, not another loss)")

VARIANTS = ("sum", "hidden_relu", "mean", "mean_eps")
#: what each variant is, for the summary and the figure's legend
LABELS = {"sum": "sum: the paper's loss (baseline)", "hidden_relu": "hidden ReLU: h = ReLU(W x)",
          "mean": "same loss / n (averaged over features), same eps: a rescaling",
          "mean_eps": "same loss / n, eps / n: the baseline up to rounding (control)"}

#: preset -> (baseline TrainConfig, Sweep). ``quick``: the reduced setting (n = 1,000,
#: S = 0.99) with 2,500 steps and 2 seeds on T = 3..3,000 (the grid of smdd-wd's quick
#: preset), sized for 5 minutes on a 2-core CPU; ``paper``: the paper's setting.
PRESETS = {
    "quick": (TrainConfig(n_features=1000, n_hidden=2, steps=2500),
              Sweep(T=_log_grid(3, 3000, 9), sparsity=0.99, data_seeds=2, n_test=5000)),
    "paper": (TrainConfig(n_features=10_000, n_hidden=2, steps=50_000),
              Sweep(T=_log_grid(3, 100_000, 16), sparsity=0.999, data_seeds=4)),
}
SEEDS = "data_seeds"


def record(cfg) -> dict:
    return tuple_record(cfg, learned_threshold=metrics.LEARNED_THRESHOLD)


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


def variant_configs(cfg) -> dict[str, TrainConfig]:
    return {name: variant_config(cfg[0], name) for name in VARIANTS}


def run(cfg, store) -> None:
    run_variants([(name, c, cfg[1]) for name, c in variant_configs(cfg).items()], store)


def curves(parts: dict, cfg) -> dict:
    """Per variant: test and train loss in the baseline's units and the learned features,
    each ``[len(T), seeds]`` (first cell)."""
    out = {}
    for name, c in variant_configs(cfg).items():
        part = parts[name]
        fdim = first_cell(part, "feature_dim")
        out[name] = {"test_loss": first_cell(part, "test_loss") * loss_scale(c),
                     "train_loss": first_cell(part, "train_loss") * loss_scale(c),
                     "feature_dim_max": fdim.max(-1), "n_learned": np.asarray(metrics.n_learned(fdim)).astype(float)}
    return out


def summarize(parts: dict, cfg) -> dict:
    train, sweep = cfg
    T, cfgs, c = list(sweep.T), variant_configs(cfg), curves(parts, cfg)
    rows = []
    for name, v in c.items():
        test = v["test_loss"]
        rows.append({"variant": name, "what": LABELS[name], "reduction": cfgs[name].reduction,
                     "hidden_relu": cfgs[name].hidden_relu,
                     "eps": cfgs[name].eps, **peak_stats(T, np.nanmean(test, -1)),
                     "test_loss": np.nanmean(test, -1), "test_loss_per_seed": test,
                     "train_loss": np.nanmean(v["train_loss"], -1),
                     "feature_dim_max": np.nanmean(v["feature_dim_max"], -1),
                     "n_learned": np.nanmean(v["n_learned"], -1)})
    base = c["sum"]["test_loss"]
    return {"by_variant": rows, "zero_output_loss": zero_output_loss(train, sweep.sparsity),
            # the control: mean loss with eps / n against the baseline
            "mean_eps_vs_sum_max_rel_diff": float(np.nanmax(np.abs(c["mean_eps"]["test_loss"] - base) / base)),
            "diverged": diverged_runs(parts)}


def draw(parts: dict, summary: dict, cfg, out) -> None:
    """Test loss and learned features against T, one line per variant."""
    train, sweep = cfg
    c = curves(parts, cfg)
    figures_smdd_extra.variant_curves(list(sweep.T), {LABELS[k]: v["test_loss"] for k, v in c.items()},
                                      {LABELS[k]: v["n_learned"] for k, v in c.items()},
                                      zero_output_loss(train, sweep.sparsity), Path(out) / "variants.png",
                                      dashed=(LABELS["mean_eps"],))
