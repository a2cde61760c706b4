"""Benchmark D* on MNIST-sized activations: exact, batched solver, sequential solver.

Times `jaxmem.dstar.exact` and `jaxmem.dstar.solve` on N x d ReLU activations
(median of --repeats calls after a warm-up call; compile time = first call minus
the median; `block_until_ready` before every clock read), and a sequential
per-point solver like the seed's naive loop (one v at a time, a jitted Adam loop
with the same step count and schedule, in the original coordinates) on a sample
of points, extrapolated to N. Two sequential variants: with G = H^T H
precomputed (O(d^2) a step) and without (sum over all N rows every step,
O(N d) a step).

    python benchmarks/bench_dstar.py [--quick] [--json FILE]
"""

import argparse
import json
import os
import platform
import statistics
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmem import dstar


def relu_activations(key, n, d, n_in=784, dead=8):
    """ReLU(x W + b) of Gaussian data through a random projection, `dead` neurons off."""
    key_x, key_w = jax.random.split(key)
    x_NxI = jax.random.normal(key_x, (n, n_in))
    w_IxD = jax.random.normal(key_w, (n_in, d)) / np.sqrt(n_in)
    bias_D = jnp.where(jnp.arange(d) < dead, -1e3, 0.0)
    return jax.nn.relu(x_NxI @ w_IxD + bias_D[None, :])


def timed(fn, repeats):
    """(first-call seconds, median seconds of `repeats` further calls, last output)."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return first, statistics.median(times), out


@partial(jax.jit, static_argnames=("steps", "use_gram"))
def sequential_point(h_NxD, gram_DxD, i, lr, *, steps, use_gram):
    """The seed's naive loop for one point i: Adam on v, warm-up + cosine."""
    h_D = h_NxD[i]
    unit = optax.warmup_cosine_decay_schedule(0.0, 1.0, max(steps // 10, 1), steps)
    optimizer = optax.adam(lambda count: lr * unit(count))

    def loss(v_D):
        if use_gram:
            denominator = v_D @ gram_DxD @ v_D
        else:
            denominator = jnp.sum((h_NxD @ v_D) ** 2)
        return -((v_D @ h_D) ** 2) / denominator

    def step(state, _):
        v_D, opt_state = state["v"], state["opt"]
        updates, opt_state = optimizer.update(jax.grad(loss)(v_D), opt_state)
        return {"v": optax.apply_updates(v_D, updates), "opt": opt_state}, None

    v0_D = h_D / jnp.linalg.norm(h_D)
    state, _ = jax.lax.scan(step, {"v": v0_D, "opt": optimizer.init(v0_D)}, length=steps)
    return -loss(state["v"])


def time_sequential(h_NxD, exact_N, sample, steps, lr, use_gram):
    gram_DxD = h_NxD.T @ h_NxD
    points = np.linspace(0, h_NxD.shape[0] - 1, sample + 1).astype(int)
    run = partial(sequential_point, h_NxD, gram_DxD, lr=lr, steps=steps, use_gram=use_gram)
    compile_start = time.perf_counter()
    jax.block_until_ready(run(points[0]))  # compile + warm-up
    compile_seconds = time.perf_counter() - compile_start
    values = []
    start = time.perf_counter()
    for i in points[1:]:
        values.append(float(jax.block_until_ready(run(i))))  # one point at a time
    per_point = (time.perf_counter() - start) / sample
    want = np.asarray(exact_N)[points[1:]]
    rel_err = float(np.max(np.abs(np.array(values) - want) / want))
    return {"per_point_s": per_point, "extrapolated_s": per_point * h_NxD.shape[0],
            "compile_s": compile_seconds, "sample": sample, "max_rel_err_on_sample": rel_err}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 5,000, fewer repeats")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    parser.add_argument("-n", type=int, default=None, help="rows (default 50,000; 5,000 with --quick)")
    parser.add_argument("-d", type=int, default=512, help="neurons")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls (default 5; 3 with --quick)")
    parser.add_argument("--sample", type=int, default=None, help="points for the sequential solver")
    args = parser.parse_args()
    n = args.n or (5_000 if args.quick else 50_000)
    repeats = args.repeats or (3 if args.quick else 5)
    sample = args.sample or (8 if args.quick else 32)
    steps, lr = 100, 0.25  # solve's defaults; the sequential loop uses the same steps

    env = {"cpu": cpu_model(), "backend": jax.default_backend(), "devices": [str(x) for x in jax.devices()],
           "cpu_count": os.cpu_count(), "load_avg_1m": os.getloadavg()[0], "jax": jax.__version__,
           "x64": bool(jax.config.jax_enable_x64)}
    print(f"device: {env['cpu']} | backend {env['backend']} | {env['cpu_count']} CPUs | "
          f"load {env['load_avg_1m']:.2f} | jax {env['jax']}")

    h_NxD = jax.block_until_ready(relu_activations(jax.random.key(0), n, args.d))
    print(f"h: N = {n}, d = {args.d}, dtype {h_NxD.dtype}, live {int(dstar.live(h_NxD))}, "
          f"rank {int(dstar.rank(h_NxD))}")

    exact_first, exact_s, exact_N = timed(lambda: dstar.exact(h_NxD), repeats)
    solve_first, solve_s, result = timed(lambda: dstar.solve(h_NxD, steps=steps, lr=lr), repeats)
    gap = abs(float(result.total) - int(result.rank))
    rel_err = float(np.max(np.abs(np.asarray(result.dstar) - np.asarray(exact_N)) / np.asarray(exact_N)))
    seq_gram = time_sequential(h_NxD, exact_N, sample, steps, 1e-2, use_gram=True)
    seq_data = time_sequential(h_NxD, exact_N, max(sample // 8, 2), steps, 1e-2, use_gram=False)

    figures = {
        "env": env, "n": n, "d": args.d, "steps": steps, "lr": lr, "repeats": repeats,
        "exact": {"median_s": exact_s, "compile_s": max(exact_first - exact_s, 0.0)},
        "solve": {"median_s": solve_s, "compile_s": max(solve_first - solve_s, 0.0),
                  "total": float(result.total), "rank": int(result.rank), "live": int(result.live),
                  "abs_gap": gap, "converged": bool(result.converged), "max_rel_err_vs_exact": rel_err},
        "sequential_with_gram": seq_gram, "sequential_without_gram": seq_data,
    }
    print(f"exact : {exact_s:8.3f} s median (compile {figures['exact']['compile_s']:.2f} s)")
    print(f"solve : {solve_s:8.3f} s median (compile {figures['solve']['compile_s']:.2f} s), {steps} steps; "
          f"sum {result.total:.4f} vs rank {int(result.rank)} (live {int(result.live)}): "
          f"|gap| {gap:.2e}, converged {bool(result.converged)} (tol 1e-3 * rank); "
          f"max rel err vs exact {rel_err:.1e}")
    for name, seq in (("sequential, G precomputed", seq_gram), ("sequential, sum over data", seq_data)):
        print(f"{name}: {seq['per_point_s'] * 1e3:.2f} ms/point over {seq['sample']} points -> "
              f"{seq['extrapolated_s']:.0f} s for N = {n} (max rel err on sample "
              f"{seq['max_rel_err_on_sample']:.1e})")
    print(f"ratios: solve / exact = {solve_s / exact_s:.1f}x; sequential(G) / solve = "
          f"{seq_gram['extrapolated_s'] / solve_s:.0f}x; sequential(data) / solve = "
          f"{seq_data['extrapolated_s'] / solve_s:.0f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
