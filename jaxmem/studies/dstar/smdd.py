"""``dstar-smdd``: D* curves of the training examples for every T of an ``smdd`` sweep.

Hobbhahn, "More findings on maximal data dimensionality" (docs/sources.md §2): before the switch
from memorising to generalising the curves should be high and flat, after it lower and
sloped, with a plateau for the examples carried by the learned features.

Parts: ``smdd``, the sweep (the preset's ``smdd`` sweep without its infinite-data
line; none with ``--from DIR``, which reads the sweep of a saved ``smdd`` run), and
``dstar``, D* of every training example of the sweep's first (lr, weight decay, init
scale) cell: exact and iterative (``dstar.solve``) with its sum check per run.
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
    coords = {d: swept.coords[d] for d in run}
    return Part(arrays, dims, coords, n_runs=n_runs, compile_seconds=exact_compile + solve_compile,
                info={**(info or {}), "exact_seconds": exact_seconds, "solve_seconds": solve_seconds})


def summarize(parts: dict, cfg) -> dict:
    d = parts["dstar"]
    exact, solved = d["exact"], d["solve"]
    by_T = []
    for i, t in enumerate(int(t) for t in d.coords["T"]):
        curve = exact[i][:, :t]
        by_T.append({"T": t, "dstar_mean": float(curve.mean()), "dstar_max": float(curve.max(-1).mean()),
                     "dstar_min": float(curve.min(-1).mean()),
                     "sum_check": [{"seed": s, "total": float(d["total"][i, s]), "rank": int(d["rank"][i, s]),
                                    "live": int(d["live"][i, s]), "converged": bool(d["converged"][i, s])}
                                   for s in range(exact.shape[1])],
                     "solve_max_abs_error": float(np.abs(solved[i][:, :t] - curve).max())})
    return {"by_T": by_T, "all_converged": bool(np.all(d["converged"])),
            "exact_seconds": d.info["exact_seconds"], "solve_seconds": d.info["solve_seconds"]}


def draw(parts: dict, summary: dict, cfg, out) -> None:
    """The D* curves (the sweep's own figures are ``smdd``'s)."""
    d = parts["dstar"]
    figures.dstar_curves([int(t) for t in d.coords["T"]], d["exact"], Path(out) / "dstar_curves.png")
