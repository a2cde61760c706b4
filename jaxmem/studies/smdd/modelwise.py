"""``smdd-modelwise``: model-wise double descent, test loss against hidden size m at fixed T.

Henighan et al. 2023 (docs/sources.md §1) map test loss over (T, m) and note "regions where bigger
models or more data hurt performance". This reads that map along m: for each chosen T,
the test loss of m = 1..8 and the m of its peak. The training is smdd-phase's (same
configs, datasets and parts ``"m1"``, ``"m2"``, ...), so ``--from`` an smdd-phase folder
reads its grid without training; otherwise the preset's Ts are trained here. Either way
part ``"modelwise"`` holds the curves read: ``test_loss [m, T, data_seed]``.

The seed's text lost the map's numbers, so the Ts are chosen from where smdd-phase puts
the T-wise bump for m = 2..8: its quick preset finds it at T = 234 (m = 2), 484 (m = 3)
and past 1,000 (m >= 4), so quick reads T = 113, 234, 484, 1,000 (columns of smdd-phase's
quick grid); paper reads the columns of its grid that are 10x those (ours: Hobbhahn says
the double descent "happens exactly 10x earlier" in the reduced setting, seed 000; that
the model-wise peaks move alike is our assumption).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from jaxmem import metrics
from jaxmem.store import Part
from jaxmem.studies.smdd import figures_extra as figures_smdd_extra
from jaxmem.studies.smdd import phase as smdd_phase
from jaxmem.studies.smdd.per_setting import diverged_runs, run_variants, tuple_record
from jaxmem.studies.smdd.smdd import zero_output_loss

DESCRIPTION = "SMDD model-wise double descent: test loss vs hidden size m at fixed T (smdd-phase's grid, --from DIR)"
OPTIONS = ("source",)

_PHASE_QUICK, _PHASE_PAPER = smdd_phase.PRESETS["quick"], smdd_phase.PRESETS["paper"]

#: preset -> (TrainConfig for m = 1, Sweep, hidden sizes m): smdd-phase's presets with T
#: restricted to the columns read here (see the module doc). With ``--from`` the source's
#: config is used and this preset only says which Ts to read.
PRESETS = {
    "quick": (_PHASE_QUICK[0], dataclasses.replace(_PHASE_QUICK[1], T=(113, 234, 484, 1000)), _PHASE_QUICK[2]),
    "paper": (_PHASE_PAPER[0], dataclasses.replace(_PHASE_PAPER[1], T=(1246, 2156, 3730, 6453, 11164)),
              _PHASE_PAPER[2]),
}
SEEDS = "data_seeds"
SET_NAMES = smdd_phase.SET_NAMES


def record(cfg) -> dict:
    return tuple_record(cfg, SET_NAMES, learned_threshold=metrics.LEARNED_THRESHOLD)


def peak_m(ms, test_loss) -> dict:
    """The peak of a mean test-loss curve over hidden sizes ``ms``: its m, whether it is
    interior (a smaller and a larger m do better: model-wise double descent), and its
    height over the smallest and the largest m."""
    loss = np.asarray(test_loss, float)
    j = int(np.nanargmax(loss))
    return {"peak_m": int(ms[j]), "peak_loss": float(loss[j]), "interior": 0 < j < len(ms) - 1,
            "over_smallest_m": float(loss[j] - loss[0]), "over_largest_m": float(loss[j] - loss[-1]),
            "bigger_m_hurts": [int(ms[i + 1]) for i in range(len(ms) - 1) if loss[i + 1] > loss[i]]}


def _from_phase(source) -> tuple:
    """``(cfg, parts, config record)`` of the smdd-phase run in folder ``source``."""
    from jaxmem.studies import protocol

    try:
        module, cfg, _, parts = protocol.open_run(source)
    except (ValueError, FileNotFoundError) as err:
        raise ValueError(f"--from {source}: not a saved smdd-phase run ({err})") from None
    if module.NAME != "smdd-phase":
        raise ValueError(f"--from {source}: holds {module.NAME!r}, not an smdd-phase run")
    missing = [f"m{m}" for m in cfg[2] if f"m{m}" not in parts]
    if missing:
        raise ValueError(f"--from {source}: the smdd-phase run is unfinished (parts {missing} not saved); "
                         f"finish it with --resume first")
    return cfg, parts, smdd_phase.record(cfg)


def curves_part(cfg, parts: dict, T_wanted, info: dict) -> Part:
    """The test loss ``[m, T, data_seed]`` (first cell) of smdd-phase's ``parts`` at the Ts
    of ``T_wanted`` that they hold (all their Ts if none)."""
    train, sweep, ms = cfg
    T = [t for t in T_wanted if t in sweep.T] or list(sweep.T)
    rows = [list(sweep.T).index(t) for t in T]
    test = np.stack([parts[f"m{m}"]["test_loss"][rows, 0, 0, 0] for m in ms])
    return Part({"test_loss": test}, {"test_loss": ("m", "T", "data_seed")},
                {"m": list(ms), "T": T, "data_seed": range(test.shape[-1])},
                info={**info, "n_features": train.n_features, "sparsity": sweep.sparsity,
                      "reduction": train.reduction, "diverged": diverged_runs(parts)})


def run(cfg, store) -> None:
    source = store.options.get("source")
    if source is None:
        parts = run_variants(smdd_phase.variants(cfg), store)
        store.part("modelwise", lambda: curves_part(cfg, parts, cfg[1].T, {}))
        return

    def read():
        phase_cfg, parts, phase_record = _from_phase(source)
        return curves_part(phase_cfg, parts, cfg[1].T, {"source": str(source), "smdd_phase": phase_record})
    store.part("modelwise", read)


def summarize(parts: dict, cfg) -> dict:
    part = parts["modelwise"]
    ms, T, info = [int(m) for m in part.coords["m"]], [int(t) for t in part.coords["T"]], part.info
    by_T = []
    for i, t in enumerate(T):
        mean = np.nanmean(part["test_loss"][:, i], -1)
        by_T.append({"T": t, "test_loss": mean, **peak_m(ms, mean)})
    zero = zero_output_loss(dataclasses.replace(cfg[0], n_features=int(info["n_features"]),
                                                reduction=info["reduction"]), float(info["sparsity"]))
    return {"n_hidden": ms, "by_T": by_T, "zero_output_loss": zero,
            "peak_m_per_T": {str(r["T"]): r["peak_m"] for r in by_T}, "diverged": info["diverged"]}


def draw(parts: dict, summary: dict, cfg, out) -> None:
    """Test loss against m, one line per T, each peak circled."""
    part, res = parts["modelwise"], summary["results"]
    T = [int(t) for t in part.coords["T"]]
    figures_smdd_extra.modelwise_curves([int(m) for m in part.coords["m"]],
                                        {t: part["test_loss"][:, i] for i, t in enumerate(T)},
                                        {int(r["T"]): r["peak_m"] for r in res["by_T"]}, res["zero_output_loss"],
                                        Path(out) / "modelwise.png")
