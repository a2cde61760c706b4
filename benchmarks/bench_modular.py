"""The explorable's modular-addition model: training steps per second per model.

One model alone; ``--seeds`` models in one ``run_grid`` (``modular_addition.train_seeds``),
vmapped or mapped one at a time (``lax.map``, the CPU default); and two grids of half
the seeds run together from two threads (do they run in parallel on the CPU's cores?).
In the source's precision (embedding float32, the rest float64) and in float32.
Training time only: compiles are timed apart; median of ``--repeats`` after a warm-up.
The explorable reports about 1,000 steps/s for one model on a V100.

    python benchmarks/bench_modular.py --steps 2000 --json bench_modular.json
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from jaxmem import devices, store
from jaxmem.studies.grokking import modular_addition


def timed(jobs, repeats: int) -> tuple[float, float]:
    """(median s from the start to the last result, compile s) of ``jobs``, a list of
    ``train_seeds`` keyword arguments run together (one thread each); the first round
    compiles and warms up (later rounds reuse its programs)."""
    def one(kwargs):
        return modular_addition.train_seeds(**kwargs, progress=False)

    seconds, compile_s = [], 0.0
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            outs = list(pool.map(one, jobs))
            seconds.append(time.perf_counter() - t0)
            if i == 0:
                compile_s = sum(out[1] for out in outs)
    return statistics.median(seconds[1:]), compile_s


def measure(cfg: modular_addition.ModularConfig, seeds: int, repeats: int) -> dict:
    def job(n_seeds, batch, first=0):
        return {"cfg": cfg, "variant": "factored", "seeds": range(first, first + n_seeds), "runs_batch": batch}

    half = seeds // 2
    cases = {"single": ([job(1, 1)], 1), f"lax.map of {seeds}": ([job(seeds, 1)], seeds),
             f"vmap of {seeds}": ([job(seeds, seeds)], seeds),
             f"two grids of {half}": ([job(half, 1), job(half, 1, half)], 2 * half)}
    out = {}
    with cfg.precision_context():
        for name, (jobs, n_models) in cases.items():
            seconds, compile_s = timed(jobs, repeats)
            out[name] = {"seconds": seconds, "compile_seconds": compile_s, "models": n_models,
                         "steps_per_second_per_model": cfg.steps / seconds,
                         "model_steps_per_second": n_models * cfg.steps / seconds}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precisions", default="source,float32")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args()
    out = {"steps": args.steps, **devices.environment(), "by_precision": {}}
    for precision in args.precisions.split(","):
        cfg = dataclasses.replace(modular_addition.PRESETS["quick"], steps=args.steps, n_history=10,
                                  precision=precision)
        out["by_precision"][precision] = figures = measure(cfg, args.seeds, args.repeats)
        for name, f in figures.items():
            print(f"{precision:8s} {name:22s} {f['steps_per_second_per_model']:7.0f} steps/s per model, "
                  f"{f['model_steps_per_second']:7.0f} model-steps/s (compile {f['compile_seconds']:.1f} s)", flush=True)
    print(f"on {out['backend']} ({out['cpu']}), {args.steps} steps, median of {args.repeats} after a warm-up")
    if args.json:
        store.save_json(args.json, out)


if __name__ == "__main__":
    main()
