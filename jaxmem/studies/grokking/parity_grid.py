"""``parity-grid``: when does a one-hidden-layer MLP grok sparse parity? (SPEC §3)

The explorable's grid of train size x hidden size x weight decay x 9 seeds (1,125
models) trains as one program: train sets pad to the largest with zero-weight rows, and
runs of each hidden size are mapped together inside it.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxmem import presets, results, tasks
from jaxmem.models import parity
from jaxmem.studies.grokking import figures as figures_grok
from jaxmem.studies.grokking import grok

DESCRIPTION = "Sparse parity (30 bits, 3 relevant): outcome maps over train size x hidden size x weight decay"


@dataclasses.dataclass(frozen=True)
class ParityConfig:
    """The explorable's grid and training (AdamW lr 3e-3, betas (0.99, 0.98), 20,000
    steps, 5,000 test strings, a history point every 100 steps). ``decay="l2"`` as in its
    published sweep config (the article's text uses L1).

    Outcomes are the article's figure classes (``grok.loss_classes`` with
    ``loss_threshold`` and ``ratio_threshold``), from losses recorded with each example's
    loss floored at ``loss_floor``: the source's published per-run minimum train losses
    sit at float32's 2^-23 (``grok.FLOAT32_LOSS_FLOOR``) for nearly every model, while an
    unfloored float32 loss reaches 1e-10 or exactly 0 and makes the max test/train ratio
    measure round-off. Its sparse-parity notebook is not readable in the published
    repository, so the floor is taken from those published numbers, not its code.
    The accuracy classes (``outcome``) are kept as a second view.
    """

    train_sizes: tuple[int, ...] = (750, 1000, 1250, 1500, 1750)
    hidden_sizes: tuple[int, ...] = (16, 32, 64, 128, 258)
    weight_decays: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)
    seeds: int = 9
    steps: int = 20_000
    lr: float = 3e-3
    b1: float = 0.99
    b2: float = 0.98
    decay: str = "l2"
    loss: str = "ce"
    init_scale: float = 1.0
    n_bits: int = 30
    n_relevant: int = 3
    n_test: int = 5000
    n_history: int = 200
    loss_floor: float = grok.FLOAT32_LOSS_FLOOR
    loss_threshold: float = grok.LOSS_THRESHOLD
    ratio_threshold: float = grok.RATIO_THRESHOLD
    seed: int = 0

    def __post_init__(self):
        for name in ("train_sizes", "hidden_sizes"):
            bad = [v for v in getattr(self, name) if int(v) != v or v < 1]
            if bad or not getattr(self, name):
                raise ValueError(f"{name} must be positive integers, got {getattr(self, name)!r}")
        if any(w < 0 for w in self.weight_decays):
            raise ValueError(f"weight_decays must be >= 0, got {self.weight_decays!r}")
        if self.seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {self.seeds!r}")

    @property
    def grid_shape(self) -> tuple[int, int, int, int]:
        return len(self.train_sizes), len(self.hidden_sizes), len(self.weight_decays), self.seeds

    @property
    def grok_config(self) -> grok.GrokConfig:
        return grok.GrokConfig(steps=self.steps, decay=self.decay, loss=self.loss, n_history=self.n_history,
                               loss_floor=self.loss_floor)

    def outcomes(self, history) -> dict:
        return grok.outcomes(history, self.grok_config.history_steps, self.loss_threshold, self.ratio_threshold)


#: quick: 54 of the 1,125 models (3 train sizes x 2 hidden sizes x 3 decays x 3 seeds) at
#: half the steps, 10,000, with a history point every 100 steps as the source's
PRESETS = {"quick": ParityConfig(train_sizes=(750, 1250, 1750), hidden_sizes=(16, 64), weight_decays=(0.01, 0.1, 1.0),
                                 seeds=3, steps=10_000, n_history=100),
           "paper": ParityConfig()}


def grid(cfg: ParityConfig) -> dict:
    """Every run's settings, flattened in the order ``[train, hidden, wd, seed]``."""
    axes = np.meshgrid(np.arange(len(cfg.train_sizes)), np.arange(len(cfg.hidden_sizes)),
                       np.arange(len(cfg.weight_decays)), np.arange(cfg.seeds), indexing="ij")
    i_n, i_h, i_w, seed = (a.ravel() for a in axes)
    return {"train_size": np.asarray(cfg.train_sizes)[i_n], "hidden": np.asarray(cfg.hidden_sizes)[i_h],
            "weight_decay": np.asarray(cfg.weight_decays, np.float32)[i_w], "seed": seed}


def train_grid(cfg: ParityConfig, runs: dict, batch: int | None = None):
    """All runs in ``runs`` (as from ``grid``) as one program.

    Inside it, runs of one hidden size are mapped together (``grok.map_runs`` with
    ``batch``), so no neuron is padded; train sets pad to the largest with zero-weight
    rows. Seed ``s`` draws the data (smaller train sets are prefixes of larger ones) and
    the init. Returns (``{"history": History, "relevant_share": [runs]}``, compile s, run s).
    """
    grok_cfg, n_max = cfg.grok_config, max(cfg.train_sizes)
    hidden = np.asarray(runs["hidden"])
    groups = {int(h): np.flatnonzero(hidden == h) for h in np.unique(hidden)}
    order = np.argsort(np.concatenate(list(groups.values())))  # back to the order of ``runs``

    def one(n_hidden, n_train, weight_decay, seed):
        k_data, k_init = jax.random.split(jax.random.fold_in(jax.random.key(cfg.seed), seed))
        split = tasks.sparse_parity(k_data, n_train, n_max, cfg.n_test, cfg.n_bits, cfg.n_relevant)
        params = parity.init(k_init, cfg.n_bits, n_hidden, cfg.init_scale)
        hyper = grok.GrokHyper(cfg.lr, weight_decay, cfg.b1, cfg.b2, cfg.init_scale)
        result = grok.train(grok_cfg, parity.apply, hyper, params, split)
        return {"history": result.history, "relevant_share": relevant_share(result.params["W_in"], cfg.n_relevant)}

    def program(n_train, weight_decay, seed):
        outs = [grok.map_runs(functools.partial(one, h), batch)(n_train[idx], weight_decay[idx], seed[idx])
                for h, idx in groups.items()]
        return jax.tree.map(lambda *parts: jnp.concatenate(parts)[order], *outs)

    args = (jnp.asarray(runs["train_size"], jnp.int32), jnp.asarray(runs["weight_decay"], jnp.float32),
            jnp.asarray(runs["seed"], jnp.int32))
    return grok.run_program(program, *args)


def relevant_share(w_in, n_relevant: int):
    """Share of the input weights' squared norm on the relevant bits (the first
    ``n_relevant`` rows; the bias row is left out)."""
    w = jnp.square(w_in[:-1])
    return jnp.sum(w[:n_relevant]) / jnp.maximum(jnp.sum(w), 1e-30)


def preset(name: str, seeds: int | None = None) -> ParityConfig:
    return presets.with_seeds(presets.pick(PRESETS, name), seeds, field="seeds")


def run(preset_name: str, out, seeds: int | None = None, resume: bool = False, progress=None) -> dict:
    cfg = preset(preset_name, seeds)
    out, start = Path(out), time.perf_counter()
    config = json.loads(json.dumps(dataclasses.asdict(cfg)))
    config.update(optimizer="adamw", accuracy_threshold=grok.ACCURACY_THRESHOLD, grok_delay=grok.GROK_DELAY)
    arrays_path = out / "runs.npz"
    arrays = results.resume_arrays(out, config, resume)
    if not arrays:
        runs = grid(cfg)
        if progress or (progress is None and sys.stderr.isatty()):
            print(f"parity-grid: training {len(runs['seed'])} models as one program ...", file=sys.stderr, flush=True)
        res, compile_s, run_s = train_grid(cfg, runs)
        history = res["history"]
        arrays = {**runs, **{k: np.asarray(getattr(history, k))
                             for k in ("train_loss", "test_loss", "train_accuracy", "test_accuracy")},
                  "relevant_share": np.asarray(res["relevant_share"]),
                  "compile_seconds": np.array(compile_s), "train_seconds": np.array(run_s),
                  "history_steps": cfg.grok_config.history_steps}
        arrays.update({f"o_{k}": v for k, v in cfg.outcomes(history).items()})
        results.save_arrays(arrays_path, arrays)
    n_runs = int(arrays["seed"].size)
    counts = grok.outcome_counts(arrays["o_loss_outcome"])
    per_run = [{"train_size": int(arrays["train_size"][i]), "hidden": int(arrays["hidden"][i]),
                "weight_decay": float(arrays["weight_decay"][i]), "seed": int(arrays["seed"][i]),
                "outcome": grok.OUTCOMES[arrays["o_loss_outcome"][i]],
                "accuracy_outcome": grok.OUTCOMES[arrays["o_outcome"][i]],
                **{k: results.finite_or_none(arrays[f"o_{k}"][i]) for k in ("max_loss_ratio", "min_train_loss", "min_test_loss",
                                                          "memorise_step", "generalise_step")},
                "relevant_share": float(arrays["relevant_share"][i])} for i in range(n_runs)]
    summary = {"experiment": "parity-grid", "preset": preset_name, **results.device_info(), "n_runs": n_runs,
               "wall_seconds": time.perf_counter() - start, "compile_seconds": float(arrays["compile_seconds"]),
               "train_seconds": float(arrays["train_seconds"]),
               "models_per_second": n_runs / float(arrays["train_seconds"]), "config": config,
               "results": {"outcomes": counts, "accuracy_outcomes": grok.outcome_counts(arrays["o_outcome"]),
                           "n_runs": n_runs, "outcomes_by": outcomes_by(cfg, arrays["o_loss_outcome"]),
                           "outcome_grid": outcome_grid(cfg, arrays["o_loss_outcome"]).tolist(), "runs": per_run}}
    results.save_json(out / "summary.json", summary)
    figures_grok.parity_grid(arrays, cfg, out)
    return summary


def outcomes_by(cfg: ParityConfig, code) -> dict:
    """Class counts per weight decay, per hidden size and per train size."""
    grid_ = outcome_grid(cfg, code)
    names = lambda counts: dict(zip(grok.OUTCOMES, (int(c) for c in counts)))
    return {"weight_decay": {str(w): names(grid_[:, :, i].sum((0, 1))) for i, w in enumerate(cfg.weight_decays)},
            "hidden": {str(h): names(grid_[:, i].sum((0, 1))) for i, h in enumerate(cfg.hidden_sizes)},
            "train_size": {str(n): names(grid_[i].sum((0, 1))) for i, n in enumerate(cfg.train_sizes)}}


def outcome_grid(cfg: ParityConfig, code) -> np.ndarray:
    """Counts per cell and class, ``[train, hidden, wd, class]``."""
    return grok.count_classes(np.asarray(code).reshape(cfg.grid_shape))
