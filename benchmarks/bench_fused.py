"""Reference autodiff vs the fused loss-and-gradient of the ReLU-output model.

For each case (dense or sparse inputs, n, T; m = 2, 10% padded rows of weight 0) and
each path, times ``train.advance``: ``--steps`` full-batch AdamW steps of one run, the
gradient alone except the last step, which also takes the loss value (as training
does). All paths run in one process, interleaved, after a warm-up; the median of
``--repeats`` is reported, compile apart. Element-steps count T x n per step.
First it measures the device's two ceilings for the floor (best of ``--repeats``):
float32 matmul FLOP/s and memory bandwidth (an in-place update of a 1 GiB array).

    python benchmarks/bench_fused.py --json bench_fused.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp

from jaxmem import data, devices, train
from jaxmem.models import fused

#: (label, n, T, sparsity, sparse input)
CASES = (("dense n=1000 T=3000", 1000, 3000, 0.99, False),
         ("sparse n=1000 T=3000", 1000, 3000, 0.99, True),
         ("sparse n=10000 T=10000", 10_000, 10_000, 0.999, True))
PATHS = ("reference", "fused-tiled", "fused-reduce")


def _best_seconds(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        seconds.append(time.perf_counter() - start)
    return min(seconds)


def ceilings(repeats: int) -> dict:
    """Best of ``repeats``: float32 matmul FLOP/s (2048^2) and memory bytes/s (10 passes
    over 1 GiB, in place, bytes read plus written)."""
    size, elements, passes = 2048, 2**28, 10
    a, b = (jax.random.normal(jax.random.key(i), (size, size)) for i in range(2))
    matmul_s = _best_seconds(jax.jit(jnp.matmul), a, b, repeats=repeats)
    big = jax.random.uniform(jax.random.key(2), (elements,))
    update = jax.jit(lambda v: jax.lax.fori_loop(0, passes, lambda _, u: u * 1.0001 + 0.5, v))
    copy_s = _best_seconds(update, big, repeats=repeats)
    return {"matmul_flop_per_s": 2 * size**3 / matmul_s, "memory_bytes_per_s": 2 * 4 * elements * passes / copy_s}


def path_program(path: str, n: int, steps: int, x, weights):
    """The jitted ``advance`` of one path, compiled; and its compile seconds."""
    impl = False if path == "reference" else path.removeprefix("fused-")
    cfg = train.TrainConfig(n_features=n, steps=steps, n_history=1, fused=impl)
    hyper = train.Hyper()
    state = train.init_state(cfg, hyper, jax.random.key(1))

    def run(state):
        return train.advance(cfg, hyper, state, x, weights, 1)

    start = time.perf_counter()
    compiled = jax.jit(run).lower(state).compile()
    return compiled, state, time.perf_counter() - start


def time_case(n: int, T: int, sparsity: float, sparse: bool, steps: int, repeats: int, paths):
    rows = data.sparse_rows(jax.random.key(0), T, n, sparsity)
    x = rows if sparse else data.to_dense(rows, n)
    weights = (jnp.arange(T) < T - T // 10).astype(jnp.float32)
    programs = {p: path_program(p, n, steps, x, weights) for p in paths}
    for compiled, state, _ in programs.values():  # warm-up
        jax.block_until_ready(compiled(state))
    seconds = {p: [] for p in paths}  # interleaved, so that load changes hit every path
    for _ in range(repeats):
        for p, (compiled, state, _) in programs.items():
            start = time.perf_counter()
            jax.block_until_ready(compiled(state))
            seconds[p].append(time.perf_counter() - start)
    return {p: {"seconds": statistics.median(s), "compile_seconds": programs[p][2],
                "element_steps_per_s": T * n * steps / statistics.median(s)} for p, s in seconds.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--chunk-elements", type=int, default=fused.CHUNK_ELEMENTS)
    parser.add_argument("--json")
    args = parser.parse_args()
    fused.CHUNK_ELEMENTS = args.chunk_elements
    paths = args.paths.split(",")
    out = {"date": time.strftime("%Y-%m-%d"), **devices.environment(), "steps": args.steps,
           "repeats": args.repeats, "chunk_elements": args.chunk_elements, "load_before": _load(),
           **ceilings(args.repeats), "cases": {}}
    for label, n, T, sparsity, sparse in CASES:
        out["cases"][label] = time_case(n, T, sparsity, sparse, args.steps, args.repeats, paths)
    out["load_after"] = _load()
    print(f"{out['cpu']} ({out['backend']}), {args.steps} steps, median of {args.repeats}, "
          f"chunk {args.chunk_elements} elements, load {out['load_before']:.2f} -> {out['load_after']:.2f}")
    print(f"ceilings: matmul {out['matmul_flop_per_s'] / 1e9:.0f} GFLOP/s, "
          f"memory {out['memory_bytes_per_s'] / 1e9:.1f} GB/s (read + write)")
    print(f"{'case':24s}{'path':14s}{'ms/step':>9s}{'compile s':>11s}{'G el-steps/s':>14s}{'vs ref':>8s}")
    for label, case in out["cases"].items():
        ref = case.get("reference", {}).get("element_steps_per_s")
        for p, r in case.items():
            ratio = f"{r['element_steps_per_s'] / ref:8.2f}" if ref else ""
            print(f"{label:24s}{p:14s}{1e3 * r['seconds'] / args.steps:9.2f}{r['compile_seconds']:11.2f}"
                  f"{r['element_steps_per_s'] / 1e9:14.3f}{ratio}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


def _load() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


if __name__ == "__main__":
    main()
