"""``modular-circle``: the explorable's five-neuron model on a fixed circular embedding
(docs/sources.md §3, "Modular Addition With Five Neurons").

Claims checked (seed 003): "With just five neurons the model finds a solution with
perfect accuracy"; "all the neurons converge to roughly equal norms"; their ``cos`` and
``sin`` components are "essentially evenly distributed around a circle"; and, connecting
the neurons adjacent on the ``W_in-proj`` circle, "``W_out-proj`` is rotating around the
circle twice as fast as ``W_in-proj``".

The model is the explorable's factored MLP with the embedding frozen:
``logits = ReLU(E[a] W_in-proj + E[b] W_in-proj) W_out-proj E^T``, ``E[i] = (cos i w,
sin i w) / sqrt(p / 2)``, ``w = 2 pi / p`` (each column scaled to unit norm, as the
published code's ``gen_fixed_embed``); only ``W_in-proj`` ``[2, N]`` and ``W_out-proj``
``[N, 2]`` train (20 parameters at N = 5). Every seed trains in one ``run_grid``
(``grok.fit``). Neuron ``j``'s in-projection components are column ``j`` of
``W_in-proj`` and its out-projection components row ``j`` of ``W_out-proj``, as the
explorable's figure plots them (``source/grokking/five-neurons/init.js``).

The measures (``geometry``): each neuron's in- and out-projection norm and their spread
(std / mean over neurons); the in-projection angles ``phi_j`` sorted around the circle
and their gaps against ``2 pi / N``; the out-projection angle steps ``d psi`` between
the same consecutive neurons (the shortest rotation, in ``(-pi, pi]``) and their ratio
to the in-projection gaps (2 for "twice as fast"); the winding number of the
out-projection polygon (``sum d psi / 2 pi``: 2 when it goes around twice while the
in-projection goes around once); and how far ``psi_j`` sits from ``2 phi_j + delta``
(``delta`` their circular mean). The constructed solution (``construct.modular_circle``)
gives gaps ``2 pi / N``, ratio 2, winding 2 and residual 0 exactly.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxmem import tasks
from jaxmem.models import modular
from jaxmem.store import Part, finite_or_none
from jaxmem.studies.grokking import construct, grok
from jaxmem.studies.grokking import figures as figures_grok
from jaxmem.validate import one_of, positive_int

DESCRIPTION = "Five ReLU neurons on a fixed circular embedding (p = 67): accuracy, equal norms, even spacing, doubled rotation"

PRECISIONS = ("float64", "float32")


@dataclasses.dataclass(frozen=True)
class CircleConfig:
    """Defaults are the published code's (``server-side/grokking/
    MLP_Modular_Addition_Fixed_Embed.ipynb``, docs/sources.md §3): p = 67 (also seed),
    unordered pairs ``a <= b`` with 30% for training (``percent_train .3``); the fixed
    embedding ``freqs [1]`` (cos, sin, each column of unit norm); 5 hidden neurons (also
    seed: "With just five neurons"); ReLU; no biases; haiku's ``hk.Linear`` init,
    ``TruncatedNormal(1 / sqrt(fan_in))`` (fan-in 2 for ``W_in-proj``, N for
    ``W_out-proj``); loss ``-mean(onehot * log_softmax)`` (cross-entropy / p); full-batch
    ``optax.adamw`` lr 1e-2, weight decay 1e-3 (decoupled: ``w -= lr * wd * w``), betas
    (0.9, 0.98); 15,000 steps; under ``jax_enable_x64``, so everything is float64
    (``precision="float64"``). It logs 500 points, as ``n_history`` here.

    Ours (the code trains one seed, 86, through numpy's and haiku's generators): the seed
    count and the seeds; seed ``s`` draws split and init from ``fold_in(key(seed), s)``.
    ``precision="float32"``, another ``p``, ``n_hidden`` or ``train_frac`` leave the
    source's setting.
    """

    p: int = 67
    train_frac: float = 0.3
    symmetric: bool = True
    n_hidden: int = 5
    precision: str = "float64"
    seeds: int = 8
    steps: int = 15_000
    lr: float = 1e-2
    weight_decay: float = 1e-3
    b1: float = 0.9
    b2: float = 0.98
    init_scale: float = 1.0
    n_history: int = 500
    seed: int = 0

    def __post_init__(self):
        if int(self.p) != self.p or self.p < 3:
            raise ValueError(f"p must be an integer >= 3, got {self.p!r}")
        tasks.n_train_pairs(self.p, self.train_frac, self.symmetric)
        one_of("precision", self.precision, PRECISIONS)
        for name in ("seeds", "steps", "n_history", "n_hidden"):
            positive_int(name, getattr(self, name))

    @property
    def grok_config(self) -> grok.GrokConfig:
        return grok.GrokConfig(steps=self.steps, optimizer="adamw", loss="ce", class_mean=True,
                               n_history=self.n_history)

    @property
    def hyper(self) -> dict:
        return {name: getattr(self, name) for name in grok.HYPER}

    @property
    def dtype(self):
        return jnp.float64 if self.precision == "float64" else jnp.float32

    def precision_context(self):
        return jax.enable_x64(self.precision == "float64")


#: ``quick``: the source's setting on 4 seeds; ``paper``: on 16
PRESETS = {"quick": CircleConfig(seeds=4), "paper": CircleConfig(seeds=16)}
SEEDS = "seeds"


def record(cfg: CircleConfig) -> dict:
    return {**dataclasses.asdict(cfg), "norm_spread": "std / mean over neurons (population std)",
            "angle_steps": "shortest rotation, in (-pi, pi]"}


# ---------------------------------------------------------------- model


def embedding(p: int, dtype=np.float64) -> np.ndarray:
    """The fixed embedding ``[p, 2]``: ``cos`` and ``sin`` of ``2 pi i / p``, each column
    divided by its norm ``sqrt(p / 2)`` (the published code's ``gen_fixed_embed([1])``)."""
    angle = 2 * np.pi * np.arange(p) / p
    e = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return (e / np.linalg.norm(e, axis=0)).astype(dtype)


def full_params(params, p: int) -> dict:
    """The projections with the fixed embedding: ``models.modular``'s factored params."""
    dtype = jnp.result_type(*jax.tree.leaves(params))
    return {"embed": jnp.asarray(embedding(p), dtype), "in_proj": params["in_proj"], "out_proj": params["out_proj"]}


def apply(params, a, b, p: int) -> jax.Array:
    """Logits ``[N, p]`` of the projections ``{"in_proj": [2, H], "out_proj": [H, 2]}``."""
    return modular.apply(full_params(params, p), a, b, "relu")


def init(key, n_hidden: int, scale=1.0, dtype=jnp.float64) -> dict:
    """haiku's ``hk.Linear`` default init of both projections (no biases), times ``scale``."""
    k_in, k_out = jax.random.split(key)
    return {"in_proj": modular.truncated_normal(k_in, (2, n_hidden), 1 / math.sqrt(2), dtype) * scale,
            "out_proj": modular.truncated_normal(k_out, (n_hidden, 2), 1 / math.sqrt(n_hidden), dtype) * scale}


def accuracy(params, p: int) -> float:
    """Accuracy over all ``p^2`` pairs (one run's projections)."""
    a, b = np.divmod(np.arange(p * p), p)
    logits = apply(params, jnp.asarray(a), jnp.asarray(b), p)
    return float(np.mean(np.asarray(jnp.argmax(logits, -1)) == (a + b) % p))


@functools.lru_cache(maxsize=8)
def grid_model(cfg: CircleConfig, seeds: tuple) -> grok.GridModel:
    def model_apply(params, inputs):
        return apply(params, inputs["a"], inputs["b"], cfg.p)

    def make_params(k_init, hp):
        return init(k_init, cfg.n_hidden, hp["init_scale"], cfg.dtype)

    return grok.grid_model(cfg.grok_config, model_apply, make_params, cfg.seed, seeds, snapshot=lambda q: q)


def train(cfg: CircleConfig, progress=None, checkpoint_dir=None, runs_batch=None):
    """Every seed in one ``run_grid``; call inside ``cfg.precision_context()``. Returns
    (``GrokResult`` with the projections at every history point in ``history.params``;
    compile s; train s)."""
    seeds = tuple(range(cfg.seeds))
    train_split, test_split = grok.stack_splits([
        tasks.modular_addition(grok.seed_keys(cfg.seed, s)[0], cfg.p, cfg.train_frac, cfg.symmetric) for s in seeds])
    grid = {**{name: [value] for name, value in cfg.hyper.items()}, grok.RUN_SEED: list(seeds)}
    res = grok.fit(cfg.grok_config, grid_model(cfg, seeds), train_split, test_split, grid, hp_dtype=cfg.dtype,
                   runs_batch=runs_batch, progress=progress, checkpoint_dir=checkpoint_dir)
    return grok.grok_result(res), res.compile_seconds, res.train_seconds


# ---------------------------------------------------------------- measures


def _wrap(angle):
    """Angles into ``(-pi, pi]``."""
    return np.pi - np.mod(np.pi - np.asarray(angle, np.float64), 2 * np.pi)


def geometry(in_proj_2xN, out_proj_Nx2) -> dict:
    """The explorable's reading of the projections (one run; see the module docstring).

    Returns per neuron (in the original order) ``in_norm``, ``out_norm``, ``in_angle``,
    ``out_angle`` (radians); ``order`` (neurons sorted by in-projection angle); along that
    order ``in_gaps`` (from each neuron to the next, the last back to the first: they sum
    to 2 pi), ``out_steps`` (the out-projection's shortest rotation over the same pairs)
    and ``step_ratios`` (``out_steps / in_gaps``); and the scalars ``in_norm_spread``,
    ``out_norm_spread`` (std / mean), ``max_gap_error`` (``max |gap - 2 pi / N|``),
    ``mean_step_ratio``, ``median_step_ratio``, ``winding`` (``sum out_steps / 2 pi``, an integer up to
    rounding), ``doubling_offset`` (circular mean of ``psi - 2 phi``) and
    ``doubling_residual`` (``max |psi - 2 phi - offset|``, wrapped).
    """
    u = np.asarray(in_proj_2xN, np.float64).T  # [N, 2]: neuron j's (cos, sin) on the input side
    v = np.asarray(out_proj_Nx2, np.float64)  # [N, 2]: on the output side
    n = u.shape[0]
    in_norm, out_norm = np.linalg.norm(u, axis=1), np.linalg.norm(v, axis=1)
    phi, psi = np.arctan2(u[:, 1], u[:, 0]), np.arctan2(v[:, 1], v[:, 0])
    order = np.argsort(phi, kind="stable")
    nxt = np.roll(order, -1)
    in_gaps = np.mod(phi[nxt] - phi[order], 2 * np.pi)
    if n == 1:
        in_gaps = np.array([2 * np.pi])
    out_steps = _wrap(psi[nxt] - psi[order])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = out_steps / in_gaps
    diff = psi - 2 * phi
    offset = float(np.arctan2(np.mean(np.sin(diff)), np.mean(np.cos(diff))))
    return {"in_norm": in_norm, "out_norm": out_norm, "in_angle": phi, "out_angle": psi, "order": order,
            "in_gaps": in_gaps, "out_steps": out_steps, "step_ratios": ratios,
            "in_norm_spread": float(in_norm.std() / in_norm.mean()),
            "out_norm_spread": float(out_norm.std() / out_norm.mean()),
            "max_gap_error": float(np.max(np.abs(in_gaps - 2 * np.pi / n))),
            "mean_step_ratio": float(np.mean(ratios)), "median_step_ratio": float(np.median(ratios)),
            "winding": float(np.sum(out_steps) / (2 * np.pi)),
            "doubling_offset": offset, "doubling_residual": float(np.max(np.abs(_wrap(diff - offset))))}


def constructed(p: int, n_hidden: int) -> dict:
    """``geometry`` and accuracy (ReLU, this module's fixed embedding) of the constructed
    solution's projections (``construct.modular_circle``)."""
    c = construct.modular_circle(p, n_hidden, np.float64)
    params = {"in_proj": jnp.asarray(c["in_proj"]), "out_proj": jnp.asarray(c["out_proj"])}
    return {"accuracy": accuracy(params, p), **scalars(geometry(c["in_proj"], c["out_proj"]))}


SCALARS = ("in_norm_spread", "out_norm_spread", "max_gap_error", "mean_step_ratio", "median_step_ratio", "winding",
           "doubling_offset", "doubling_residual")


def scalars(g: dict) -> dict:
    return {k: g[k] for k in SCALARS}


# ---------------------------------------------------------------- protocol

HISTORY = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")


def train_part(cfg: CircleConfig, store) -> Part:
    """Histories ``[seed, step]``, the projections over training and the final
    all-pairs accuracy per seed."""
    with cfg.precision_context():
        res, compile_s, run_s = train(cfg, store.progress, store.checkpoints("train"))
        final = jax.tree.map(lambda x: jnp.asarray(x)[:, -1], res.history.params)
        all_pairs = [accuracy(jax.tree.map(lambda x: x[s], final), cfg.p) for s in range(cfg.seeds)]
    steps = cfg.grok_config.history_steps
    arrays = {**{k: np.asarray(getattr(res.history, k)) for k in HISTORY},
              "in_proj": np.asarray(res.history.params["in_proj"]),
              "out_proj": np.asarray(res.history.params["out_proj"]),
              "all_pairs_accuracy": np.asarray(all_pairs), "diverged": np.asarray(res.diverged)}
    dims = {**{k: ("seed", "step") for k in HISTORY}, "in_proj": ("seed", "step", "component", "neuron"),
            "out_proj": ("seed", "step", "neuron", "component"), "all_pairs_accuracy": ("seed",),
            "diverged": ("seed",)}
    coords = {"seed": range(cfg.seeds), "step": steps, "component": ("cos", "sin"), "neuron": range(cfg.n_hidden)}
    return Part(arrays, dims, coords, info={"train_seconds": run_s}, n_runs=cfg.seeds, compile_seconds=compile_s)


def run(cfg: CircleConfig, store) -> None:
    store.part("train", lambda: train_part(cfg, store))


def _deg(x):
    return np.degrees(np.asarray(x, np.float64))


def analyse_seed(part: Part, s: int) -> dict:
    steps = part.coords["step"]
    g = geometry(part["in_proj"][s, -1], part["out_proj"][s, -1])
    test = part["test_accuracy"][s]
    perfect = np.flatnonzero((part["train_accuracy"][s] >= 1.0) & (test >= 1.0))
    return {"seed": s, "final_train_accuracy": float(part["train_accuracy"][s, -1]),
            "final_test_accuracy": float(test[-1]), "all_pairs_accuracy": float(part["all_pairs_accuracy"][s]),
            "first_perfect_step": int(steps[perfect[0]]) if perfect.size else None,
            "generalise_step": finite_or_none(grok.first_step(test, steps)),
            "in_norms": g["in_norm"].tolist(), "out_norms": g["out_norm"].tolist(),
            "in_norm_spread": g["in_norm_spread"], "out_norm_spread": g["out_norm_spread"],
            "in_angles_deg": _deg(g["in_angle"]).tolist(), "out_angles_deg": _deg(g["out_angle"]).tolist(),
            "order": g["order"].tolist(), "in_gaps_deg": _deg(g["in_gaps"]).tolist(),
            "out_steps_deg": _deg(g["out_steps"]).tolist(), "step_ratios": g["step_ratios"].tolist(),
            "max_gap_error_deg": float(_deg(g["max_gap_error"])), "mean_step_ratio": g["mean_step_ratio"],
            "median_step_ratio": g["median_step_ratio"],
            "winding": g["winding"], "doubling_offset_deg": float(_deg(g["doubling_offset"])),
            "doubling_residual_deg": float(_deg(g["doubling_residual"]))}


def summarize(parts: dict, cfg: CircleConfig) -> dict:
    """Per seed ``analyse_seed``; counts, medians and ranges over all seeds; the ranges
    over the seeds with every pair right (``perfect_seeds``, null without any); the
    constructed solution's measures."""
    part = parts["train"]
    runs = [analyse_seed(part, s) for s in range(cfg.seeds)]
    med = lambda k: float(np.median([r[k] for r in runs]))
    rng = lambda k: [float(min(r[k] for r in runs)), float(max(r[k] for r in runs))]
    ref = constructed(cfg.p, cfg.n_hidden)
    perfect = [r for r in runs if r["all_pairs_accuracy"] == 1.0]
    span = lambda k: [float(min(r[k] for r in perfect)), float(max(r[k] for r in perfect))] if perfect else None
    return {"runs": runs, "seeds": cfg.seeds,
            "perfect_seeds": {k: span(k) for k in ("first_perfect_step", "in_norm_spread", "out_norm_spread",
                                                   "max_gap_error_deg", "mean_step_ratio", "doubling_residual_deg")},
            "perfect_all_pairs": sum(r["all_pairs_accuracy"] == 1.0 for r in runs),
            "all_pairs_accuracy_range": rng("all_pairs_accuracy"),
            "winding_2": sum(abs(r["winding"] - 2) < 1e-6 for r in runs),
            "median_in_norm_spread": med("in_norm_spread"), "median_out_norm_spread": med("out_norm_spread"),
            "in_norm_spread_range": rng("in_norm_spread"), "out_norm_spread_range": rng("out_norm_spread"),
            "median_max_gap_error_deg": med("max_gap_error_deg"), "max_gap_error_deg_range": rng("max_gap_error_deg"),
            "median_mean_step_ratio": med("mean_step_ratio"), "mean_step_ratio_range": rng("mean_step_ratio"),
            "median_step_ratio_range": rng("median_step_ratio"),
            "median_doubling_residual_deg": med("doubling_residual_deg"),
            "even_gap_deg": 360.0 / cfg.n_hidden,
            "constructed": {**ref, "max_gap_error_deg": float(_deg(ref["max_gap_error"])),
                            "doubling_residual_deg": float(_deg(ref["doubling_residual"]))}}


def draw(parts: dict, summary: dict, cfg: CircleConfig, out) -> None:
    """``circle_neurons.png`` (the projections on the circle, per seed), ``curves.png``
    and ``geometry_over_training.png``."""
    figures_grok.modular_circle(parts["train"], summary["results"], cfg, out)
