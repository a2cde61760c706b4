"""The smdd paper preset (n = 10,000, S = 0.999, 24 T up to 100,000, 50,000 steps):
its largest bucket timed, and the whole preset's training time extrapolated.

Trains the largest bucket's runs (every T of it x the preset's data seeds) for
``--steps`` steps (compile apart; the program's time per step is constant along a
run) and scales to the preset: each bucket costs padded rows x runs x steps
element-steps, at the largest bucket's measured rate. The smaller buckets run at a
lower rate (less work per launch), so the extrapolation is a lower bound on their
time; ``--all-buckets`` times every bucket the same way instead.

    python benchmarks/bench_smdd_paper.py --steps 2000 --json bench_smdd_paper.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time

from jaxmem import devices
from jaxmem.buckets import plan_buckets
from jaxmem.studies.smdd import smdd
from jaxmem.studies.smdd.sweep import run_sweep


def time_bucket(cfg, sweep, sizes, steps: int) -> dict:
    part = dataclasses.replace(sweep, T=tuple(sizes))
    res = run_sweep(dataclasses.replace(cfg, steps=steps, n_history=min(cfg.n_history, steps)), part,
                    progress=False, chunks=1)
    runs = len(sizes) * sweep.data_seeds
    element_steps = max(sizes) * runs * steps * cfg.n_features
    return {"sizes": list(sizes), "padded": max(sizes), "runs": runs, "steps": steps,
            "train_seconds": res.train_seconds, "compile_seconds": res.compile_seconds,
            "element_steps_per_s": element_steps / res.train_seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000, help="steps timed per bucket")
    parser.add_argument("--all-buckets", action="store_true", help="time every bucket, not only the largest")
    parser.add_argument("--preset", default="paper", help="another smdd preset, to try the script on a CPU")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    cfg, sweep, _ = smdd.PRESETS[args.preset]
    buckets = plan_buckets(sweep.T, sweep.max_pad_ratio)
    timed = buckets if args.all_buckets else [max(buckets, key=lambda b: b.padded)]
    rows = []
    for b in timed:
        t0 = time.perf_counter()
        rows.append(time_bucket(cfg, sweep, b.sizes, args.steps))
        rows[-1]["wall_seconds"] = time.perf_counter() - t0
        print(f"bucket T={b.sizes[0]}..{b.sizes[-1]} (padded {b.padded}): {rows[-1]['runs']} runs x {args.steps} "
              f"steps in {rows[-1]['train_seconds']:.1f} s (compile {rows[-1]['compile_seconds']:.1f} s), "
              f"{rows[-1]['element_steps_per_s'] / 1e9:.1f} G element-steps/s", flush=True)
    rate = {r["padded"]: r["element_steps_per_s"] for r in rows}
    largest = rows[-1]["element_steps_per_s"] if not args.all_buckets else None
    total = 0.0
    for b in buckets:
        work = b.padded * len(b.sizes) * sweep.data_seeds * cfg.steps * cfg.n_features
        total += work / rate.get(b.padded, largest or min(rate.values()))
    out = {"date": time.strftime("%Y-%m-%d"), **devices.environment(), "buckets": [list(b.sizes) for b in buckets],
           "timed": rows, "preset_steps": cfg.steps, "estimated_train_seconds": total}
    print(f"smdd {args.preset} preset: estimated training time {total / 60:.1f} min on {out['devices'][0]} "
          f"({len(buckets)} buckets, {cfg.steps} steps)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
