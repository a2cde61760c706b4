"""``modular-addition``: grokking ``(a + b) mod p`` with the explorable's MLP, its Fourier
anatomy, and the constructed circular solution (docs/sources.md §3; Pearce et al. 2023).

All seeds of a variant train in one ``run_grid`` (``grok.fit``), a part of the results
each; the factored (tied-embedding) model is compared with the unfactored one, which the
explorable says does not generalise. The part ``constructed`` holds the constructed
solution's accuracies.

Presets (each setting's source is in ``ModularConfig``'s docstring): ``quick`` and
``paper`` both run the published code's main-model settings (*code*; the seed text
gives only p = 67, 24 neurons, ReLU, the factored tied model, cross-entropy, AdamW and
full batches), on 4 and 32 seeds (the seed count is *ours*): ``paper`` is the source's
setting at more seeds, not a setting the explorable's text states. ``quick-float32``:
the same in float32 (*ours*). ``ordered``: the earlier leaky contrast (*ours*).
``no-decay``: the published code's "Reverse grokking" config (*code*: embedding 5,
10 neurons, weight decay 0, lr 1e-3, 20,000 steps, 40% train), for the seed's "This
small model (trained with no weight decay) starts generalizing, then switches to
memorizing with periodic embeddings"; on 8 seeds (*ours*).
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxmem import tasks
from jaxmem.store import finite_or_none
from jaxmem.studies.grokking import construct
from jaxmem.models import modular
from jaxmem.store import Part
from jaxmem.studies.grokking import figures as figures_grok
from jaxmem.studies.grokking import fourier, grok
from jaxmem.validate import one_of, positive_int

DESCRIPTION = "Grokking modular addition (p = 67) with the explorable's main model and settings: plateau, frequencies, stars, construction"


@dataclasses.dataclass(frozen=True)
class ModularConfig:
    """Defaults are the explorable's main model (docs/sources.md §3). Each setting's source:
    *seed* (the explorable's text, seed 003), *code* (its published training code,
    ``server-side/grokking/MLP_Modular_Addition.ipynb``, "config for the main model used
    in the post") or *ours*.

    - p = 67 (*seed*: "a model trained to predict a+b mod 67"; *code* ``n_tokens``);
    - 24 hidden neurons, ReLU (*seed*: "ReLU(a W_input + b W_input) W_output — a one-layer
      MLP with 24 neurons"; *code*);
    - factored, tied: ``W_input = W_embed W_in-proj``, ``W_output = W_out-proj
      W_embed^T`` (*seed*, "Which Model Constraints Work Best?": "At least one of the
      matrices has to be factored"; *code* ``embed_config 'tied'``); the unfactored
      variant (*seed*: "does not actually result in generalization ... even with the
      addition of weight decay");
    - cross-entropy, AdamW, full batches (*seed*: "The model is trained with
      cross-entropy loss, AdamW and full batches"); the loss as ``-mean(onehot *
      log_softmax)``, i.e. cross-entropy / p (*code*);
    - unordered pairs ``a <= b``, 40% for training (*code*: ``is_symmetric_input``,
      ``percent_train .4``; the seed says only "randomly dividing all the a, b pairs");
    - embedding 500 (*code*); haiku's init (*code*: ``VarianceScaling(2)`` embedding,
      ``hk.Linear``'s default ``TruncatedNormal(1 / sqrt(fan_in))``);
    - lr 1e-3, weight decay 1.0 (decoupled, ``optax.adamw``), betas (0.9, 0.98), 50,000
      steps, a constant lr (*code*; not in the seed text, whose main-model chart runs
      past a "plateau at 45,000 steps");
    - precision: the code runs under ``jax_enable_x64`` (``precision="source"``:
      embedding float32, the rest float64) (*code*); 500 history points, every 100
      steps (*code* ``log_every``).

    *Ours*: the unfactored model's init (the collapsed matrices of a factored init, the
    same function) and the seed count (the code trains one seed, 165; seed ``s`` here
    draws split and init from ``fold_in(key(seed), s)``). ``symmetric=False`` (all p^2
    ordered pairs), another ``n_embed``, ``init="normal"`` or ``precision="float32"``
    leave the source's setting.
    """

    p: int = 67
    train_frac: float = 0.4
    symmetric: bool = True
    n_embed: int = 500
    n_hidden: int = 24
    activation: str = "relu"
    loss: str = "ce"
    class_mean: bool = True
    init: str = "haiku"
    precision: str = "source"
    optimizer: str = "adamw"
    seeds: int = 8
    steps: int = 50_000
    lr: float = 1e-3
    weight_decay: float = 1.0
    b1: float = 0.9
    b2: float = 0.98
    init_scale: float = 1.0
    n_history: int = 500
    variants: tuple[str, ...] = ("factored", "unfactored")
    construct_p: tuple[int, ...] = (7, 31, 67, 113)
    construct_n: tuple[int, ...] = (3, 4, 5, 6, 7, 8, 12, 24)
    seed: int = 0

    def __post_init__(self):
        tasks.n_train_pairs(self.p, self.train_frac, self.symmetric)
        for name, known in (("activation", tuple(modular.ACTIVATIONS)), ("init", modular.INITS),
                            ("precision", modular.PRECISIONS), ("optimizer", grok.OPTIMIZERS),
                            ("loss", grok.LOSSES)):
            one_of(name, getattr(self, name), known)
        if not self.variants or len(set(self.variants)) != len(self.variants) or \
                any(v not in VARIANTS for v in self.variants):
            raise ValueError(f"variants must be some of {VARIANTS}, each once, got {self.variants!r}")
        for name in ("seeds", "steps", "n_history", "n_embed", "n_hidden"):
            positive_int(name, getattr(self, name))
        for name in ("construct_p", "construct_n"):
            for value in getattr(self, name):
                positive_int(name, value)

    @property
    def grok_config(self) -> grok.GrokConfig:
        return grok.GrokConfig(steps=self.steps, optimizer=self.optimizer, loss=self.loss,
                               class_mean=self.class_mean, n_history=self.n_history)

    @property
    def hyper(self) -> dict:
        """The traced settings, ``{name: value}`` (``grok.HYPER``'s names)."""
        return {name: getattr(self, name) for name in grok.HYPER}

    @property
    def hp_dtype(self):
        """The traced settings' dtype: float64 where a float64 precision trains, as the source."""
        return jnp.float32 if self.precision == "float32" else jnp.float64

    def precision_context(self):
        """``jax.enable_x64`` while a float64 precision trains and is analysed."""
        return jax.enable_x64(self.precision != "float32")


VARIANTS = ("factored", "unfactored")
#: the leaky setting of earlier versions, kept as the documented contrast: all p^2 ordered
#: pairs, embedding 32, Gaussian init, per-example cross-entropy, float32
ORDERED = ModularConfig(symmetric=False, n_embed=32, init="normal", precision="float32", class_mean=False,
                        steps=10_000, n_history=100)
#: the published code's "Reverse grokking" config (``MLP_Modular_Addition.ipynb``, commented
#: beside the main one; the explorable's "Reverse Grokking With A Small Model" chart):
#: embedding 5, 10 neurons, weight decay 0, 20,000 steps, the rest as the main model; its
#: one seed (68) replaced by 8 of ours; the unfactored variant left out
NO_DECAY = ModularConfig(n_embed=5, n_hidden=10, weight_decay=0.0, steps=20_000, seeds=8, variants=("factored",))
#: quick and paper: the code's main-model settings at 4 and 32 seeds (the seed count is ours)
PRESETS = {"quick": ModularConfig(seeds=4), "quick-float32": ModularConfig(seeds=4, precision="float32"),
           "paper": ModularConfig(seeds=32), "ordered": ORDERED, "no-decay": NO_DECAY}
SEEDS = "seeds"


def record(cfg: ModularConfig) -> dict:
    """The config, and the constants of the analysis beside it."""
    return {**dataclasses.asdict(cfg), "accuracy_threshold": grok.ACCURACY_THRESHOLD, "grok_delay": grok.GROK_DELAY,
            "live_neuron_fraction": fourier.LIVE_NEURON_FRACTION, "decay": "l2"}


@functools.cache
def model_apply(activation: str):
    return lambda params, inputs: modular.apply(params, inputs["a"], inputs["b"], activation)


def seed_data(cfg: ModularConfig, seeds) -> tuple[dict, dict]:
    """Each seed's train/test split, stacked (``grok.stack_splits``): seed ``s`` draws it
    from ``grok.seed_keys(cfg.seed, s)[0]``."""
    return grok.stack_splits([tasks.modular_addition(grok.seed_keys(cfg.seed, s)[0], cfg.p, cfg.train_frac,
                                                     cfg.symmetric) for s in seeds])


@functools.lru_cache(maxsize=16)
def grid_model(cfg: ModularConfig, variant: str, seeds: tuple, snapshot: bool = False,
               grok_cfg: grok.GrokConfig | None = None) -> grok.GridModel:
    """``run_grid``'s functions of ``variant`` for ``seed_data(cfg, seeds)``; the same
    objects for the same arguments, so a repeated grid reuses its compiled programs."""
    factored = variant == "factored"

    def make_params(k_init, hp):
        return modular.init(k_init, cfg.p, cfg.n_embed, cfg.n_hidden, factored=factored, scale=hp["init_scale"],
                            init=cfg.init, precision=cfg.precision)

    return grok.grid_model(grok_cfg or cfg.grok_config, model_apply(cfg.activation), make_params, cfg.seed, seeds,
                           modular.collapsed if snapshot else None)


def train_seeds(cfg: ModularConfig, variant: str, axes: dict | None = None, grok_cfg: grok.GrokConfig | None = None,
                seeds=None, snapshot: bool = False, runs_batch: int | None = None, progress=None,
                checkpoint_dir=None):
    """Every seed, and every setting of ``axes`` (``grok.HYPER`` name -> values: their
    product; the config's value for the rest), trained by ``grok.fit``; call it inside
    ``cfg.precision_context()``. Returns (``GrokResult`` with one run axis: the product of
    ``axes`` in their order, then ``seeds``; compile s; train s).

    Seed ``s`` (default ``range(cfg.seeds)``) draws the train/test split and the init from
    ``fold_in(key(cfg.seed), s)``. With ``snapshot`` the history also holds
    ``modular.collapsed`` params at each point. ``runs_batch``: runs vmapped together
    (``run_grid``'s default: one at a time on CPU, all on an accelerator);
    ``checkpoint_dir``: ``run_grid``'s.
    """
    grok_cfg = grok_cfg or cfg.grok_config
    seeds = tuple(range(cfg.seeds)) if seeds is None else tuple(int(s) for s in np.atleast_1d(seeds))
    unknown = set(axes or {}) - set(grok.HYPER)
    if unknown:
        raise ValueError(f"axes must be some of {tuple(grok.HYPER)}, got {sorted(unknown)}")
    grid = {**(axes or {}), **{name: [value] for name, value in cfg.hyper.items() if name not in (axes or {})},
            grok.RUN_SEED: list(seeds)}
    train, test = seed_data(cfg, seeds)
    model = grid_model(cfg, variant, seeds, snapshot, grok_cfg)
    res = grok.fit(grok_cfg, model, train, test, grid, hp_dtype=cfg.hp_dtype, runs_batch=runs_batch,
                   progress=progress, checkpoint_dir=checkpoint_dir)
    return grok.grok_result(res), res.compile_seconds, res.train_seconds


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


def mode_loss_history(cfg: ModularConfig, snapshots) -> np.ndarray:
    """Cross-entropy of each output Fourier mode over all pairs, ``[seed, record, K]``,
    from ``modular.collapsed`` snapshots (a ``lax.map``: one holds ``K x p^2 x p`` logits)."""
    a, b, labels = all_pairs(cfg.p)
    lead = jax.tree.leaves(snapshots)[0].shape[:2]
    flat = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32).reshape((-1,) + x.shape[2:]), snapshots)
    per_snapshot = jax.jit(lambda prm: jax.lax.map(lambda q: fourier.mode_losses(
        modular.apply(q, a, b, cfg.activation), labels), prm, batch_size=8))
    return np.asarray(per_snapshot(flat)).reshape(lead + (-1,))


#: history points kept of ``W_input`` for the heatmaps, and of the mode losses
N_SNAPSHOTS = 100


def snapshot_index(n_records: int) -> np.ndarray:
    return np.unique(np.linspace(0, n_records - 1, min(N_SNAPSHOTS, n_records)).round().astype(int))


def neurons_per_frequency(freq: dict) -> dict:
    """``{key frequency: live neurons whose dominant frequency it is}``."""
    return {str(k): int(np.sum(freq["live"] & (freq["dominant"] == k))) for k in freq["key_frequencies"]}


HISTORY = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")


def train_variant(cfg: ModularConfig, variant: str, store) -> Part:
    """Every seed of ``variant``: histories ``[seed, step]``, the final collapsed weights
    and, for the first variant (the one the weight and mode-loss figures show),
    ``W_input`` and the per-mode losses at ``snapshot_index``'s history points."""
    drawn = variant == cfg.variants[0]
    with cfg.precision_context():
        res, compile_s, run_s = train_seeds(cfg, variant, snapshot=drawn, progress=store.progress,
                                            checkpoint_dir=store.checkpoints(variant))
        final = modular.collapsed(res.params)
    steps = cfg.grok_config.history_steps
    arrays = {**{k: np.asarray(getattr(res.history, k)) for k in HISTORY},
              "w_input": np.asarray(final["W_in"]), "w_output": np.asarray(final["W_out"]), "diverged": res.diverged}
    dims = {**{k: ("seed", "step") for k in HISTORY}, "w_input": ("seed", "input", "neuron"),
            "w_output": ("seed", "neuron", "answer"), "diverged": ("seed",)}
    coords = {"seed": range(cfg.seeds), "step": steps}
    if drawn:
        keep = snapshot_index(cfg.grok_config.n_records)
        snapshots = jax.tree.map(lambda x: np.asarray(x)[:, keep], res.history.params)
        arrays.update(w_input_history=snapshots["W_in"].astype(np.float32),
                      mode_loss=mode_loss_history(cfg, snapshots))
        dims.update(w_input_history=("seed", "snapshot_step", "input", "neuron"),
                    mode_loss=("seed", "snapshot_step", "mode"))
        coords.update(snapshot_step=steps[keep], mode=fourier.frequencies(cfg.p))
    return Part(arrays, dims, coords, info={"train_seconds": run_s}, n_runs=cfg.seeds, compile_seconds=compile_s)


def construction_part(cfg: ModularConfig) -> Part:
    """``constructed(cfg)``'s accuracies, ``[p, n_neurons]``."""
    c = constructed(cfg)
    return Part({k: np.asarray(c[k], np.float64) for k in ("relu_accuracy", "square_accuracy")},
                {k: ("p", "n_neurons") for k in ("relu_accuracy", "square_accuracy")},
                {"p": cfg.construct_p, "n_neurons": cfg.construct_n})


def run(cfg: ModularConfig, store) -> None:
    """A part per variant (every seed in one ``run_grid``), then the constructed solution."""
    for variant in cfg.variants:
        store.part(variant, lambda v=variant: train_variant(cfg, v, store))
    store.part("constructed", lambda: construction_part(cfg))


#: a seed "generalises then memorises" when its test accuracy ends at least this far
#: below its peak while its final train accuracy is at least ``grok.ACCURACY_THRESHOLD`` (ours)
REVERSE_DROP = 0.1


def peak(train_acc, test_acc, steps, test_loss=None) -> dict:
    """One seed's test-accuracy peak (first step of the maximum), the train accuracy there
    and its minimum from there on, the drop of test accuracy from the peak to the end,
    and whether it rose then fell by ``REVERSE_DROP`` with train accuracy high at the
    end; with ``test_loss``, its minimum, that step and the final / minimum ratio (the
    explorable charts this model's losses)."""
    train_acc, test_acc = np.asarray(train_acc, np.float64), np.asarray(test_acc, np.float64)
    steps = np.asarray(steps)
    i = int(np.argmax(test_acc))
    drop = float(test_acc[i] - test_acc[-1])
    out = {"peak_test_accuracy": float(test_acc[i]), "peak_test_step": int(steps[i]),
           "train_accuracy_at_peak": float(train_acc[i]), "min_train_accuracy_after_peak": float(train_acc[i:].min()),
           "test_drop_after_peak": drop,
           "generalise_then_memorise": bool(drop >= REVERSE_DROP and train_acc[-1] >= grok.ACCURACY_THRESHOLD)}
    if test_loss is not None:
        loss = np.asarray(test_loss, np.float64)
        j = int(np.nanargmin(loss)) if np.isfinite(loss).any() else 0
        out.update(min_test_loss=finite_or_none(loss[j]), min_test_loss_step=int(steps[j]),
                   final_over_min_test_loss=finite_or_none(loss[-1] / loss[j]) if loss[j] > 0 else None)
    return out


def analyse(part: Part) -> dict:
    """One variant: per seed its outcome, memorise and generalise steps, the longest
    plateau (train accuracy >= 0.99, test < 0.5), final accuracies, the test-accuracy
    peak (``peak``) and the trained model's key frequencies with their neurons; counts
    and the median delay."""
    h = grok.History(*(part[k] for k in HISTORY))
    steps = part.coords["step"]
    o = grok.outcomes(h, steps)
    runs = []
    for s in range(h.train_loss.shape[0]):
        freq = fourier.neuron_frequencies(part["w_input"][s])
        runs.append({"seed": s, "outcome": grok.OUTCOMES[o["outcome"][s]],
                     "memorise_step": finite_or_none(o["memorise_step"][s]),
                     "generalise_step": finite_or_none(o["generalise_step"][s]),
                     "plateau_steps": int(o["plateau_steps"][s]),
                     "final_train_accuracy": float(h.train_accuracy[s, -1]),
                     "final_test_accuracy": float(h.test_accuracy[s, -1]),
                     "key_frequencies": freq["key_frequencies"].tolist(),
                     "neurons_per_key_frequency": neurons_per_frequency(freq),
                     "key_share": freq["key_share"], "live_neurons": int(freq["live"].sum()),
                     **peak(h.train_accuracy[s], h.test_accuracy[s], steps, h.test_loss[s])})
    delays = [r["generalise_step"] / r["memorise_step"] for r in runs
              if r["generalise_step"] is not None and r["memorise_step"]]
    return {"outcomes": grok.outcome_counts(o["outcome"]), "runs": runs,
            "generalised": sum(r["generalise_step"] is not None for r in runs),
            "median_generalise_over_memorise": float(np.median(delays)) if delays else None,
            "median_plateau_steps": float(np.median([r["plateau_steps"] for r in runs])),
            "generalise_then_memorise": sum(r["generalise_then_memorise"] for r in runs)}


def construction(part: Part) -> dict:
    """The constructed solution's accuracies as ``constructed`` gives them."""
    return {"p": part.coords["p"].tolist(), "n_neurons": part.coords["n_neurons"].tolist(),
            **{k: part[k].tolist() for k in ("relu_accuracy", "square_accuracy")}}


def summarize(parts: dict, cfg: ModularConfig) -> dict:
    return {**{v: analyse(parts[v]) for v in cfg.variants}, "constructed": construction(parts["constructed"])}


def table_axes(summary: dict) -> dict:
    """Rows and columns of the constructed accuracies for ``jaxmem show``."""
    c = summary["results"]["constructed"]
    return {f"constructed/{k}": ("p", c["p"], "N", c["n_neurons"]) for k in ("relu_accuracy", "square_accuracy")}


def draw(parts: dict, summary: dict, cfg: ModularConfig, out) -> None:
    """Every figure of a ``modular-addition`` run."""
    figures_grok.modular_addition({v: parts[v] for v in cfg.variants}, cfg, construction(parts["constructed"]), out)
    if cfg.weight_decay == 0:  # the no-decay setting: does test accuracy rise then fall?
        first = parts[cfg.variants[0]]
        figures_grok.peak_curves(first.coords["step"], {k: first[k] for k in HISTORY},
                                 f"{cfg.variants[0]}, no weight decay, (a + b) mod {cfg.p}",
                                 Path(out) / f"peak_{cfg.variants[0]}.png")
