"""``smdd-wd``, ``smdd-steps``, ``smdd-sparsity``: how SMDD's double descent and its
generalising jump move with weight decay, training length and sparsity.

The seed (docs/sources.md §1, seed 001): the results "are sensitive to weight decay and the
number of training epochs" (what the paper's appendix shows for each is lost from the
seed: paper, not verifiable here), and Jermyn's comment: the jump in feature
dimensionality sits where T (1 - S) is about 10, whatever the weight decay, and "for
models with more hidden dimensions the dimensionality curves don't lie as cleanly on top
of each other". ``smdd-sparsity``'s summary measures the latter as
``feature_dim_max_spread_across_S`` (``spread_across``, ours); run it at several m with
``--set n_hidden=M``.

The three share this implementation; ``wd.py``, ``steps.py`` and ``sparsity.py`` bind
it to their name. Config ``(TrainConfig, Sweep, values)``; parts: ``"wd"`` (one sweep
whose weight-decay axis holds every value), ``"steps{v}"`` or ``"S{v}"`` (one sweep per
value; the sparsity's T grid moved so that T (1 - S) covers the same range).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from jaxmem.studies.smdd import figures
from jaxmem.studies.smdd.per_setting import diverged_runs, distinct_labels, run_variants
from jaxmem.studies.smdd.phase import bump_T
from jaxmem.studies.smdd.smdd import _log_grid
from jaxmem.studies.smdd.sweep import Sweep
from jaxmem.train import TrainConfig
from jaxmem.validate import positive_int

_QUICK_CFG = TrainConfig(n_features=1000, n_hidden=2, steps=2500)
_QUICK_SWEEP = Sweep(T=_log_grid(3, 3000, 9), sparsity=0.99, data_seeds=2, n_test=5000)
_PAPER_CFG = TrainConfig(n_features=10_000, n_hidden=2, steps=50_000)
_PAPER_SWEEP = Sweep(T=_log_grid(3, 100_000, 16), sparsity=0.999, data_seeds=4)
#: the paper's appendix shows the weight-decay and training-length effects at m = 4 (paper:
#: not in the seed's text); the seed gives neither the values nor the T grid, so those
#: are ours, as are the quick presets (2,500 steps, 2 seeds, 9 T) and the sparsities
_APPENDIX_CFG = dataclasses.replace(_PAPER_CFG, n_hidden=4)

SEEDS = "data_seeds"
SET_NAMES = {2: "values"}


def jump_T(T, feature_dim_max) -> float:
    """The T after the largest rise of the mean max feature dimensionality between
    neighbouring T: where the model starts learning generalising features."""
    mean = np.nanmean(np.asarray(feature_dim_max), axis=-1)
    return float(T[int(np.argmax(np.diff(mean))) + 1])


def _scaled_T(T, sparsity, reference):
    """The T grid moved so that T (1 - S) covers the same range as at the reference S
    (sorted, without repeats: sizes that round alike are one)."""
    factor = (1 - reference) / (1 - sparsity)
    return tuple(sorted({max(1, int(round(t * factor))) for t in T}))


@dataclasses.dataclass(frozen=True)
class Setting:
    """An experiment that varies one setting: its name, ``jaxmem list`` line and presets
    ``(TrainConfig, Sweep, values)``."""

    name: str
    description: str
    presets: dict

    @property
    def varied(self) -> str:
        return self.name.split("-")[1]


SETTINGS = {
    # paper presets at m = 4, as the appendix; quick runs at m = 2: at m = 4 the
    # transitions lie beyond the T a CPU covers in minutes
    "smdd-wd": Setting("smdd-wd", "SMDD for weight decay 0 to 1.0 (m = 4 paper, m = 2 quick): bump and jump",
                       {"quick": (_QUICK_CFG, _QUICK_SWEEP, (0.0, 1e-2, 1.0)),
                        "paper": (_APPENDIX_CFG, _PAPER_SWEEP, (0.0, 1e-3, 1e-2, 1e-1, 1.0))}),
    "smdd-steps": Setting("smdd-steps", "SMDD test-loss bump for several training lengths (m = 4 paper, m = 2 quick)",
                          {"quick": (_QUICK_CFG, _QUICK_SWEEP, (1000, 2500, 5000)),
                           "paper": (_APPENDIX_CFG, _PAPER_SWEEP, (10_000, 50_000, 100_000))}),
    "smdd-sparsity": Setting("smdd-sparsity", "SMDD generalising jump vs T (1 - S) for several sparsities S",
                             {"quick": (_QUICK_CFG, _QUICK_SWEEP, (0.97, 0.99, 0.995)),
                              "paper": (_PAPER_CFG, _PAPER_SWEEP, (0.99, 0.999, 0.9995))}),
}


def variants(name: str, cfg) -> list[tuple[str, TrainConfig, Sweep]]:
    """The ``(label, cfg, sweep)`` of each part of setting ``name``."""
    train, sweep, values = cfg
    if name == "smdd-wd":  # traced: one sweep holds every weight decay
        return [("wd", train, dataclasses.replace(sweep, weight_decay=tuple(values)))]
    if name == "smdd-steps":
        out = [(f"steps{positive_int('steps', v)}", dataclasses.replace(train, steps=int(v)), sweep) for v in values]
    else:
        out = [(f"S{v}", train, dataclasses.replace(sweep, sparsity=float(v), T=_scaled_T(sweep.T, v, sweep.sparsity)))
               for v in values]
    distinct_labels("values", [label for label, _, _ in out])
    return out


def run(name: str, cfg, store) -> None:
    run_variants(variants(name, cfg), store)


def curves(name: str, parts: dict, cfg) -> dict:
    """Per curve (``"wd 0.01"``, ``"steps2500"``, ``"S0.99"``): its sweep, x values (T, or
    T (1 - S) for sparsity), test loss and largest feature dimensionality ``[len(T), seeds]``."""
    values = cfg[2]
    out = {}
    for label, _, sweep in variants(name, cfg):
        part = parts[label]
        # the weight-decay axis of smdd-wd holds one curve per value
        for c in (range(len(values)) if name == "smdd-wd" else [0]):
            key = f"wd {values[c]:g}" if name == "smdd-wd" else label
            T = np.array(sweep.T)
            out[key] = {"sweep": sweep, "T": T, "x": T * (1 - sweep.sparsity) if name == "smdd-sparsity" else T,
                        "test_loss": part["test_loss"][:, 0, c, 0],
                        "feature_dim_max": part["feature_dim"][:, 0, c, 0].max(-1)}
    return out


#: ``smdd-sparsity``'s spread is also given from T (1 - S) = 1 on (ours): below it the
#: models memorise, and their feature dimensionalities follow T itself, not T (1 - S)
SPREAD_X_MIN = 1.0


def spread_across(curves_by_variant: dict, x_min: float | None = None) -> dict | None:
    """How closely curves of several variants lie on each other (ours: Jermyn's "don't lie
    as cleanly on top of each other", docs/sources.md §1): each curve's seed mean ``y``
    against ``x`` (``{label: (x, y [len(x), seeds])}``), interpolated in log x onto the x
    of the curve with the most points, where every curve covers it; per such x the
    largest minus the smallest across variants; their mean and largest value, and the
    mean divided by the range of the mean curve (its largest minus smallest value).
    ``x_min``: only the x from it on."""
    if len(curves_by_variant) < 2:
        return None
    xy = {k: (np.log(np.asarray(x, float)), np.nanmean(np.asarray(y, float), -1)) for k, (x, y) in
          curves_by_variant.items()}
    ref = max(xy.values(), key=lambda c: len(c[0]))[0]
    lo, hi = max(c[0].min() for c in xy.values()), min(c[0].max() for c in xy.values())
    if x_min is not None:
        lo = max(lo, float(np.log(x_min)))
    at = ref[(ref >= lo - 1e-9) & (ref <= hi + 1e-9)]
    if at.size == 0:
        return None
    ys = np.stack([np.interp(at, x, y) for x, y in xy.values()])  # [variants, points]
    gap, mean = ys.max(0) - ys.min(0), ys.mean(0)
    return {"x": np.exp(at).tolist(), "spread": gap.tolist(), "mean_spread": float(gap.mean()),
            "max_spread": float(gap.max()), "mean_spread_over_range": float(gap.mean() / max(np.ptp(mean), 1e-12))}


def summarize(name: str, parts: dict, cfg) -> dict:
    rows = []
    for key, c in curves(name, parts, cfg).items():
        T, test, fdim = c["T"], c["test_loss"], c["feature_dim_max"]
        rows.append({"variant": key, "T": T.tolist(), "test_loss": np.nanmean(test, -1),
                     "feature_dim_max": np.nanmean(fdim, -1), "bump_T": bump_T(T, np.nanmean(test, -1)),
                     "jump_T": jump_T(T, fdim),
                     **({"jump_T_times_1_minus_S": jump_T(T, fdim) * (1 - c["sweep"].sparsity)}
                        if name == "smdd-sparsity" else {})})
    out = {"by_variant": rows, "diverged": diverged_runs(parts)}
    if name == "smdd-sparsity":  # do the curves against T (1 - S) fall on each other?
        c = curves(name, parts, cfg)
        out["n_hidden"] = cfg[0].n_hidden
        xy = {k: (v["x"], v["feature_dim_max"]) for k, v in c.items()}
        out["feature_dim_max_spread_across_S"] = spread_across(xy)
        out["feature_dim_max_spread_across_S_from_x1"] = spread_across(xy, SPREAD_X_MIN)
    return out


def draw(name: str, parts: dict, summary: dict, cfg, out) -> None:
    """Test loss and the largest feature dimensionality against T (or T (1 - S)), one
    line per value."""
    out, varied = Path(out), SETTINGS[name].varied
    c = curves(name, parts, cfg)
    xs = {k: v["x"] for k, v in c.items()}
    x_name = "T (1 - S)" if name == "smdd-sparsity" else "T"
    xlabel = "T (1 - S): expected occurrences of each feature" if name == "smdd-sparsity" else "training set size T"
    figures.curves_by_variant(xs, {k: v["test_loss"] for k, v in c.items()}, xlabel, "test loss",
                              f"Test loss vs {x_name} for each {varied} setting", out / "test_loss.png")
    figures.curves_by_variant(xs, {k: v["feature_dim_max"] for k, v in c.items()}, xlabel,
                              "max feature dimensionality",
                              f"Largest feature dimensionality vs {x_name} for each {varied} setting",
                              out / "feature_dim_max.png",
                              vline=10.0 if name == "smdd-sparsity" else None, vline_label="T (1 - S) = 10")
