"""``smdd-wd``, ``smdd-steps``, ``smdd-sparsity``: how SMDD's double descent and its
generalising jump move with weight decay, training length and sparsity.

Henighan et al. 2023 appendix (lower weight decay enlarges the bump, decay 1.0 removes
it, more steps enlarge it) and Jermyn's comment (the jump in feature dimensionality sits
where T (1 - S) is about 10, whatever the weight decay). SPEC §1.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from jaxmem import presets, results
from jaxmem.studies.smdd import figures
from jaxmem.studies.smdd.per_setting import diverged_runs, run_variants
from jaxmem.studies.smdd.phase import bump_T
from jaxmem.studies.smdd.smdd import _log_grid, config_dict
from jaxmem.sweep import Sweep
from jaxmem.train import TrainConfig

_QUICK_CFG = TrainConfig(n_features=1000, n_hidden=2, steps=2500)
_QUICK_SWEEP = Sweep(T=_log_grid(3, 3000, 9), sparsity=0.99, data_seeds=2, n_test=5000)
_PAPER_CFG = TrainConfig(n_features=10_000, n_hidden=2, steps=50_000)
_PAPER_SWEEP = Sweep(T=_log_grid(3, 100_000, 16), sparsity=0.999, data_seeds=4)
#: the paper's appendix shows the weight-decay and training-length effects at m = 4; its
#: extracted text gives neither the values nor the T grid, so those are ours
_APPENDIX_CFG = dataclasses.replace(_PAPER_CFG, n_hidden=4)


def jump_T(T, feature_dim_max) -> float:
    """The T after the largest rise of the mean max feature dimensionality between
    neighbouring T: where the model starts learning generalising features."""
    mean = np.nanmean(np.asarray(feature_dim_max), axis=-1)
    return float(T[int(np.argmax(np.diff(mean))) + 1])


@dataclasses.dataclass(frozen=True)
class Setting:
    """An experiment that varies one setting: ``variants(cfg, sweep)`` gives the
    ``(label, cfg, sweep)`` list; ``x(label, sweep)`` the x axis of its figures."""

    name: str
    description: str
    presets: dict

    def variants(self, cfg, sweep, values):
        if self.name == "smdd-wd":  # traced: one sweep holds every weight decay
            return [("wd", cfg, dataclasses.replace(sweep, weight_decay=tuple(values)))]
        if self.name == "smdd-steps":
            return [(f"steps{v}", dataclasses.replace(cfg, steps=int(v)), sweep) for v in values]
        return [(f"S{v}", cfg, dataclasses.replace(sweep, sparsity=float(v), T=_scaled_T(sweep.T, v, sweep.sparsity)))
                for v in values]


def _scaled_T(T, sparsity, reference):
    """The T grid moved so that T (1 - S) covers the same range as at the reference S."""
    factor = (1 - reference) / (1 - sparsity)
    return tuple(sorted({max(1, int(round(t * factor))) for t in T}))


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


def preset(name: str, preset_name: str, seeds=None, overrides: dict | None = None):
    """``(cfg, sweep, values)`` of setting ``name``'s preset with ``--seeds`` and ``--set``
    (``values=...`` sets the varied values)."""
    cfg, sweep, values = presets.pick(SETTINGS[name].presets, preset_name)
    return presets.override((cfg, presets.with_seeds(sweep, seeds), values), overrides, names={2: "values"})


def run_setting(name: str, preset_name: str, out, seeds=None, resume=False, progress=None,
                overrides: dict | None = None) -> dict:
    setting = SETTINGS[name]
    cfg, sweep, values = preset(name, preset_name, seeds, overrides)
    out = Path(out)
    variants = setting.variants(cfg, sweep, values)
    config = dict(config_dict(cfg, sweep), varied=name.split("-")[1], values=list(values),
                  T_per_variant={label: list(s.T) for label, _, s in variants})
    presets.record_overrides(config, overrides)
    saved = run_variants(variants, out, config, resume, progress)

    curves, xs, rows = {}, {}, []
    for label, vcfg, vsweep in variants:
        # [len(T), cell, seeds] with one curve per weight decay for smdd-wd
        cells = range(len(values)) if name == "smdd-wd" else [0]
        for c in cells:
            pick = (lambda a: a[:, 0, c, 0]) if name == "smdd-wd" else (lambda a: a[:, 0, 0, 0])
            key = f"wd {values[c]:g}" if name == "smdd-wd" else label
            T = np.array(vsweep.T)
            test, fdim = pick(saved[f"{label}_test_loss"]), pick(saved[f"{label}_feature_dim_max"])
            x = T * (1 - vsweep.sparsity) if name == "smdd-sparsity" else T
            curves[key], xs[key] = (test, fdim), x
            rows.append({"variant": key, "T": T.tolist(), "test_loss": np.nanmean(test, -1),
                         "feature_dim_max": np.nanmean(fdim, -1), "bump_T": bump_T(T, np.nanmean(test, -1)),
                         "jump_T": jump_T(T, fdim),
                         **({"jump_T_times_1_minus_S": jump_T(T, fdim) * (1 - vsweep.sparsity)}
                            if name == "smdd-sparsity" else {})})
    summary = results.summary(name, preset_name, {"n_runs": sum(len(s.T) * s.data_seeds * len(s.weight_decay) for _, _, s in variants),
               "wall_seconds": float(saved["wall_seconds"]), "compile_seconds": float(saved["compile_seconds"]),
               "config": config, "results": {"by_variant": rows,
                                             "diverged": diverged_runs(saved, [v[0] for v in variants])}})
    results.save_json(out / "summary.json", summary)
    draw_setting(name, out, summary)
    return summary


def draw_setting(name: str, out, summary: dict | None = None) -> None:
    """The two figures of an ``smdd-wd``/``-steps``/``-sparsity`` run from its ``runs.npz``
    and ``summary.json``."""
    out = Path(out)
    summary = results.run_summary(out, summary)
    config, saved = summary["config"], results.load_arrays(out / "runs.npz")
    values = config["values"]
    curves, xs = {}, {}
    for i, (label, T) in enumerate(config["T_per_variant"].items()):
        T = np.array(T)
        # [len(T), cell, seeds] with one curve per weight decay for smdd-wd
        for c in (range(len(values)) if name == "smdd-wd" else [0]):
            key = f"wd {values[c]:g}" if name == "smdd-wd" else label
            curves[key] = tuple(saved[f"{label}_{k}"][:, 0, c, 0] for k in ("test_loss", "feature_dim_max"))
            xs[key] = T * (1 - float(values[i])) if name == "smdd-sparsity" else T
    x_name = "T (1 - S)" if name == "smdd-sparsity" else "T"
    xlabel = "T (1 - S): expected occurrences of each feature" if name == "smdd-sparsity" else "training set size T"
    figures.curves_by_variant(xs, {k: v[0] for k, v in curves.items()}, xlabel, "test loss",
                              f"Test loss vs {x_name} for each {config['varied']} setting", out / "test_loss.png")
    figures.curves_by_variant(xs, {k: v[1] for k, v in curves.items()}, xlabel, "max feature dimensionality",
                              f"Largest feature dimensionality vs {x_name} for each {config['varied']} setting",
                              out / "feature_dim_max.png",
                              vline=10.0 if name == "smdd-sparsity" else None, vline_label="T (1 - S) = 10")
