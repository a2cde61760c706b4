"""``modular-addition``: grokking ``(a + b) mod p`` with the explorable's MLP, its Fourier
anatomy, and the constructed circular solution (SPEC §3; Pearce et al. 2023).

All seeds of a variant train as one program; the factored (tied-embedding) model is
compared with the unfactored one, which the explorable says does not generalise.
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

from jaxmem import construct, figures_grok, fourier, grok, results, tasks
from jaxmem.experiments import presets
from jaxmem.models import modular

DESCRIPTION = "Grokking modular addition (p = 67): curves, Fourier frequencies, stars, constructed solution"


@dataclasses.dataclass(frozen=True)
class ModularConfig:
    """The explorable's setting; ``n_embed`` is not given there (32 here)."""

    p: int = 67
    train_frac: float = 0.4
    n_embed: int = 32
    n_hidden: int = 24
    activation: str = "relu"
    loss: str = "ce"
    seeds: int = 8
    steps: int = 50_000
    lr: float = 1e-3
    weight_decay: float = 1.0
    b1: float = 0.9
    b2: float = 0.98
    init_scale: float = 1.0
    n_history: int = 200
    variants: tuple[str, ...] = ("factored", "unfactored")
    construct_p: tuple[int, ...] = (7, 31, 67, 113)
    construct_n: tuple[int, ...] = (3, 4, 5, 6, 7, 8, 12, 24)
    seed: int = 0

    def __post_init__(self):
        tasks.n_train_pairs(self.p, self.train_frac)
        if self.activation not in modular.ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(modular.ACTIVATIONS)}, got {self.activation!r}")
        if self.seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {self.seeds!r}")

    @property
    def grok_config(self) -> grok.GrokConfig:
        return grok.GrokConfig(steps=self.steps, loss=self.loss, n_history=self.n_history, keep_params=True)

    @property
    def hyper(self) -> grok.GrokHyper:
        return grok.GrokHyper(self.lr, self.weight_decay, self.b1, self.b2, self.init_scale)


PRESETS = {"quick": ModularConfig(steps=10_000, n_history=100), "paper": ModularConfig()}


def model_apply(activation: str):
    return lambda params, inputs: modular.apply(params, inputs["a"], inputs["b"], activation)


def train_seeds(cfg: ModularConfig, variant: str, hyper: grok.GrokHyper | None = None,
                grok_cfg: grok.GrokConfig | None = None, seeds=None):
    """Every seed (and every entry of a batched ``hyper``) as one program.

    Seed ``s`` draws the train/test split and the init from ``fold_in(key(cfg.seed), s)``.
    Returns (``GrokResult`` with a leading run axis, compile s, run s).
    """
    grok_cfg = grok_cfg or cfg.grok_config
    hyper = cfg.hyper if hyper is None else hyper
    seeds = jnp.arange(cfg.seeds) if seeds is None else jnp.asarray(seeds)
    hyper = jax.tree.map(lambda v: jnp.broadcast_to(jnp.asarray(v, jnp.float32), seeds.shape), hyper)
    factored = variant == "factored"

    def one(seed, h):
        k_data, k_init = jax.random.split(jax.random.fold_in(jax.random.key(cfg.seed), seed))
        split = tasks.modular_addition(k_data, cfg.p, cfg.train_frac)
        params = modular.init(k_init, cfg.p, cfg.n_embed, cfg.n_hidden, factored=factored, scale=h.init_scale)
        return grok.train(grok_cfg, model_apply(cfg.activation), h, params, split)

    return grok.run_program(jax.vmap(one), seeds, hyper)


def constructed_accuracy(p: int, n_neurons: int, activation: str) -> float:
    """Accuracy over all ``p^2`` pairs of ``construct.modular_circle(p, n_neurons)``."""
    a, b = np.divmod(np.arange(p * p), p)
    logits = modular.apply(construct.modular_circle(p, n_neurons), a, b, activation)
    return float(np.mean(np.asarray(jnp.argmax(logits, -1)) == (a + b) % p))


def constructed(cfg: ModularConfig) -> dict:
    """Accuracy of the constructed solution, ReLU and x^2, ``[len(p), len(N)]`` each."""
    return {"p": list(cfg.construct_p), "n_neurons": list(cfg.construct_n),
            **{f"{act}_accuracy": [[constructed_accuracy(p, n, act) for n in cfg.construct_n] for p in cfg.construct_p]
               for act in ("relu", "square")}}


def all_pairs(p: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    a, b = jnp.divmod(jnp.arange(p * p), p)
    return a, b, (a + b) % p


def mode_loss_history(cfg: ModularConfig, params_history) -> np.ndarray:
    """Cross-entropy of each output Fourier mode over all pairs, ``[seed, record, K]``
    (a ``lax.map`` over snapshots: one holds ``K x p^2 x p`` logits)."""
    a, b, labels = all_pairs(cfg.p)
    lead = jax.tree.leaves(params_history)[0].shape[:2]
    flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), params_history)
    per_snapshot = jax.jit(lambda prm: jax.lax.map(lambda q: fourier.mode_losses(
        modular.apply(q, a, b, cfg.activation), labels), prm, batch_size=8))
    return np.asarray(per_snapshot(flat)).reshape(lead + (-1,))


def analyse(cfg: ModularConfig, arrays: dict) -> dict:
    """Per seed: outcome, steps, final accuracies and key frequencies of the trained model."""
    steps = cfg.grok_config.history_steps
    by_variant = {}
    for variant in cfg.variants:
        h = grok.History(*(arrays[f"{variant}_{k}"] for k in ("train_loss", "test_loss", "train_accuracy",
                                                               "test_accuracy")))
        o = grok.outcomes(h, steps)
        runs = []
        for s in range(cfg.seeds):
            w_in = arrays[f"{variant}_w_input"][s]
            freq = fourier.neuron_frequencies(w_in)
            runs.append({"seed": s, "outcome": grok.OUTCOMES[o["outcome"][s]],
                         "memorise_step": results.finite_or_none(o["memorise_step"][s]), "generalise_step": results.finite_or_none(o["generalise_step"][s]),
                         "final_train_accuracy": float(h.train_accuracy[s, -1]),
                         "final_test_accuracy": float(h.test_accuracy[s, -1]),
                         "max_loss_ratio": results.finite_or_none(o["max_loss_ratio"][s]),
                         "key_frequencies": freq["key_frequencies"].tolist(), "key_share": freq["key_share"],
                         "live_neurons": int(freq["live"].sum())})
        by_variant[variant] = {"outcomes": grok.outcome_counts(o["outcome"]), "runs": runs,
                               "generalised": sum(r["generalise_step"] is not None for r in runs)}
    return by_variant


def preset(name: str, seeds: int | None = None) -> ModularConfig:
    return presets.with_seeds(presets.pick(PRESETS, name), seeds, field="seeds")


def run(preset_name: str, out, seeds: int | None = None, resume: bool = False, progress=None) -> dict:
    cfg = preset(preset_name, seeds)
    out, start = Path(out), time.perf_counter()
    config = json.loads(json.dumps(dataclasses.asdict(cfg)))
    config.update(accuracy_threshold=grok.ACCURACY_THRESHOLD, grok_delay=grok.GROK_DELAY,
                  live_neuron_fraction=fourier.LIVE_NEURON_FRACTION, optimizer="adamw", decay="l2")
    arrays_path = out / "runs.npz"
    arrays = results.resume_arrays(out, config, resume)
    verbose = progress or (progress is None and sys.stderr.isatty())
    for variant in cfg.variants:
        if f"{variant}_test_accuracy" in arrays:
            continue
        res, compile_s, run_s = train_seeds(cfg, variant)
        params_history = res.history.params
        w_in_history = jax.vmap(jax.vmap(modular.input_weights))(params_history)
        arrays.update({f"{variant}_{k}": np.asarray(getattr(res.history, k))
                       for k in ("train_loss", "test_loss", "train_accuracy", "test_accuracy")})
        arrays.update({f"{variant}_w_input": np.asarray(modular.input_weights(res.params)),
                       f"{variant}_w_output": np.asarray(modular.output_weights(res.params)),
                       f"{variant}_w_input_history": np.asarray(w_in_history),
                       f"{variant}_compile_seconds": np.array(compile_s), f"{variant}_train_seconds": np.array(run_s)})
        if variant == "factored":
            arrays["factored_mode_loss"] = mode_loss_history(cfg, params_history)
        results.save_arrays(arrays_path, arrays)  # after every variant: nothing is lost
        if verbose:
            print(f"modular-addition: {variant} trained in {run_s:.1f} s (compile {compile_s:.1f} s)",
                  file=sys.stderr, flush=True)
    arrays["history_steps"] = cfg.grok_config.history_steps
    construction = constructed(cfg)
    summary = {"experiment": "modular-addition", "preset": preset_name, **results.device_info(),
               "n_runs": cfg.seeds * len(cfg.variants), "wall_seconds": time.perf_counter() - start,
               "compile_seconds": float(sum(arrays[f"{v}_compile_seconds"] for v in cfg.variants)),
               "train_seconds": float(sum(arrays[f"{v}_train_seconds"] for v in cfg.variants)),
               "config": config,
               "results": {**analyse(cfg, arrays), "constructed": construction}}
    results.save_json(out / "summary.json", summary)
    figures_grok.modular_addition(arrays, cfg, construction, out)
    return summary
