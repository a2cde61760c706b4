"""``dstar-smdd``: D* curves of the training examples for every T of an ``smdd`` sweep.

Hobbhahn, "More findings on maximal data dimensionality" (SPEC §2): before the switch
from memorising to generalising the curves should be high and flat, after it lower and
sloped, with a plateau for the examples carried by the learned features.
"""
from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np

from jaxmem import dstar, presets, results
from jaxmem.studies.smdd import figures, smdd

DESCRIPTION = "D* curves of the training examples for every T of an smdd sweep (--from DIR or run it)"
PRESETS = smdd.PRESETS
ACCEPTS_FROM = True


def _timed(fn, *args):
    """``fn(*args)``, its run time, and its compile time (first call minus a second)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    t1 = time.perf_counter()
    value = jax.device_get(fn(*args))
    t2 = time.perf_counter()
    return value, t2 - t1, max(0.0, (t1 - t0) - (t2 - t1))


def run(preset_name: str, out, seeds: int | None = None, resume: bool = False, source=None, progress=None,
        overrides: dict | None = None) -> dict:
    out = Path(out)
    start = time.perf_counter()
    if source is not None and overrides:
        raise ValueError(f"--set {', '.join(overrides)} does not apply with --from: the sweep is the source's")
    if source is None:  # train the sweep first, into out/smdd (--set applies to it)
        source = out / "smdd"
        smdd.run(preset_name, source, seeds=seeds, resume=resume, progress=progress, overrides=overrides)
    source = Path(source)
    summary_path, arrays_path = source / "summary.json", source / "runs.npz"
    if not summary_path.exists():
        raise ValueError(f"--from {source}: no summary.json of an smdd run there")
    smdd_summary = results.load_json(summary_path)
    if smdd_summary.get("experiment") != "smdd":
        raise ValueError(f"--from {source}: holds {smdd_summary.get('experiment')!r}, not an smdd run")
    if not arrays_path.exists():
        raise ValueError(f"--from {source}: runs.npz is missing")
    config = smdd_summary["config"]
    T = [int(t) for t in config["T"]]
    hidden = results.load_arrays(arrays_path)["hidden"][:, 0, 0, 0]  # [len(T), seeds, T_max, m]

    exact, exact_seconds, exact_compile = _timed(dstar.exact, hidden)
    solved, solve_seconds, solve_compile = _timed(dstar.solve, hidden)
    exact = np.asarray(exact)
    arrays = {"T": np.array(T), "dstar_exact": exact, "dstar_solve": np.asarray(solved.dstar),
              "total": np.asarray(solved.total), "rank": np.asarray(solved.rank),
              "live": np.asarray(solved.live), "converged": np.asarray(solved.converged)}
    results.save_arrays(out / "dstar.npz", arrays)

    by_T = []
    for i, t in enumerate(T):
        d = exact[i][:, :t]
        by_T.append({"T": t, "dstar_mean": float(d.mean()), "dstar_max": float(d.max(-1).mean()),
                     "dstar_min": float(d.min(-1).mean()),
                     "sum_check": [{"seed": s, "total": float(solved.total[i, s]), "rank": int(solved.rank[i, s]),
                                    "live": int(solved.live[i, s]), "converged": bool(solved.converged[i, s])}
                                   for s in range(exact.shape[1])],
                     "solve_max_abs_error": float(np.abs(np.asarray(solved.dstar)[i][:, :t] - d).max())})
    summary = results.summary("dstar-smdd", preset_name, {"n_runs": int(exact.shape[0] * exact.shape[1]), "wall_seconds": time.perf_counter() - start,
               "compile_seconds": exact_compile + solve_compile,
               "config": presets.record_overrides({"source": str(source), "smdd": config}, overrides),
               "results": {"by_T": by_T, "all_converged": bool(np.all(solved.converged)),
                           "exact_seconds": exact_seconds, "solve_seconds": solve_seconds}})
    results.save_json(out / "summary.json", summary)
    draw(out, summary, nested=False)  # smdd.run drew the sweep's own figures
    return summary


def draw(out, summary: dict | None = None, nested: bool = True) -> None:
    """The D* curves of a ``dstar-smdd`` run from its ``dstar.npz``; with ``nested``, also
    the figures of the sweep it trained into ``out/smdd`` (none with ``--from``)."""
    out = Path(out)
    arrays = results.load_arrays(out / "dstar.npz")
    figures.dstar_curves([int(t) for t in arrays["T"]], arrays["dstar_exact"], out / "dstar_curves.png")
    if nested and (out / "smdd" / "summary.json").is_file() and (out / "smdd" / "runs.npz").is_file():
        smdd.draw(out / "smdd")
