"""``smdd-modelwise``: model-wise double descent, test loss against hidden size m at fixed T.

Henighan et al. 2023 (SPEC §1) map test loss over (T, m) and note "regions where bigger
models or more data hurt performance". This reads that map along m: for each chosen T,
the test loss of m = 1..8 and the m of its peak. The training is smdd-phase's (same
configs, datasets and array names), so ``--from`` an smdd-phase folder reads its grid
without training; otherwise the preset's Ts are trained here.

The seed's text lost the map's numbers, so the Ts are chosen from where smdd-phase puts
the T-wise bump for m = 2..8: its quick preset finds it at T = 234 (m = 2), 484 (m = 3)
and past 1,000 (m >= 4), so quick reads T = 113, 234, 484, 1,000 (columns of smdd-phase's
quick grid); paper reads the columns of its grid that are 10x those, the reduced
setting's transitions being 10x lower in T.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from jaxmem import presets, results
from jaxmem.studies.smdd import figures_extra as figures_smdd_extra
from jaxmem.studies.smdd import phase as smdd_phase
from jaxmem.studies.smdd.per_setting import diverged_runs, run_variants
from jaxmem.studies.smdd.smdd import config_dict, zero_output_loss

DESCRIPTION = "SMDD model-wise double descent: test loss vs hidden size m at fixed T (smdd-phase's grid, --from DIR)"
ACCEPTS_FROM = True

_PHASE_QUICK, _PHASE_PAPER = smdd_phase.PRESETS["quick"], smdd_phase.PRESETS["paper"]

#: preset -> (TrainConfig for m = 1, Sweep, hidden sizes m): smdd-phase's presets with T
#: restricted to the columns read here (see the module doc).
PRESETS = {
    "quick": (_PHASE_QUICK[0], dataclasses.replace(_PHASE_QUICK[1], T=(113, 234, 484, 1000)), _PHASE_QUICK[2]),
    "paper": (_PHASE_PAPER[0], dataclasses.replace(_PHASE_PAPER[1], T=(1246, 2156, 3730, 6453, 11164)),
              _PHASE_PAPER[2]),
}


def peak_m(ms, test_loss) -> dict:
    """The peak of a mean test-loss curve over hidden sizes ``ms``: its m, whether it is
    interior (a smaller and a larger m do better: model-wise double descent), and its
    height over the smallest and the largest m."""
    loss = np.asarray(test_loss, float)
    j = int(np.nanargmax(loss))
    return {"peak_m": int(ms[j]), "peak_loss": float(loss[j]), "interior": 0 < j < len(ms) - 1,
            "over_smallest_m": float(loss[j] - loss[0]), "over_largest_m": float(loss[j] - loss[-1]),
            "bigger_m_hurts": [int(ms[i + 1]) for i in range(len(ms) - 1) if loss[i + 1] > loss[i]]}


def _from_phase(source, T_wanted) -> tuple[dict, dict, list]:
    """Arrays and config of an smdd-phase folder, and which of ``T_wanted`` it holds
    (all its Ts if none)."""
    source = Path(source)
    summary_path, arrays_path = source / "summary.json", source / "runs.npz"
    if not summary_path.exists() or not arrays_path.exists():
        raise ValueError(f"--from {source}: no summary.json and runs.npz of an smdd-phase run there")
    previous = results.load_json(summary_path)
    if previous.get("experiment") != "smdd-phase":
        raise ValueError(f"--from {source}: holds {previous.get('experiment')!r}, not an smdd-phase run")
    T_src = [int(t) for t in previous["config"]["T"]]
    T = [t for t in T_wanted if t in T_src] or T_src
    return results.load_arrays(arrays_path), previous["config"], T


def preset(name: str, overrides: dict | None = None):
    """``(cfg, sweep, ms)`` with ``--set`` applied (``hidden_sizes=1,2,4`` sets ``ms``)."""
    return presets.override(presets.pick(PRESETS, name), overrides, names={2: "hidden_sizes"})


def run(preset_name: str, out, seeds: int | None = None, resume: bool = False, progress=None,
        source=None, overrides: dict | None = None) -> dict:
    cfg, sweep, ms = preset(preset_name, overrides)
    out = Path(out)
    if source is not None:
        if seeds is not None:
            raise ValueError(f"--seeds {seeds} does not apply with --from: the seeds are the source's")
        if overrides:
            raise ValueError(f"--set {', '.join(overrides)} does not apply with --from: the config is the source's")
        start = time.perf_counter()
        saved, phase_config, T = _from_phase(source, sweep.T)
        ms = tuple(int(m) for m in phase_config["n_hidden"])
        config = {"source": str(source), "T_read": T, "smdd_phase": phase_config}
        n_features, sparsity = int(phase_config["n_features"]), float(phase_config["sparsity"])
    else:
        sweep = presets.with_seeds(sweep, seeds)
        config = presets.record_overrides(dict(config_dict(cfg, sweep), n_hidden=list(ms)), overrides)
        variants = [(f"m{m}", dataclasses.replace(cfg, n_hidden=m), sweep) for m in ms]
        saved = run_variants(variants, out, config, resume, progress)
        T, n_features, sparsity = list(sweep.T), cfg.n_features, sweep.sparsity
    T_all = [int(t) for t in saved[f"m{ms[0]}_T"]]
    curves = {t: np.stack([saved[f"m{m}_test_loss"][T_all.index(t), 0, 0, 0] for m in ms]) for t in T}
    by_T = [{"T": t, "test_loss": np.nanmean(curves[t], -1), **peak_m(ms, np.nanmean(curves[t], -1))} for t in T]
    n_seeds = next(iter(curves.values())).shape[-1]
    zero = zero_output_loss(dataclasses.replace(cfg, n_features=n_features), sparsity)
    if source is None:
        wall, compile_s = float(saved["wall_seconds"]), float(saved["compile_seconds"])
    else:  # nothing trained: the time to read and summarise
        wall, compile_s = time.perf_counter() - start, 0.0
    summary = results.summary("smdd-modelwise", preset_name, {"n_runs": len(ms) * len(T) * n_seeds, "wall_seconds": wall, "compile_seconds": compile_s,
               "config": config,
               "results": {"n_hidden": list(ms), "by_T": by_T, "zero_output_loss": zero,
                           "peak_m_per_T": {str(r["T"]): r["peak_m"] for r in by_T},
                           "diverged": diverged_runs(saved, [f"m{m}" for m in ms])}})
    results.save_arrays(out / "modelwise.npz", {f"T{t}": c for t, c in curves.items()})  # [len(m), seeds] per T
    results.save_json(out / "summary.json", summary)
    draw(out, summary)
    return summary


def draw(out, summary: dict | None = None) -> None:
    """``smdd-modelwise``'s figure from its ``modelwise.npz`` and ``summary.json``."""
    out = Path(out)
    summary = results.run_summary(out, summary)
    res, saved = summary["results"], results.load_arrays(out / "modelwise.npz")
    curves = {int(r["T"]): saved[f"T{int(r['T'])}"] for r in res["by_T"]}
    figures_smdd_extra.modelwise_curves([int(m) for m in res["n_hidden"]], curves,
                                        {int(r["T"]): r["peak_m"] for r in res["by_T"]}, res["zero_output_loss"],
                                        out / "modelwise.png")
