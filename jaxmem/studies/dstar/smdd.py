"""``dstar-smdd``: D* curves of the training examples for every T of an ``smdd`` sweep.

Hobbhahn, "More findings on maximal data dimensionality" (docs/sources.md §2, seed 000): "we
predict that the lines before the flipping point are high and flat (since all memorized
datapoints get their own direction) and the lines after the point are lower and have a
downward slope", with "some sort of plateau in the beginning for the learned features".

``summarize`` puts each curve in units of m / T (the level of a memorised T-gon) and
reports per T and seed its 10%, 50% and 90% quantiles and the run's train loss, and
compares two sets of T (ours, both thresholds stated at ``FLAT_Q10`` and
``MEMORISED_FRACTION``): where the curves are *flat* (every seed's 10% quantile at least
``FLAT_Q10`` m / T) and where the model *memorises* (every seed's train loss below
``MEMORISED_FRACTION`` of the all-zero output's). In the SMDD sweeps memorisation fails
well before the test-loss bump (the intermediate regime), which is where flatness ends.

Parts: ``smdd``, the sweep (the preset's ``smdd`` sweep without its infinite-data
line; none with ``--from DIR``, which reads the sweep of a saved ``smdd`` run), and
``dstar``, D* of every training example of the sweep's first (lr, weight decay, init
scale) cell: exact and iterative (``dstar.solve``) with its sum check per run, and the
runs' train loss.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np

from jaxmem import dstar, presets
from jaxmem import store as run_store
from jaxmem.store import Part
from jaxmem.studies.smdd import figures, smdd
from jaxmem.studies.smdd.per_setting import sweep_part
from jaxmem.studies.smdd.sweep import Sweep
from jaxmem.train import TrainConfig

DESCRIPTION = "D* curves of the training examples for every T of an smdd sweep (--from DIR or run it)"
#: the smdd presets: ``(TrainConfig, Sweep, infinite-data batch)``; the batch is not used here
PRESETS = smdd.PRESETS
SEEDS = "data_seeds"
OPTIONS = ("source",)
#: the dims of the hidden vectors D* is taken of, in this order
CURVE_DIMS = ("T", "data_seed", "example", "neuron")
#: a curve is flat when its 10% quantile is at least this many m / T (ours)
FLAT_Q10 = 0.5
#: a run memorises when its train loss is below this fraction of the all-zero output's
#: loss, E ||x||^2 = 1 - S^n (ours)
MEMORISED_FRACTION = 0.01


def record(cfg) -> dict:
    train, sweep = cfg[:2]
    return {"TrainConfig": dataclasses.asdict(train), "Sweep": dataclasses.asdict(sweep)}


def from_record(saved: dict):
    return (presets.from_record(TrainConfig, saved["TrainConfig"]), presets.from_record(Sweep, saved["Sweep"]), None)


def run(cfg, store) -> None:
    train, sweep = cfg[:2]
    source = store.options.get("source")
    if source is None:
        swept = store.part("smdd", lambda: sweep_part(train, sweep, store, "smdd"))
        store.part("dstar", lambda: dstar_part(swept, n_runs=0))
        return
    swept, info = read_source(source)
    store.part("dstar", lambda: dstar_part(swept, n_runs=int(len(swept.coords["T"]) * len(swept.coords["data_seed"])),
                                           info=info))


def read_source(folder) -> tuple[Part, dict]:
    """The sweep part of the saved ``smdd`` run in ``folder`` and where it came from."""
    try:
        manifest, parts = run_store.open_parts(folder)
    except (ValueError, FileNotFoundError) as err:
        raise ValueError(f"--from {folder}: not a saved smdd run ({err})") from None
    what = manifest.get("experiment")
    if what != "smdd":
        raise ValueError(f"--from {folder}: holds a {what!r} run, not an smdd run")
    if "" not in parts or "hidden" not in parts[""].arrays:
        raise ValueError(f"--from {folder}: its smdd sweep is not saved yet (an unfinished run?)")
    return parts[""], {"source": str(folder), "smdd": manifest["config"]}


def _curves(part: Part, name: str) -> np.ndarray:
    """Array ``name`` of the sweep's first (lr, weight decay, init scale) cell, its dims
    in ``CURVE_DIMS`` order (those it has)."""
    dims = part.dims[name]
    value = part[name][tuple(slice(None) if d in CURVE_DIMS else 0 for d in dims)]
    kept = [d for d in dims if d in CURVE_DIMS]
    return np.transpose(value, [kept.index(d) for d in CURVE_DIMS if d in kept])


def _timed(fn, *args):
    """``fn(*args)``, its run time, and its compile time (first call minus a second)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    t1 = time.perf_counter()
    value = jax.device_get(fn(*args))
    t2 = time.perf_counter()
    return value, t2 - t1, max(0.0, (t1 - t0) - (t2 - t1))


def dstar_part(swept: Part, n_runs: int, info: dict | None = None) -> Part:
    """D* of the hidden vectors ``[len(T), seeds, T_max, m]`` of a sweep part, exact and
    solved, with the solver's sum check per run."""
    hidden = _curves(swept, "hidden")
    exact, exact_seconds, exact_compile = _timed(dstar.exact, hidden)
    solved, solve_seconds, solve_compile = _timed(dstar.solve, hidden)
    curve, run = ("T", "data_seed", "example"), ("T", "data_seed")
    arrays = {"exact": np.asarray(exact), "solve": np.asarray(solved.dstar), "total": np.asarray(solved.total),
              "rank": np.asarray(solved.rank), "live": np.asarray(solved.live),
              "converged": np.asarray(solved.converged)}
    dims = {"exact": curve, "solve": curve, **{k: run for k in ("total", "rank", "live", "converged")}}
    if "train_loss" in swept.arrays:  # the run's own loss, to tell memorising runs
        arrays["train_loss"], dims["train_loss"] = _curves(swept, "train_loss"), run
    coords = {d: swept.coords[d] for d in run}
    return Part(arrays, dims, coords, n_runs=n_runs, compile_seconds=exact_compile + solve_compile,
                info={**(info or {}), "exact_seconds": exact_seconds, "solve_seconds": solve_seconds,
                      "n_hidden": int(hidden.shape[-1])})


def curve_quantiles(dstar_SxT, n_hidden: int) -> dict:
    """10%, 50% and 90% quantiles of each seed's D* ``[seeds, T]``, in units of m / T."""
    T = dstar_SxT.shape[-1]
    q = np.quantile(np.asarray(dstar_SxT, float) * T / n_hidden, [0.1, 0.5, 0.9], axis=-1)  # [3, seeds]
    return {"q10_over_m_over_T": q[0].tolist(), "median_over_m_over_T": q[1].tolist(),
            "q90_over_m_over_T": q[2].tolist()}


def regimes(by_T: list, zero_loss: float | None) -> dict:
    """The T whose curves are flat in every seed, the T where every seed memorises (None
    without train losses), and the T in one set but not the other."""
    flat = [r["T"] for r in by_T if min(r["q10_over_m_over_T"]) >= FLAT_Q10]
    if zero_loss is None or any(r.get("train_loss") is None for r in by_T):
        return {"flat_T": flat, "memorised_T": None, "flat_not_memorised_T": None, "memorised_not_flat_T": None}
    mem = [r["T"] for r in by_T if max(r["train_loss"]) < MEMORISED_FRACTION * zero_loss]
    return {"flat_T": flat, "memorised_T": mem, "flat_not_memorised_T": [t for t in flat if t not in mem],
            "memorised_not_flat_T": [t for t in mem if t not in flat]}


def _zero_loss(cfg, parts) -> float | None:
    """The all-zero output's loss of the sweep read (its own config, or --from's record)."""
    info = parts["dstar"].info.get("smdd")
    if info is not None:
        cfg = from_record(info)
    train, sweep = cfg[:2]
    return smdd.zero_output_loss(train, sweep.sparsity)


def summarize(parts: dict, cfg) -> dict:
    d = parts["dstar"]
    exact, solved = d["exact"], d["solve"]
    has_loss = "train_loss" in d.arrays
    by_T = []
    for i, t in enumerate(int(t) for t in d.coords["T"]):
        curve = exact[i][:, :t]
        by_T.append({"T": t, "dstar_mean": float(curve.mean()), "dstar_max": float(curve.max(-1).mean()),
                     "dstar_min": float(curve.min(-1).mean()), **curve_quantiles(curve, cfg_hidden(d)),
                     "train_loss": d["train_loss"][i].tolist() if has_loss else None,
                     "sum_check": [{"seed": s, "total": float(d["total"][i, s]), "rank": int(d["rank"][i, s]),
                                    "live": int(d["live"][i, s]), "converged": bool(d["converged"][i, s])}
                                   for s in range(exact.shape[1])],
                     "solve_max_abs_error": float(np.abs(solved[i][:, :t] - curve).max())})
    return {"by_T": by_T, **regimes(by_T, _zero_loss(cfg, parts)), "all_converged": bool(np.all(d["converged"])),
            "exact_seconds": d.info["exact_seconds"], "solve_seconds": d.info["solve_seconds"]}


def draw(parts: dict, summary: dict, cfg, out) -> None:
    """The sorted D* curves, and their quantiles in units of m / T above the runs' train
    loss (the sweep's own figures are ``smdd``'s)."""
    d = parts["dstar"]
    T = [int(t) for t in d.coords["T"]]
    figures.dstar_curves(T, d["exact"], Path(out) / "dstar_curves.png")
    rows = [curve_quantiles(d["exact"][i][:, :t], cfg_hidden(d)) for i, t in enumerate(T)]
    zero = _zero_loss(cfg, parts)
    figures.dstar_levels(T, {k: np.array([r[k] for r in rows]) for k in rows[0]}, FLAT_Q10,
                         d["train_loss"] if "train_loss" in d.arrays else None,
                         MEMORISED_FRACTION * zero, Path(out) / "dstar_levels.png")


def cfg_hidden(d: Part) -> int:
    """m: the hidden size of the sweep whose D* part is ``d`` (kept in its info; parts
    saved before that have only the live-neuron count, at most m)."""
    return int(d.info["n_hidden"]) if "n_hidden" in d.info else int(np.max(d["live"]))
