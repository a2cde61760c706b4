"""``parity-grid``: when does a one-hidden-layer MLP grok sparse parity? (docs/sources.md §3)

The explorable's grid of train size x hidden size x weight decay x 9 seeds (1,125
models) trains with ``run_grid`` (``grok.fit``), one grid per hidden size: train sets
pad to the largest with zero-weight rows. The results are one part, every array on
``[train_size, hidden, weight_decay, seed]`` (histories also ``step``).

This is the published *sweep's* setting (code), not the model of the article's text:
the text trains its model with L1 decay on 1,200 sequences (seed 003), which the
``article`` preset of ``parity-pruning`` (``parity_pruning.PruningConfig``) follows.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxmem import tasks
from jaxmem.store import finite_or_none
from jaxmem.models import parity
from jaxmem.progress import Progress
from jaxmem.store import Part
from jaxmem.studies.grokking import figures as figures_grok
from jaxmem.studies.grokking import grok
from jaxmem.validate import finite_values, in_range, positive_int

DESCRIPTION = "Sparse parity (30 bits, 3 relevant): outcome maps over train size x hidden size x weight decay"


@dataclasses.dataclass(frozen=True)
class ParityConfig:
    """The explorable's published sweep. Sources, setting by setting: the grid's axes
    (train sizes 750-1,750, hidden sizes 16-258, weight decays 0.01-1, seeds 0-8) are
    the 1,125 rows of ``sweep-sparse-parity/data__hypers_sparse_parity_v4.csv`` (code;
    the text says "nine models have been trained for each set of hyperparameters",
    seed 003); AdamW lr 3e-3, betas (0.99, 0.98), 20,000 steps, 5,000 test strings, a
    history point every 100 steps, cross-entropy and ``decay="l2"`` are the sweep's
    ``hyper_shared.json`` (code; the article's text uses L1 decay on 1,200 sequences:
    ``parity-pruning``'s ``article`` preset); the init (Gaussian, std 1/sqrt(fan-in))
    is ours (the sparse-parity notebook is not readable in the published repository).

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
            if not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty list of positive integers, got {getattr(self, name)!r}")
            for value in getattr(self, name):
                positive_int(name, value)
        finite_values("weight_decays", self.weight_decays)
        for name in ("seeds", "n_bits", "n_test"):
            positive_int(name, getattr(self, name))
        in_range("n_relevant", self.n_relevant, 1, self.n_bits, closed_high=True)
        self.grok_config  # steps, n_history, decay and loss: GrokConfig's checks

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
SEEDS = "seeds"


def record(cfg: ParityConfig) -> dict:
    """The config, and the settings and constants of the analysis beside it."""
    return {**dataclasses.asdict(cfg), "optimizer": "adamw", "accuracy_threshold": grok.ACCURACY_THRESHOLD,
            "grok_delay": grok.GROK_DELAY}


def grid(cfg: ParityConfig) -> dict:
    """Every run's settings, flattened in the order ``[train, hidden, wd, seed]``."""
    axes = np.meshgrid(np.arange(len(cfg.train_sizes)), np.arange(len(cfg.hidden_sizes)),
                       np.arange(len(cfg.weight_decays)), np.arange(cfg.seeds), indexing="ij")
    i_n, i_h, i_w, seed = (a.ravel() for a in axes)
    return {"train_size": np.asarray(cfg.train_sizes)[i_n], "hidden": np.asarray(cfg.hidden_sizes)[i_h],
            "weight_decay": np.asarray(cfg.weight_decays, np.float32)[i_w], "seed": seed}


def seed_data(cfg: ParityConfig, seeds) -> tuple[dict, dict]:
    """Each seed's bit strings, stacked (``grok.stack_splits``): ``max(cfg.train_sizes)``
    train rows (a smaller train set is a prefix) and ``cfg.n_test`` test rows, drawn from
    ``grok.seed_keys(cfg.seed, s)[0]``."""
    n_max = max(cfg.train_sizes)
    return grok.stack_splits([tasks.sparse_parity(grok.seed_keys(cfg.seed, s)[0], n_max, n_max, cfg.n_test, cfg.n_bits,
                                                  cfg.n_relevant) for s in seeds])


@functools.lru_cache(maxsize=32)
def grid_model(cfg: ParityConfig, n_hidden: int, seeds: tuple) -> grok.GridModel:
    """``run_grid``'s functions of the ``n_hidden`` MLP for ``seed_data(cfg, seeds)``; the
    same objects for the same arguments, so a repeated grid reuses its compiled programs."""

    def make_params(k_init, hp):
        return parity.init(k_init, cfg.n_bits, n_hidden, cfg.init_scale)

    def final(params):
        return {"relevant_share": relevant_share(params["W_in"], cfg.n_relevant)}

    return grok.grid_model(cfg.grok_config, parity.apply, make_params, cfg.seed, seeds, final=final)


def train_grid(cfg: ParityConfig, runs: dict | None = None, batch: int | None = None,
               max_pad_ratio: float = float("inf"), progress=None, checkpoint_dir=None):
    """Every run in ``runs`` (as from ``grid``; default all of ``cfg``'s), trained by
    ``grok.fit``: one grid per hidden size, of its runs' train sizes x weight decays x
    seeds. ``run_grid`` pads its train sizes into buckets of at most ``max_pad_ratio``
    times their rows; the default, one bucket of the largest, keeps the numbers of the
    grid trained as one padded program before the port bit for bit (1.3 trains fewer
    padded rows, with other round-off). Seed ``s`` draws the data
    (smaller train sets are prefixes of larger ones) and the init. ``batch``: runs
    vmapped together (0: all; default: all on an accelerator, one at a time on CPU).
    ``checkpoint_dir``: ``run_grid``'s (each hidden size's grid is saved there as it
    finishes). Returns (``{"history": History, "relevant_share": [runs], "diverged":
    [runs]}`` in the order of ``runs``, compile s, train s).
    """
    runs = grid(cfg) if runs is None else runs
    hidden, sizes, wds, seeds = (np.asarray(runs[k]) for k in ("hidden", "train_size", "weight_decay", "seed"))
    all_seeds = tuple(int(s) for s in np.unique(seeds))
    train, test = seed_data(cfg, all_seeds)
    groups = {int(h): np.flatnonzero(hidden == h) for h in np.unique(hidden)}
    axes = {h: (np.unique(sizes[idx]), np.unique(wds[idx]), np.unique(seeds[idx])) for h, idx in groups.items()}
    if not isinstance(progress, Progress):
        progress = Progress(sum(np.prod([len(a) for a in ax]) for ax in axes.values()) * cfg.steps, enabled=progress)
    runs_batch = None if batch is None else (batch if batch > 0 else len(hidden))
    parts, compile_s, train_s = [None] * len(hidden), 0.0, 0.0
    for h, idx in groups.items():
        n_axis, wd_axis, seed_axis = axes[h]
        res = grok.fit(cfg.grok_config, grid_model(cfg, h, all_seeds), train, test,
                       {"n_train": n_axis.tolist(), "lr": [cfg.lr], "weight_decay": wd_axis.tolist(),
                        grok.RUN_SEED: seed_axis.tolist()},
                       hp_dtype=jnp.float32, b1=cfg.b1, b2=cfg.b2, runs_batch=runs_batch, max_pad_ratio=max_pad_ratio,
                       progress=progress, checkpoint_dir=checkpoint_dir)
        compile_s, train_s = compile_s + res.compile_seconds, train_s + res.train_seconds
        history = grok.history_of(res.records)
        for i in idx:
            at = (np.searchsorted(n_axis, sizes[i]), 0, np.searchsorted(wd_axis, wds[i]),
                  np.searchsorted(seed_axis, seeds[i]))
            parts[i] = {"history": jax.tree.map(lambda a, at=at: np.asarray(a)[at], history),
                        "relevant_share": np.asarray(res.outputs["relevant_share"])[at],
                        "diverged": np.asarray(res.diverged)[at]}
    return jax.tree.map(lambda *leaves: np.stack(leaves), *parts), compile_s, train_s


def relevant_share(w_in, n_relevant: int):
    """Share of the input weights' squared norm on the relevant bits (the first
    ``n_relevant`` rows; the bias row is left out)."""
    w = jnp.square(w_in[:-1])
    return jnp.sum(w[:n_relevant]) / jnp.maximum(jnp.sum(w), 1e-30)


#: the grid's dims, in ``grid``'s order
GRID = ("train_size", "hidden", "weight_decay", "seed")
HISTORY = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")


def train_part(cfg: ParityConfig, store) -> Part:
    """The whole grid (``train_grid``), its arrays on ``GRID`` (and ``step``), with each
    run's outcomes (``ParityConfig.outcomes``)."""
    res, compile_s, run_s = train_grid(cfg, progress=store.progress, checkpoint_dir=store.checkpoints(""))
    history = res["history"]
    flat = {**{k: np.asarray(getattr(history, k)) for k in HISTORY},
            "relevant_share": np.asarray(res["relevant_share"]), "diverged": np.asarray(res["diverged"]),
            **cfg.outcomes(history)}
    arrays = {k: v.reshape(cfg.grid_shape + v.shape[1:]) for k, v in flat.items()}
    dims = {k: GRID + ("step",) * (v.ndim - len(GRID)) for k, v in arrays.items()}
    coords = {"train_size": cfg.train_sizes, "hidden": cfg.hidden_sizes, "weight_decay": cfg.weight_decays,
              "seed": range(cfg.seeds), "step": cfg.grok_config.history_steps}
    return Part(arrays, dims, coords, info={"train_seconds": run_s}, n_runs=int(np.prod(cfg.grid_shape)),
                compile_seconds=compile_s)


def run(cfg: ParityConfig, store) -> None:
    """One part: every hidden size's grid (checkpointed as each finishes)."""
    store.part("", lambda: train_part(cfg, store))


def summarize(parts: dict, cfg: ParityConfig) -> dict:
    a = {k: v.reshape((-1,) + v.shape[len(GRID):]) for k, v in parts[""].arrays.items()}  # flat, ``grid``'s order
    runs = grid(cfg)  # each run's settings; its weight decay as trained (float32)
    n_runs = int(runs["seed"].size)
    per_run = [{"train_size": int(runs["train_size"][i]), "hidden": int(runs["hidden"][i]),
                "weight_decay": float(runs["weight_decay"][i]), "seed": int(runs["seed"][i]),
                "outcome": grok.OUTCOMES[a["loss_outcome"][i]], "accuracy_outcome": grok.OUTCOMES[a["outcome"][i]],
                **{k: finite_or_none(a[k][i]) for k in ("max_loss_ratio", "min_train_loss", "min_test_loss",
                                                                "memorise_step", "generalise_step")},
                "relevant_share": float(a["relevant_share"][i])} for i in range(n_runs)]
    return {"outcomes": grok.outcome_counts(a["loss_outcome"]), "accuracy_outcomes": grok.outcome_counts(a["outcome"]),
            "n_runs": n_runs, "outcomes_by": outcomes_by(cfg, a["loss_outcome"]),
            "relevant_share_by_outcome": share_by_outcome(a["relevant_share"], a["loss_outcome"]),
            "outcome_grid": outcome_grid(cfg, a["loss_outcome"]).tolist(), "runs": per_run}


def draw(parts: dict, summary: dict, cfg: ParityConfig, out) -> None:
    """Every figure of a ``parity-grid`` run."""
    figures_grok.parity_grid(parts[""], cfg, out)


def share_by_outcome(share, code) -> dict:
    """Per loss-outcome class: its runs and the median, min and max of their final
    relevant share (the share of the input weights' squared norm on the relevant bits,
    ``relevant_share``); None for a class with no runs."""
    share, code = np.asarray(share, np.float64), np.asarray(code)
    out = {}
    for i, name in enumerate(grok.OUTCOMES):
        v = share[code == i]
        v = v[np.isfinite(v)]
        out[name] = {"n": int((code == i).sum()), "median": float(np.median(v)) if v.size else None,
                     "min": float(v.min()) if v.size else None, "max": float(v.max()) if v.size else None}
    return out


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
