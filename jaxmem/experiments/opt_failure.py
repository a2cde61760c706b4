"""``opt-failure``: the toy autoencoder ``ReLU(W^T W x + b)`` on ``X = I_n``, m = 2.

"Optimization Failure" post (SPEC §4): how often training misses the circle solution,
whether the failure is the "symmetric" one (a dead column whose bias sits at 1/n), the
exact construction, the no-bias 2m bound, and which perturbations escape the failure.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxmem import construct, data, figures, identity, results, train
from jaxmem.experiments import presets

DESCRIPTION = "Optimisation failure on the identity (n = 4..12, m = 2): failure rates, classes, escape"


@dataclasses.dataclass(frozen=True)
class OptFailureConfig:
    """Static settings. Optimisers are (name, weight decay): AdamW with the PyTorch
    default decay 1e-2, and plain Adam (no decay); constant lr as in the post."""

    ns: tuple[int, ...] = tuple(range(4, 13))
    seeds: int = 128
    steps: int = 25_000
    lr: float = 1e-3
    optimizers: tuple[tuple[str, float], ...] = (("adamw", 1e-2), ("adam", 0.0))
    init_scales: tuple[float, ...] = (1.0, 3.0)
    no_bias_seeds: int = 32
    escape_n: int = 7
    escape_steps: int = 5_000
    escape_bias: tuple[float, ...] = tuple(np.round(np.linspace(-0.4, 0.2, 13), 3))
    escape_weight: tuple[float, ...] = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)
    seed: int = 0


PRESETS = {"quick": OptFailureConfig(), "paper": OptFailureConfig(seeds=1000, no_bias_seeds=100)}


def train_config(cfg: OptFailureConfig, n: int, steps: int | None = None, use_bias: bool = True):
    return train.TrainConfig(n_features=n, n_hidden=2, steps=steps or cfg.steps, warmup_frac=0.0,
                             schedule="constant", use_bias=use_bias, n_history=100)


def train_grid(cfg: OptFailureConfig, n: int) -> dict:
    """Every (optimiser, init scale, seed) at one n, as one program.
    Arrays come back shaped ``[optimizer, init_scale, seed, ...]``."""
    shape = (len(cfg.optimizers), len(cfg.init_scales), cfg.seeds)
    wd, scale, seed = (a.ravel() for a in np.meshgrid([w for _, w in cfg.optimizers], cfg.init_scales,
                                                      np.arange(cfg.seeds), indexing="ij"))
    hyper = train.Hyper(jnp.full(wd.shape, cfg.lr, jnp.float32), jnp.asarray(wd, jnp.float32),
                        jnp.asarray(scale, jnp.float32))
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.fold_in(jax.random.key(cfg.seed), n),
                                                           jnp.asarray(seed))
    tc, x = train_config(cfg, n), data.identity(n)
    t0 = time.perf_counter()
    program = jax.jit(jax.vmap(lambda h, k: train.train(tc, h, k, x))).lower(hyper, keys).compile()
    compile_seconds = time.perf_counter() - t0
    out = jax.device_get(program(hyper, keys))
    W, b = np.asarray(out.params["W"]), np.asarray(out.params["b"])
    arrays = {"W": W, "b": b, "train_loss": np.asarray(out.train_loss), "history": np.asarray(out.history),
              "diverged": np.asarray(out.diverged), **identity.classify(W, b)}
    arrays = {k: v.reshape(shape + v.shape[1:]) for k, v in arrays.items()}
    return {**arrays, "compile_seconds": np.array(compile_seconds)}


def no_bias_counts(cfg: OptFailureConfig, n: int) -> np.ndarray:
    """One-hots reconstructed by ``ReLU(W^T W x)`` (no bias), per seed (AdamW, scale 1)."""
    tc, x = train_config(cfg, n, use_bias=False), data.identity(n)
    keys = jax.random.split(jax.random.fold_in(jax.random.key(cfg.seed + 1), n), cfg.no_bias_seeds)
    hyper = train.Hyper(cfg.lr, cfg.optimizers[0][1], 1.0)
    out = jax.device_get(jax.jit(jax.vmap(lambda k: train.train(tc, hyper, k, x)))(keys))
    return identity.reconstructed(np.asarray(out.params["W"]), None).sum(-1)


def escape_grid(cfg: OptFailureConfig) -> dict:
    """Start at the symmetric failure (circle of n - 1, dead column, b_dead = 1/n), move
    ``b_dead`` by each ``escape_bias`` and set ``W_dead`` to ``escape_weight`` times a live
    column's length, pointing between two live columns; train; which recover?"""
    n = cfg.escape_n
    start = construct.symmetric_failure(n)
    live_norm = float(np.linalg.norm(start["W"][:, 0]))
    mid = np.pi / (n - 1)  # halfway between live columns 0 and 1
    db, eps = (a.ravel() for a in np.meshgrid(cfg.escape_bias, cfg.escape_weight, indexing="ij"))
    W = np.repeat(start["W"][None], db.size, axis=0)
    W[:, :, -1] = (eps * live_norm)[:, None] * np.array([np.cos(mid), np.sin(mid)])[None]
    b = np.repeat(start["b"][None], db.size, axis=0)
    b[:, -1] += db
    params = {"W": jnp.asarray(W, jnp.float32), "b": jnp.asarray(b, jnp.float32)}
    tc, x = train_config(cfg, n, steps=cfg.escape_steps), data.identity(n)
    hyper = train.Hyper(cfg.lr, cfg.optimizers[0][1], 1.0)
    out = jax.device_get(jax.jit(jax.vmap(lambda p: train.fit(tc, hyper, p, x)))(params))
    Wf, bf = np.asarray(out.params["W"]), np.asarray(out.params["b"])
    grid = (len(cfg.escape_bias), len(cfg.escape_weight))
    return {"recovered": identity.reconstructed(Wf, bf).all(-1).reshape(grid),
            "final_loss": np.asarray(out.train_loss).reshape(grid),
            "final_dead_bias": bf[:, -1].reshape(grid),
            "final_dead_norm": np.linalg.norm(Wf[:, :, -1], axis=-1).reshape(grid)}


def preset(name: str, seeds: int | None = None) -> OptFailureConfig:
    return presets.with_seeds(presets.pick(PRESETS, name), seeds, field="seeds")


def run(preset_name: str, out, seeds: int | None = None, resume: bool = False, progress=None) -> dict:
    cfg = preset(preset_name, seeds)
    out = Path(out)
    start = time.perf_counter()
    config = dataclasses.asdict(cfg)
    config.update(n_hidden=2, recon_tol=identity.RECON_TOL, dead_fraction=identity.DEAD_FRACTION,
                  bias_rel_tol=identity.BIAS_REL_TOL, schedule="constant", classes=list(identity.CLASSES))
    config = json.loads(json.dumps(config, default=float))  # as it reads back from summary.json
    arrays_path = out / "runs.npz"
    saved = results.resume_arrays(out, config, resume)

    by_n, no_bias, construction = [], [], []
    for n in cfg.ns:
        done = all(f"n{n}_{k}" in saved for k in ("cls", "compile_seconds", "no_bias_reconstructed"))
        if not done:
            t0 = time.perf_counter()
            grid = train_grid(cfg, n)
            saved.update({f"n{n}_{k}": v for k, v in grid.items()})
            saved[f"n{n}_no_bias_reconstructed"] = no_bias_counts(cfg, n)
            results.save_arrays(arrays_path, saved)  # after every n: nothing is lost
            if progress or (progress is None and sys.stderr.isatty()):
                print(f"opt-failure: n = {n} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        cls, dead_bias = saved[f"n{n}_cls"], saved[f"n{n}_dead_bias"]
        for io, (name, wd) in enumerate(cfg.optimizers):
            for isc, scale in enumerate(cfg.init_scales):
                c, db = cls[io, isc], dead_bias[io, isc]
                by_n.append({"n": n, "optimizer": name, "weight_decay": wd, "init_scale": scale,
                             "n_seeds": int(c.size), "perfect_rate": float(np.mean(c == 0)),
                             "failure_rate": float(np.mean(c != 0)),
                             "symmetric_failure_rate": float(np.mean(c == 1)),
                             "dead_bias_mean": float(np.nanmean(db)) if np.isfinite(db).any() else None,
                             "n_learned_mean": float(saved[f"n{n}_n_learned"][io, isc].mean()),
                             "n_diverged": int(saved[f"n{n}_diverged"][io, isc].sum())})
        counts = saved[f"n{n}_no_bias_reconstructed"]
        no_bias.append({"n": n, "bound_2m": 4, "max_reconstructed": int(counts.max()),
                        "mean_reconstructed": float(counts.mean()),
                        "cross_construction_reconstructed": int(
                            identity.reconstructed(construct.cross(n)["W"], None).sum())})
        construction.append(_compare_with_construction(saved, cfg, n))

    escape = escape_grid(cfg)
    saved.update({f"escape_{k}": v for k, v in escape.items()})
    results.save_arrays(arrays_path, saved)
    summary = {"experiment": "opt-failure", "preset": preset_name, **results.device_info(),
               "n_runs": len(cfg.ns) * cfg.seeds * len(cfg.optimizers) * len(cfg.init_scales),
               "wall_seconds": time.perf_counter() - start,
               "compile_seconds": float(sum(saved[f"n{n}_compile_seconds"] for n in cfg.ns)),
               "config": config,
               "results": {"by_n": by_n, "no_bias": no_bias, "construction": construction,
                           "escape": {"n": cfg.escape_n, "bias_offsets": list(cfg.escape_bias),
                                      "weight_scales": list(cfg.escape_weight),
                                      "recovered": escape["recovered"].tolist(),
                                      "recovered_fraction": float(escape["recovered"].mean()),
                                      "unperturbed_stays_failed": bool(not escape["recovered"][
                                          list(cfg.escape_bias).index(0.0), 0]),
                                      "unperturbed_final_dead_bias": float(escape["final_dead_bias"][
                                          list(cfg.escape_bias).index(0.0), 0])}}}
    results.save_json(out / "summary.json", summary)
    figures.opt_failure(saved, cfg, by_n, out)
    return summary


def _compare_with_construction(saved: dict, cfg: OptFailureConfig, n: int) -> dict:
    """The exact circle's loss, and how the perfect trained runs differ from it."""
    exact = construct.circle(n, np.float64)
    recon = identity.reconstruction(exact["W"], exact["b"])
    perfect = saved[f"n{n}_cls"] == 0
    W = saved[f"n{n}_W"][perfect]
    gaps = np.array([identity.angle_gaps(w) for w in W]) if len(W) else np.zeros((0, n))
    return {"n": n, "construction_loss": float(np.sum((recon - np.eye(n)) ** 2) / n),
            "construction_column_norm": float(np.linalg.norm(exact["W"][:, 0])),
            "construction_bias": float(exact["b"][0]),
            "perfect_runs": int(perfect.sum()),
            "trained_column_norm_mean": float(np.linalg.norm(W, axis=-2).mean()) if len(W) else None,
            "trained_bias_mean": float(saved[f"n{n}_b"][perfect].mean()) if len(W) else None,
            "trained_gap_max_error_deg": float(np.abs(gaps - 360.0 / n).max()) if len(W) else None}
