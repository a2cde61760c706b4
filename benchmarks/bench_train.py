"""The `smdd` quick sweep as one program per bucket vs Python loops of jitted single runs.

Two loops, same runs, data and steps, measured side by side in one process:
- ``loop``: each run written the way a one-model-at-a-time notebook does it (dense
  inputs, ``ReLU((x W^T) W + b)``, ``optax.adamw`` with the SMDD schedule, the whole
  training one jitted ``lax.scan`` keeping the loss of every step);
- ``same-code loop``: jaxmem's own single-run ``train.train`` in a loop, which isolates
  what the one-program sweep adds.
Training time only (compile and data generation apart), median of ``--repeats`` after
a warm-up.

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
import optax

from jaxmem import devices, train
from jaxmem.studies.smdd import smdd
from jaxmem.studies.smdd.sweep import init_key, run_sweep, training_set


def notebook_train(cfg, key, x):
    """One run as a notebook writes it: dense x, factored forward, per-step losses."""
    T, n = x.shape
    W = jax.random.normal(key, (cfg.n_hidden, n)) * jnp.sqrt(2.0 / (cfg.n_hidden + n))
    params = {"W": W, "b": jnp.zeros(n)}
    schedule = optax.warmup_cosine_decay_schedule(0.0, 1e-3, cfg.warmup_steps, cfg.steps, 0.0)
    opt = optax.adamw(schedule, weight_decay=1e-2)

    def loss(p):
        out = jax.nn.relu((x @ p["W"].T) @ p["W"] + p["b"])
        return jnp.mean(jnp.sum((x - out) ** 2, axis=-1))

    def step(carry, _):
        value, grads = jax.value_and_grad(loss)(carry["params"])
        updates, opt_state = opt.update(grads, carry["opt_state"], carry["params"])
        return {"params": optax.apply_updates(carry["params"], updates), "opt_state": opt_state}, value

    carry, losses = jax.lax.scan(step, {"params": params, "opt_state": opt.init(params)}, length=cfg.steps)
    return carry["params"], losses


def time_loop(cfg, sweep, kind: str, repeats: int):
    """Each run its own jitted call; one compile per distinct T."""
    if kind == "notebook":
        single = jax.jit(lambda key, x: notebook_train(cfg, key, x))
    else:
        single = jax.jit(lambda key, x: train.train(cfg, train.Hyper(), key, x))
    compile_s, runs = 0.0, []
    for T in sweep.T:
        for s in range(sweep.data_seeds):
            x = training_set(sweep, cfg.n_features, T, s)
            key = init_key(sweep, 0)
            t0 = time.perf_counter()
            compiled = single.lower(key, x).compile()
            compile_s += time.perf_counter() - t0
            runs.append((compiled, key, x))
    for compiled, key, x in runs:  # warm-up
        jax.block_until_ready(compiled(key, x))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for compiled, key, x in runs:
            jax.block_until_ready(compiled(key, x))
        times.append(time.perf_counter() - t0)
    return statistics.median(times), compile_s


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer steps (1,000) and repeats (3)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()
    cfg, sweep, _ = smdd.PRESETS["quick"]
    steps = args.steps or (1000 if args.quick else cfg.steps)
    repeats = args.repeats or 3
    cfg = dataclasses.replace(cfg, steps=steps)
    n_runs = len(sweep.T) * sweep.data_seeds
    element_steps = sum(sweep.T) * sweep.data_seeds * cfg.n_features * steps

    run_sweep(cfg, sweep, progress=False)  # warm-up (its own compiles)
    sweeps = [run_sweep(cfg, sweep, progress=False) for _ in range(repeats)]
    sweep_s = statistics.median(r.train_seconds for r in sweeps)
    timings = {"sweep": (sweep_s, sweeps[0].compile_seconds),
               "loop": time_loop(cfg, sweep, "notebook", repeats),
               "same_code_loop": time_loop(cfg, sweep, "jaxmem", repeats)}
    out = {"date": time.strftime("%Y-%m-%d"), **devices.environment(),
           "n_runs": n_runs, "steps": steps, "T": list(sweep.T), "n_features": cfg.n_features,
           "repeats": repeats, "sweep_pad_ratio": sweeps[0].pad_ratio, "sweep_buckets": len(sweeps[0].buckets),
           "sweep_bucket_train_seconds": sweeps[0].bucket_train_seconds}
    for name, (train_s, compile_s) in timings.items():
        out.update({f"{name}_train_seconds": train_s, f"{name}_compile_seconds": compile_s,
                    f"{name}_model_steps_per_s": n_runs * steps / train_s,
                    f"{name}_element_steps_per_s": element_steps / train_s})
    out["vs_loop"] = timings["loop"][0] / sweep_s
    out["vs_loop_with_compile"] = sum(timings["loop"]) / sum(timings["sweep"])
    out["vs_same_code_loop"] = timings["same_code_loop"][0] / sweep_s
    print(f"{out['cpu']} ({out['backend']}), {n_runs} runs x {steps} steps, median of {repeats}")
    print(f"{'':16s}{'train s':>9s}{'compile s':>11s}{'model-steps/s':>15s}{'G element-steps/s':>19s}")
    for name in timings:
        print(f"{name:16s}{out[name + '_train_seconds']:9.2f}{out[name + '_compile_seconds']:11.2f}"
              f"{out[name + '_model_steps_per_s']:15.0f}{out[name + '_element_steps_per_s'] / 1e9:19.3f}")
    print(f"vs_loop = {out['vs_loop']:.2f} (training only), {out['vs_loop_with_compile']:.2f} with compile; "
          f"vs_same_code_loop = {out['vs_same_code_loop']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
