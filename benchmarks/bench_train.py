"""The `smdd` quick sweep as one program per bucket vs a Python loop of jitted single runs.

Same runs, data, keys and steps, measured side by side in one process; training time
only (compile and data generation apart), median of ``--repeats`` after a warm-up.

    python benchmarks/bench_train.py --quick --json bench_train.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxmem import data, results, train
from jaxmem.experiments import smdd
from jaxmem.sweep import _keys, dataset_key, run_sweep


def time_loop(cfg, sweep, dense: bool, repeats: int):
    """Each run as its own jitted ``train.train``; one compile per distinct T."""
    data_root, init_root, _ = _keys(sweep)
    single = jax.jit(lambda key, x: train.train(cfg, train.Hyper(), key, x).train_loss)
    compile_s, runs = 0.0, []
    for T in sweep.T:
        for s in range(sweep.data_seeds):
            rows = data.sparse_rows(dataset_key(data_root, T, s), T, cfg.n_features, sweep.sparsity)
            x = data.to_dense(rows, cfg.n_features) if dense else rows
            key = jax.random.fold_in(dataset_key(init_root, T, s), 0)
            t0 = time.perf_counter()
            compiled = single.lower(key, x).compile()
            compile_s += time.perf_counter() - t0
            runs.append((compiled, key, x))
    for compiled, key, x in runs:  # warm-up
        compiled(key, x).block_until_ready()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for compiled, key, x in runs:
            compiled(key, x).block_until_ready()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), compile_s


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer steps (1,000) and repeats (3)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--dense-loop", action="store_true", help="also time a loop over dense inputs")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()
    cfg, sweep = smdd.preset("quick")
    steps = args.steps or (1000 if args.quick else cfg.steps)
    repeats = args.repeats or 3
    cfg = dataclasses.replace(cfg, steps=steps)
    n_runs = len(sweep.T) * sweep.data_seeds
    element_steps = sum(sweep.T) * sweep.data_seeds * cfg.n_features * steps

    run_sweep(cfg, sweep, progress=False)  # warm-up (its own compiles)
    sweeps = [run_sweep(cfg, sweep, progress=False) for _ in range(repeats)]
    sweep_s = statistics.median(r.train_seconds for r in sweeps)
    loop_s, loop_compile = time_loop(cfg, sweep, dense=False, repeats=repeats)
    out = {
        "date": time.strftime("%Y-%m-%d"), **results.environment(),
        "n_runs": n_runs, "steps": steps, "T": list(sweep.T), "n_features": cfg.n_features,
        "sweep_train_seconds": sweep_s, "sweep_compile_seconds": sweeps[0].compile_seconds,
        "sweep_pad_ratio": sweeps[0].pad_ratio, "sweep_buckets": len(sweeps[0].buckets),
        "loop_train_seconds": loop_s, "loop_compile_seconds": loop_compile,
        "sweep_model_steps_per_s": n_runs * steps / sweep_s, "loop_model_steps_per_s": n_runs * steps / loop_s,
        "sweep_element_steps_per_s": element_steps / sweep_s, "loop_element_steps_per_s": element_steps / loop_s,
        "vs_loop": loop_s / sweep_s,
        "vs_loop_with_compile": (loop_s + loop_compile) / (sweep_s + sweeps[0].compile_seconds),
    }
    if args.dense_loop:
        dense_s, dense_compile = time_loop(cfg, sweep, dense=True, repeats=repeats)
        out.update(dense_loop_train_seconds=dense_s, dense_loop_compile_seconds=dense_compile,
                   dense_loop_element_steps_per_s=element_steps / dense_s, vs_dense_loop=dense_s / sweep_s)
    print(f"{out['cpu']} ({out['backend']}), {n_runs} runs x {steps} steps, median of {repeats}")
    print(f"{'':14s}{'train s':>9s}{'compile s':>11s}{'model-steps/s':>15s}{'G element-steps/s':>19s}")
    rows = [("sweep", "sweep"), ("loop", "loop")] + ([("dense loop", "dense_loop")] if args.dense_loop else [])
    for label, key in rows:
        print(f"{label:14s}{out[key + '_train_seconds']:9.2f}{out[key + '_compile_seconds']:11.2f}"
              f"{n_runs * steps / out[key + '_train_seconds']:15.0f}{out[key + '_element_steps_per_s'] / 1e9:19.3f}")
    print(f"vs_loop = {out['vs_loop']:.2f} (training only), {out['vs_loop_with_compile']:.2f} with compile"
          + (f"; vs_dense_loop = {out['vs_dense_loop']:.2f}" if args.dense_loop else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
