"""Models per second of ``run_grid``'s ``subset`` axis (K random-subset models in one
program) against a Python loop of K ``run_grid`` calls with one run each.

The model: a one-hidden-layer tanh MLP classifier (``--d`` inputs, ``--hidden`` units,
2 classes, softmax cross-entropy) on ``--n`` synthetic rows, full-batch Adam for
``--steps`` updates, half of the rows per model (``subset_fraction=0.5``), per-example
accuracy on every row at the end (``evaluate_scores``). Each variant runs once to compile
(its compile seconds are printed apart: ``GridResult.compile_seconds`` of that first call),
then ``--repeats`` more times; the figure is the median wall time of those (the programs
are cached, so no compiling is in it). Variants: ``grid``: one call, K runs
(``runs_batch`` default: one run at a time on CPU, ``lax.map``); ``grid-vmap``: one call,
all K runs vmapped (``runs_batch=K``); ``loop``: K calls of one run each. Prints
models/s and the ratio grid / loop.

    python benchmarks/bench_memorisation.py --k 32 --steps 200 --repeats 3
"""
import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxmem import run_grid
from jaxmem.memorisation import evaluate_scores


def problem(n: int, d: int, hidden: int):
    kx, kw = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (n, d))
    y = (x @ jax.random.normal(kw, (d,)) + 0.5 * jax.random.normal(jax.random.key(1), (n,)) > 0).astype(jnp.int32)

    def init(key, hp):
        k1, k2 = jax.random.split(key)
        return {"w1": jax.random.normal(k1, (d, hidden)) / np.sqrt(d), "b1": jnp.zeros(hidden),
                "w2": jax.random.normal(k2, (hidden, 2)) / np.sqrt(hidden)}

    def logits(p, b):
        return jnp.tanh(b["x"] @ p["w1"] + p["b1"]) @ p["w2"]

    def loss(p, b, hp):
        z = logits(p, b)
        return jax.nn.logsumexp(z, -1) - jnp.take_along_axis(z, b["y"][:, None], -1)[:, 0]

    def accuracy(p, b, hp):
        return (jnp.argmax(logits(p, b), -1) == b["y"]).astype(jnp.float32)

    return init, loss, evaluate_scores(accuracy), {"x": x, "y": y}


def timed(fn, repeats: int):
    first = fn()  # compiles
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
    return first, statistics.median(walls), walls


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=32, help="models (subsets)")
    ap.add_argument("--n", type=int, default=256, help="training rows")
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    init, loss, evaluate, data = problem(args.n, args.d, args.hidden)
    kw = dict(subset_fraction=0.5, evaluate=evaluate, n_history=4, progress=False, schedule="constant",
              warmup_frac=0.0)
    k = args.k
    results = {}

    def grid(**extra):
        return lambda: run_grid(init, loss, data, {"subset": range(k), "lr": [0.01]}, args.steps, **kw, **extra)

    def loop():
        return [run_grid(init, loss, data, {"subset": [i], "lr": [0.01]}, args.steps, **kw) for i in range(k)]

    for name, fn in (("grid", grid()), ("grid-vmap", grid(runs_batch=k)), ("loop", loop)):
        first, median, walls = timed(fn, args.repeats)
        compile_s = first.compile_seconds if not isinstance(first, list) else first[0].compile_seconds
        results[name] = median
        print(f"{name:10s} K={k}: compile {compile_s:7.2f} s (first call)  wall median {median:7.3f} s "
              f"(of {', '.join(f'{w:.3f}' for w in walls)})  -> {k / median:8.1f} models/s")
    print(f"ratio grid/loop (models per second): {results['loop'] / results['grid']:.2f}x; "
          f"grid-vmap/loop: {results['loop'] / results['grid-vmap']:.2f}x")
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), {jax.device_count()} device(s); "
          f"n={args.n} d={args.d} hidden={args.hidden} steps={args.steps} repeats={args.repeats}")


if __name__ == "__main__":
    main()
