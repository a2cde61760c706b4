"""Parity grid: models per second as one grid vs a loop of single models.

Grid: ``parity_grid.train_grid`` (``run_grid`` per hidden size, train sets padded to
the largest; runs mapped together: vmapped on an accelerator, ``lax.map`` on CPU).
Loop: each model alone on ``run_grid`` at its own train size and hidden size, the way a
one-model-per-notebook user runs it (one compile per shape, reused across seeds and
weight decays). Training time only: compiles are timed apart. Median of ``--repeats``
after a warm-up for the grid; every model of the loop runs once after its shape's
compile.

    python benchmarks/bench_grok.py --quick --json bench_grok.json

``--paper-estimate S`` instead trains each hidden-size group of the paper preset (225
models each) for ``S`` steps and extrapolates the whole preset's training time to its
20,000 steps (time per step is constant along a run: the history is every 100 steps).

    python benchmarks/bench_grok.py --paper-estimate 200
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics

import jax.numpy as jnp
import numpy as np

from jaxmem import devices, store
from jaxmem.studies.grokking import grok, parity_grid


def time_program(cfg: parity_grid.ParityConfig, repeats: int, batch: int | None) -> dict:
    runs = parity_grid.grid(cfg)
    _, compile_s, _ = parity_grid.train_grid(cfg, runs, batch)  # compile + warm-up
    seconds = [parity_grid.train_grid(cfg, runs, batch)[2] for _ in range(repeats)]
    return {"train_seconds": statistics.median(seconds), "all_seconds": seconds, "compile_seconds": compile_s}


def time_loop(cfg: parity_grid.ParityConfig) -> dict:
    runs, gcfg, shapes, compile_s, train_s = parity_grid.grid(cfg), cfg.grok_config, set(), 0.0, 0.0
    seeds = tuple(range(cfg.seeds))
    train, test = parity_grid.seed_data(cfg, seeds)
    for i in range(len(runs["seed"])):
        n, hid, wd, seed = (runs[k][i].item() for k in ("train_size", "hidden", "weight_decay", "seed"))
        res = grok.fit(gcfg, parity_grid.grid_model(cfg, hid, seeds), train, test,
                       {"n_train": [n], "lr": [cfg.lr], "weight_decay": [wd], grok.RUN_SEED: [seed]},
                       hp_dtype=jnp.float32, b1=cfg.b1, b2=cfg.b2, progress=False)
        shapes.add((n, hid))
        compile_s, train_s = compile_s + res.compile_seconds, train_s + res.train_seconds
    return {"train_seconds": train_s, "compile_seconds": compile_s, "compiles": len(shapes)}


def paper_estimate(steps: int) -> dict:
    """Seconds per hidden-size group of the paper grid at ``steps``, scaled to its steps."""
    cfg = parity_grid.PRESETS["paper"]
    short = dataclasses.replace(cfg, steps=steps, n_history=max(1, steps // 100))
    runs = parity_grid.grid(short)
    groups = {}
    for h in short.hidden_sizes:
        sel = {k: v[runs["hidden"] == h] for k, v in runs.items()}
        _, compile_s, _ = parity_grid.train_grid(short, sel)
        _, _, seconds = parity_grid.train_grid(short, sel)
        groups[h] = {"models": int(sel["seed"].size), "seconds": seconds, "compile_seconds": compile_s,
                     "estimated_paper_seconds": seconds * cfg.steps / steps}
        print(f"hidden {h}: {groups[h]['models']} models x {steps} steps in {seconds:.2f} s "
              f"(compile {compile_s:.1f} s) -> {groups[h]['estimated_paper_seconds'] / 60:.1f} min at {cfg.steps}",
              flush=True)
    total = sum(g["estimated_paper_seconds"] for g in groups.values())
    print(f"paper preset ({sum(g['models'] for g in groups.values())} models x {cfg.steps} steps): "
          f"about {total / 3600:.2f} h of training on this device")
    return {"steps": steps, "groups": groups, "estimated_paper_seconds": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the quick preset's grid at --steps (a CPU)")
    parser.add_argument("--steps", type=int, default=None, help="steps per model (default: the preset's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=None,
                        help="runs vmapped at a time in the program (0: all; default: all on an accelerator, 1 on CPU)")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    parser.add_argument("--paper-estimate", type=int, default=None, metavar="STEPS",
                        help="time each hidden-size group of the paper grid at STEPS steps and extrapolate")
    args = parser.parse_args()
    if args.paper_estimate:
        out = {**paper_estimate(args.paper_estimate), **devices.environment()}
        if args.json:
            store.save_json(args.json, out)
        return
    cfg = parity_grid.PRESETS["quick" if args.quick else "paper"]
    if args.steps:
        cfg = dataclasses.replace(cfg, steps=args.steps)
    n_models = int(np.prod(cfg.grid_shape))
    program, loop = time_program(cfg, args.repeats, args.batch), time_loop(cfg)
    out = {"models": n_models, "steps": cfg.steps, "program": program, "loop": loop,
           "program_models_per_second": n_models / program["train_seconds"],
           "loop_models_per_second": n_models / loop["train_seconds"],
           "vs_loop": loop["train_seconds"] / program["train_seconds"],
           "vs_loop_with_compile": (loop["train_seconds"] + loop["compile_seconds"])
           / (program["train_seconds"] + program["compile_seconds"]), **devices.environment()}
    print(f"{n_models} models x {cfg.steps} steps on {out['backend']} ({out['cpu']}): "
          f"grid {program['train_seconds']:.2f} s ({out['program_models_per_second']:.2f} models/s, "
          f"compile {program['compile_seconds']:.1f} s), loop {loop['train_seconds']:.2f} s "
          f"({out['loop_models_per_second']:.2f} models/s, {loop['compiles']} compiles, "
          f"{loop['compile_seconds']:.1f} s); vs_loop {out['vs_loop']:.2f} (with compile {out['vs_loop_with_compile']:.2f})")
    if args.json:
        store.save_json(args.json, out)


if __name__ == "__main__":
    main()
