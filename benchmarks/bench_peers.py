"""The `smdd` quick sweep: an instance-axis PyTorch trainer (docs/sources.md §5) vs jaxmem's ``run_sweep``.

The PyTorch side is written the way users run this sweep today (the toy-model notebook,
the interpretability course's double-descent exercise): a model with an instance axis
(``W [instances, m, n]``, ``b [instances, n]``), one instance per (data seed, init seed)
keeping each data seed's best init by final loss, a Python loop over T, dense inputs
``x [instances, T, n]`` from the same sparse-feature distribution, ``torch.optim.AdamW``
(fused) with jaxmem's warm-up + cosine schedule, lr, weight decay, betas and eps, and
jaxmem's loss (summed over features, averaged over examples, summed over instances).
``--torch-compile`` adds a side with the loss under ``torch.compile``; ``--fused`` runs
jaxmem with ``TrainConfig(fused=True)`` (off in the preset).

Both sides train the same runs for the same steps in one process, interleaved, median
of ``--repeats`` after a warm-up. Training time only: compile and evaluation apart, and
PyTorch's data generation too; jaxmem's ``train_seconds`` still holds its (asynchronously
dispatched) data generation and init, about 2.5 s of the quick sweep, so the ratios
understate jaxmem slightly.

    python benchmarks/bench_peers.py --quick --json bench_peers.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import time

import numpy as np
import torch

from jaxmem import devices
from jaxmem.studies.smdd import smdd
from jaxmem.studies.smdd.sweep import run_sweep
from jaxmem.train import Hyper


def sparse_features(gen: torch.Generator, instances: int, T: int, n: int, sparsity: float) -> torch.Tensor:
    """``[instances, T, n]``: each feature 0 with probability ``sparsity``, else U[0, 1);
    rows rescaled to unit norm (all-zero rows stay zero)."""
    x = torch.rand(instances, T, n, generator=gen)
    x = x * (torch.rand(instances, T, n, generator=gen) < 1.0 - sparsity)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def losses(W: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-instance loss ``mean_t sum_i (x - ReLU(W^T W x + b))^2``, ``[instances]``."""
    h = torch.bmm(x, W.transpose(1, 2))
    out = torch.relu(torch.baddbmm(b[:, None, :], h, W))
    return (x - out).square().sum(-1).mean(-1)


def warmup_cosine(steps: int, warmup: int):
    """The lr multiplier at each step: linear 0 -> 1 over ``warmup``, half-cosine to 0."""
    def factor(step: int) -> float:
        if step < warmup:
            return step / warmup
        return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup, steps - warmup) / max(steps - warmup, 1)))

    return factor


def torch_train(cfg, hyper: Hyper, x: torch.Tensor, gen: torch.Generator, loss=losses):
    """Train one instance per row of ``x`` on ``loss`` (``losses`` or a compiled one);
    return ``W``, ``b`` and the final losses."""
    instances, m, n = x.shape[0], cfg.n_hidden, cfg.n_features
    W = torch.nn.Parameter(torch.randn(instances, m, n, generator=gen) * math.sqrt(2.0 / (m + n)))
    b = torch.nn.Parameter(torch.zeros(instances, n))
    opt = torch.optim.AdamW([W, b], lr=hyper.lr, betas=(cfg.b1, cfg.b2), eps=cfg.eps,
                            weight_decay=hyper.weight_decay, fused=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(cfg.steps, cfg.warmup_steps))
    for _ in range(cfg.steps):
        opt.zero_grad()
        loss(W, b, x).sum().backward()
        opt.step()
        schedule.step()
    with torch.no_grad():
        return W.detach(), b.detach(), losses(W, b, x)


def torch_sweep(cfg, sweep, seed: int = 0, loss=losses):
    """The sweep as a Python loop over T: per T, training seconds and each data seed's
    best final train loss ``[data_seeds]``."""
    gen, k = torch.Generator().manual_seed(seed), sweep.init_seeds
    seconds, best = [], []
    for T in sweep.T:
        with torch.no_grad():
            x = sparse_features(gen, sweep.data_seeds, T, cfg.n_features, sweep.sparsity)
            x = x.repeat_interleave(k, dim=0)  # one instance per (data seed, init seed)
        t0 = time.perf_counter()
        _, _, final = torch_train(cfg, Hyper(), x, gen, loss)
        seconds.append(time.perf_counter() - t0)
        best.append(final.reshape(sweep.data_seeds, k).min(-1).values.numpy())
    return seconds, np.stack(best)


def measure(cfg, sweep, repeats: int, torch_losses: dict):
    """Warm up, then ``repeats`` interleaved rounds of jaxmem and each PyTorch side
    (name -> loss function), so a change of load hits all of them."""
    warm_up = run_sweep(cfg, sweep, progress=False)  # compiles (a process may cache them for later calls)
    warm_up_s = {}
    for name, loss in torch_losses.items():
        t0 = time.perf_counter()
        torch_sweep(dataclasses.replace(cfg, steps=min(cfg.steps, 50)), sweep, loss=loss)
        warm_up_s[name] = time.perf_counter() - t0  # includes torch.compile's compiles
    jax_runs, torch_runs = [], {name: [] for name in torch_losses}
    for r in range(repeats):
        jax_runs.append(run_sweep(cfg, sweep, progress=False))
        for name, loss in torch_losses.items():
            torch_runs[name].append(torch_sweep(cfg, sweep, seed=r, loss=loss))
    return warm_up.compile_seconds, warm_up_s, jax_runs, torch_runs


def summarize(cfg, sweep, repeats: int, measured) -> dict:
    """The JSON figures: ratios are PyTorch training time over jaxmem's."""
    compile_s, warm_up_s, jax_runs, torch_runs = measured
    jax_s = statistics.median(r.train_seconds for r in jax_runs)
    n_runs = len(sweep.T) * sweep.data_seeds * sweep.init_seeds
    preset_steps = smdd.PRESETS["quick"][0].steps
    out = {
        "date": time.strftime("%Y-%m-%d"), **devices.environment(), "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "device": devices.cpu_model(),
        "steps": cfg.steps, "jax_fused": cfg.fused, "repeats": repeats, "T": list(sweep.T), "n_features": cfg.n_features,
        "data_seeds": sweep.data_seeds, "init_seeds": sweep.init_seeds, "n_runs": n_runs,
        "instances_per_T": sweep.data_seeds * sweep.init_seeds,
        "jax_seconds": jax_s, "jax_compile_seconds": compile_s,
        "jax_wall_seconds": statistics.median(r.wall_seconds for r in jax_runs),
        "jax_model_steps_per_s": n_runs * cfg.steps / jax_s,
        "jax_buckets": [list(b.sizes) for b in jax_runs[0].buckets],
        "jax_seconds_by_bucket": [statistics.median(r.bucket_train_seconds[i] for r in jax_runs)
                                  for i in range(len(jax_runs[0].buckets))],
        "jax_train_loss": jax_runs[0].arrays["train_loss"][:, 0, 0, 0].mean(-1).tolist(),
    }
    for name, runs in torch_runs.items():
        torch_s = statistics.median(sum(s) for s, _ in runs)
        vs = "vs_" + name
        out.update({
            vs: torch_s / jax_s, f"{vs}_with_compile": torch_s / (jax_s + compile_s),
            # per-step cost is constant, so training times scale with steps; compile does not
            f"{vs}_with_compile_at_{preset_steps}_steps": torch_s / (jax_s + compile_s * cfg.steps / preset_steps),
            f"{name}_seconds": torch_s, f"{name}_warmup_seconds": warm_up_s[name],
            f"{name}_seconds_by_T": [statistics.median(s[i] for s, _ in runs) for i in range(len(sweep.T))],
            f"{name}_model_steps_per_s": n_runs * cfg.steps / torch_s,
            f"{name}_train_loss": runs[0][1].mean(-1).tolist(),
        })
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 steps instead of the preset's 4,000")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="timed sweeps per side (median)")
    parser.add_argument("--init-seeds", type=int, default=None, help="instances per data seed (best of k)")
    parser.add_argument("--torch-compile", action="store_true",
                        help="also a PyTorch side with the loss under torch.compile (inductor)")
    parser.add_argument("--fused", action="store_true", help="jaxmem with TrainConfig(fused=True)")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()
    cfg, sweep, _ = smdd.PRESETS["quick"]
    preset_steps = cfg.steps
    cfg = dataclasses.replace(cfg, steps=args.steps or (1000 if args.quick else cfg.steps), fused=args.fused)
    sweep = dataclasses.replace(sweep, init_seeds=args.init_seeds or sweep.init_seeds)
    sides = {"torch": losses}
    if args.torch_compile:
        sides["torch_compiled"] = torch.compile(losses, dynamic=True)
    load_start = os.getloadavg()
    out = summarize(cfg, sweep, args.repeats, measure(cfg, sweep, args.repeats, sides))
    out.update(load_average_start=load_start, load_average_end=os.getloadavg())

    print(f"{out['device']}, torch {out['torch']} ({out['torch_threads']} threads), jax {out['jax']}; "
          f"{out['n_runs']} runs x {cfg.steps} steps, median of {args.repeats}; 1-min load "
          f"{load_start[0]:.2f} -> {out['load_average_end'][0]:.2f}")
    print("sanity, final train loss per T (mean over data seeds of the best init), training s per T:")
    print(f"{'T':>6s}{'jaxmem':>10s}" + "".join(f"{name:>16s}{'s':>8s}" for name in sides))
    for i, T in enumerate(sweep.T):
        print(f"{T:6d}{out['jax_train_loss'][i]:10.4f}"
              + "".join(f"{out[name + '_train_loss'][i]:16.4f}{out[name + '_seconds_by_T'][i]:8.2f}" for name in sides))
    print(f"jaxmem {out['jax_seconds']:.2f} s + compile {out['jax_compile_seconds']:.2f} s")
    for name in sides:
        vs = "vs_" + name
        print(f"{name} {out[name + '_seconds']:.2f} s (warm-up {out[name + '_warmup_seconds']:.1f} s): "
              f"{vs} = {out[vs]:.2f} (training only), {out[vs + '_with_compile']:.2f} with jaxmem's compile, "
              f"{out[f'{vs}_with_compile_at_{preset_steps}_steps']:.2f} with it at {preset_steps} steps")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
