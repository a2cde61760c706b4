"""``parity-pruning``: does weight decay prune the distracting digits as the 1s-and-0s
model generalises, and does L2 decay leave redundant neurons? (docs/sources.md §3)

The explorable (seed 003) trains "a one-layer MLP ... on a fixed batch of 1,200
sequences" of 30 digits, labelled by the parity of the first three, with L1 weight
decay, and says: "Train loss actually slightly increases before the model generalizes
as it exchanges loss related to outputting the correct label for having lower
weights"; "The rapid generalization occurs when the last weights connected to the
distracting digits are pruned by weight decay"; and, of L2 decay, "It pushes for lots
of small weights leading to redundant neurons on this task". This experiment trains
that model with L1 decay and, everything else fixed, with L2 (AdamW's decoupled) decay,
one part per arm (a decay at one strength; ``run_grid`` over the seeds, through
``grok.fit``), recording
``W_input`` at every history point. From it, per run: the share of the input weights'
squared norm on the three relevant digits (``relevant_share``), the norm of the weights
on the distracting digits (``distractor_norm``) and how many of them are still above
``alive`` (``n_alive``), train and test loss; and at the end, per neuron, its path
strength on the relevant digits (``|W_in[:3, i]| |w_out[i]|``) for the redundancy
measures (``neuron_stats``).

Where each setting comes from (``PruningConfig``): *seed* -- 1,200 training sequences,
30 digits of which 3 relevant, L1 decay for the article's model, nine models per
setting; *code* (the published sweep's ``hyper_shared.json``) -- AdamW lr 3e-3, betas
(0.99, 0.98), 5,000 test sequences, cross-entropy, full batch; *code* (the published L2
animation ``img/sp-l2.gif``) -- 32 hidden neurons; *ours* -- both decay strengths (the
article states neither; its notebook ``MLP_Sparse_Parity.ipynb`` is not readable in the
published repository), the step count, the history spacing and every threshold of the
analysis.
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np

from jaxmem import tasks
from jaxmem.models import parity
from jaxmem.store import Part, finite_or_none
from jaxmem.studies.grokking import grok
from jaxmem.validate import finite_values, in_range, one_of, positive_int

DESCRIPTION = ("Sparse parity, the article's L1 model vs L2: train-loss rise, distractor pruning at "
               "generalisation, relevant-digit share, redundant neurons")


@dataclasses.dataclass(frozen=True)
class PruningConfig:
    """One part (an *arm*, named ``"{decay}-{wd:g}"``) per entry of ``decays``
    (``"l1"``: ``wd * sign(w)`` added to the gradient before Adam, as the explorable's
    code; ``"l2"``: AdamW's decoupled ``lr * wd * w``), each at its ``weight_decays``
    entry; everything else (data, init, lr, steps) is shared.

    Sources: ``n_train`` 1,200, ``n_bits`` 30, ``n_relevant`` 3, L1 decay and 9 seeds
    are the article's (seed 003); ``lr``, ``b1``, ``b2``, ``n_test`` are the published
    sweep's ``hyper_shared.json`` (code); ``hidden`` 32 is the neuron count of the
    published L2 animation (``img/sp-l2.gif``, code; the article's L1 model's is not
    stated). Ours: ``weight_decays`` (L1 1e-4: memorises by ~600 steps and generalises
    by ~1,200 at this setting; L1 3e-6, 30 times weaker: memorises deeper before the
    decay prunes; L2 0.3: a value of the published sweep's grid that groks here),
    ``steps`` (6,000: every L1 run has pruned its distracting digits by ~2,000 and
    every L2 run's test loss has met its train loss by ~4,500 at this setting; the
    article's figure animates generalisation up to step 3,750), ``n_history`` (a point
    every 20 steps), ``alive``
    (a distracting-digit weight counts as not yet pruned while ``|w| > alive``; L1
    with Adam leaves pruned weights jittering at about lr), ``active`` (a neuron is
    active if its path strength is at least this fraction of the run's largest),
    ``same`` (two active neurons are redundant copies if the cosine of their
    ``[W_in[:3], bias, w_out]`` vectors is at least this) and ``match`` (the test loss
    has reached the train loss's level once it is within this factor of it, or below
    ``grok.LOSS_THRESHOLD``).
    """

    decays: tuple[str, ...] = ("l1", "l1", "l2")
    weight_decays: tuple[float, ...] = (1e-4, 3e-6, 0.3)
    n_train: int = 1200
    hidden: int = 32
    seeds: int = 9
    steps: int = 6000
    lr: float = 3e-3
    b1: float = 0.99
    b2: float = 0.98
    init_scale: float = 1.0
    n_bits: int = 30
    n_relevant: int = 3
    n_test: int = 5000
    n_history: int = 300
    alive: float = 0.05
    active: float = 0.1
    same: float = 0.9
    match: float = 2.0
    n_saved: int = 100
    seed: int = 0

    def __post_init__(self):
        if not self.decays or len(self.decays) != len(self.weight_decays):
            raise ValueError(f"decays and weight_decays must pair up, got {self.decays!r} and {self.weight_decays!r}")
        if len(set(self.arms)) != len(self.arms):
            raise ValueError(f"(decay, weight decay) pairs must be distinct (one part each), got {self.arms!r}")
        for d in self.decays:
            one_of("decays", d, grok.DECAYS)
        finite_values("weight_decays", self.weight_decays)
        for name in ("n_train", "hidden", "seeds", "n_bits", "n_test", "n_saved"):
            positive_int(name, getattr(self, name))
        in_range("n_relevant", self.n_relevant, 1, self.n_bits - 1, closed_high=True)
        for name in ("lr", "alive", "match"):
            if not np.isfinite(getattr(self, name)) or getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive number, got {getattr(self, name)!r}")
        in_range("active", self.active, 0.0, 1.0, closed_high=True)
        in_range("same", self.same, -1.0, 1.0, closed_high=True)
        self.grok_config("l1")  # steps and n_history: GrokConfig's checks

    def grok_config(self, decay: str) -> grok.GrokConfig:
        return grok.GrokConfig(steps=self.steps, decay=decay, n_history=self.n_history,
                               loss_floor=grok.FLOAT32_LOSS_FLOOR)

    @property
    def arms(self) -> tuple[str, ...]:
        """Each arm's part name, ``"{decay}-{wd:g}"``."""
        return tuple(f"{d}-{w:g}" for d, w in zip(self.decays, self.weight_decays))

    @property
    def history_steps(self) -> np.ndarray:
        return self.grok_config(self.decays[0]).history_steps


#: article: the model of the article's text (seed 003), with the settings it leaves
#: out from the published code or ours (see ``PruningConfig``); paper is the same.
#: quick: 3 seeds, 4,000 steps (L2 reaches 99% test accuracy by 3,040 steps for seeds 0-2).
ARTICLE = PruningConfig()
PRESETS = {"quick": PruningConfig(seeds=3, steps=4000, n_history=200), "article": ARTICLE, "paper": ARTICLE}
SEEDS = "seeds"


# ---------------------------------------------------------------- measures (numpy)


def _rows(w_in, n_relevant: int):
    """(relevant rows, distracting rows) of ``W_in [..., n_bits + 1, H]``; the last row
    is the bias, left out of both."""
    w = np.asarray(w_in, np.float64)
    return w[..., :n_relevant, :], w[..., n_relevant:-1, :]


def relevant_share(w_in, n_relevant: int) -> np.ndarray:
    """Share of the input weights' squared norm on the first ``n_relevant`` digits (bias
    row left out), over any leading axes: ``parity_grid.relevant_share`` in numpy."""
    rel, dis = _rows(w_in, n_relevant)
    r, d = np.square(rel).sum((-2, -1)), np.square(dis).sum((-2, -1))
    return r / np.maximum(r + d, 1e-300)


def distractor_norm(w_in, n_relevant: int) -> np.ndarray:
    """Frobenius norm of the weights on the distracting digits."""
    return np.sqrt(np.square(_rows(w_in, n_relevant)[1]).sum((-2, -1)))


def n_alive(w_in, n_relevant: int, alive: float) -> np.ndarray:
    """How many distracting-digit weights have ``|w| > alive``."""
    return (np.abs(_rows(w_in, n_relevant)[1]) > alive).sum((-2, -1))


def path_strength(w_in, w_out, n_relevant: int) -> np.ndarray:
    """Per neuron, ``|W_in[:n_relevant, i]| * |w_out[i]|``: ``[..., H]``."""
    return np.linalg.norm(_rows(w_in, n_relevant)[0], axis=-2) * np.abs(np.asarray(w_out, np.float64))


def neuron_stats(w_in, w_out, n_relevant: int, active: float, same: float) -> dict:
    """Redundancy of one run's final neurons (``w_in [n_bits + 1, H]``, ``w_out [H]``).

    ``n_active``: neurons whose path strength is at least ``active`` times the largest;
    ``effective``: the participation ratio ``(sum c)^2 / sum c^2`` of the path
    strengths ``c``; ``n_distinct``: groups of active neurons after greedily merging
    each (strongest first) into the first group whose leader's ``[W_in[:n_relevant],
    bias, w_out]`` vector has cosine >= ``same`` with it; ``redundancy``: ``n_active /
    n_distinct``; ``max_cosine``: mean over active neurons of the largest cosine with
    another active neuron (NaN with fewer than two).
    """
    w_in, w_out = np.asarray(w_in, np.float64), np.asarray(w_out, np.float64)
    c = path_strength(w_in, w_out, n_relevant)
    top = c.max()
    act = np.flatnonzero(c >= active * top) if top > 0 else np.array([], int)
    act = act[np.argsort(-c[act], kind="stable")]
    vec = np.concatenate([w_in[:n_relevant], w_in[-1:], w_out[None]], axis=0).T[act]  # [A, n_relevant + 2]
    unit = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-300)
    leaders: list[int] = []
    for i in range(len(act)):
        if not any(unit[i] @ unit[j] >= same for j in leaders):
            leaders.append(i)
    cos = unit @ unit.T
    if len(act) >= 2:
        np.fill_diagonal(cos, -np.inf)
        max_cos = float(np.mean(cos.max(axis=1)))
    else:
        max_cos = float("nan")
    total = c.sum()
    return {"n_active": int(len(act)), "effective": float(total ** 2 / np.square(c).sum()) if total > 0 else 0.0,
            "n_distinct": int(len(leaders)), "redundancy": float(len(act) / max(len(leaders), 1)),
            "max_cosine": max_cos}


def first_at_or_after(mask, steps, start=None):
    """First step (``steps [T]``) where ``mask [..., T]`` holds, at or after ``start``
    (per run, NaN: from the beginning); NaN where it never does."""
    mask, steps = np.asarray(mask, bool), np.asarray(steps, np.float64)
    if start is not None:
        mask = mask & (steps >= np.nan_to_num(np.asarray(start, np.float64), nan=-np.inf)[..., None])
    return np.where(mask.any(-1), steps[np.argmax(mask, axis=-1)], np.nan)


def loss_rise(train_loss, steps, start, stop) -> dict:
    """The train loss's largest rise within ``[start, stop]`` (one run, ``[T]``): its
    minimum over the steps from ``start`` up to the peak, and the peak after it.

    Returns ``factor`` (peak / that minimum; 1 when it only falls), ``min_step``,
    ``peak_step`` and the two losses. NaN everywhere if ``start`` or ``stop`` is NaN or
    the window is empty.
    """
    loss, steps = np.asarray(train_loss, np.float64), np.asarray(steps)
    nan = {"factor": float("nan"), "min_step": float("nan"), "peak_step": float("nan"),
           "min_loss": float("nan"), "peak_loss": float("nan")}
    if not (np.isfinite(start) and np.isfinite(stop)):
        return nan
    idx = np.flatnonzero((steps >= start) & (steps <= stop))
    if idx.size == 0:
        return nan
    seg = loss[idx]
    running_min = np.minimum.accumulate(seg)
    j_peak = int(np.argmax(seg / running_min))  # the largest rise over an earlier minimum
    j_min = int(np.argmin(seg[:j_peak + 1]))
    return {"factor": float(seg[j_peak] / seg[j_min]), "min_step": float(steps[idx[j_min]]),
            "peak_step": float(steps[idx[j_peak]]), "min_loss": float(seg[j_min]), "peak_loss": float(seg[j_peak])}


def steepest_drop(loss, steps) -> np.ndarray:
    """Per run (``loss [..., T]``), the history step at the end of the interval over
    which ``log(loss)`` falls fastest per step (the "sharp drop in test loss")."""
    log = np.log(np.maximum(np.asarray(loss, np.float64), 1e-300))
    slope = np.diff(log, axis=-1) / np.diff(np.asarray(steps, np.float64))
    slope = np.where(np.isfinite(slope), slope, np.inf)
    return np.asarray(steps)[1 + np.argmin(slope, axis=-1)].astype(np.float64)


def at_step(values, steps, step):
    """``values [..., T]`` at ``step`` (per run; NaN where ``step`` is NaN)."""
    values, steps = np.asarray(values, np.float64), np.asarray(steps)
    step = np.asarray(step, np.float64)
    i = np.searchsorted(steps, np.nan_to_num(step, nan=steps[0]))
    i = np.clip(i, 0, len(steps) - 1)
    out = np.take_along_axis(values, i[..., None].astype(int), axis=-1)[..., 0]
    return np.where(np.isnan(step), np.nan, out)


# ---------------------------------------------------------------- training


def seed_data(cfg: PruningConfig) -> tuple[dict, dict]:
    """Each seed's 1,200 training and ``n_test`` test sequences (``grok.seed_keys``)."""
    return grok.stack_splits([tasks.sparse_parity(grok.seed_keys(cfg.seed, s)[0], cfg.n_train, cfg.n_train, cfg.n_test,
                                                  cfg.n_bits, cfg.n_relevant) for s in range(cfg.seeds)])


def init_params(cfg: PruningConfig) -> dict:
    """Every seed's initial params, as ``grok.grid_model`` draws them: ``[seed, ...]``."""
    ps = [parity.init(grok.seed_keys(cfg.seed, s)[1], cfg.n_bits, cfg.hidden, cfg.init_scale) for s in range(cfg.seeds)]
    return jax.tree.map(lambda *a: np.stack([np.asarray(x) for x in a]), *ps)


def train_part(cfg: PruningConfig, decay: str, weight_decay: float, store=None, name: str = "") -> Part:
    """All seeds at one decay: histories and measures on ``[seed, step]``, ``W_in`` of
    seed 0 at ``n_saved`` history points, and every seed's initial and final params."""
    gcfg = cfg.grok_config(decay)
    seeds = tuple(range(cfg.seeds))
    train, test = seed_data(cfg)

    def make_params(k_init, hp):
        return parity.init(k_init, cfg.n_bits, cfg.hidden, cfg.init_scale)

    model = grok.grid_model(gcfg, parity.apply, make_params, cfg.seed, seeds, snapshot=lambda p: p["W_in"])
    res = grok.fit(gcfg, model, train, test, {"n_train": [cfg.n_train], "lr": [cfg.lr], "weight_decay": [weight_decay],
                                              grok.RUN_SEED: list(seeds)},
                   b1=cfg.b1, b2=cfg.b2, progress=None if store is None else store.progress,
                   checkpoint_dir=None if store is None else store.checkpoints(name or decay))
    flat = lambda a: np.asarray(a).reshape((cfg.seeds,) + np.shape(a)[len(res.axes):])  # grid [1, 1, 1, seed] -> [seed]
    h = grok.history_of(res.records)
    w_hist = flat(h.params)  # [seed, T, n_bits + 1, H]
    steps = cfg.history_steps
    saved = np.unique(np.linspace(0, len(steps) - 1, min(cfg.n_saved, len(steps))).round().astype(int))
    init = init_params(cfg)
    arrays = {"train_loss": flat(h.train_loss), "test_loss": flat(h.test_loss),
              "train_accuracy": flat(h.train_accuracy), "test_accuracy": flat(h.test_accuracy),
              "relevant_share": relevant_share(w_hist, cfg.n_relevant),
              "distractor_norm": distractor_norm(w_hist, cfg.n_relevant),
              "relevant_norm": np.sqrt(np.square(w_hist[..., :cfg.n_relevant, :]).sum((-2, -1))),
              "n_alive": n_alive(w_hist, cfg.n_relevant, cfg.alive),
              "w_in_history": w_hist[0, saved], "w_in": flat(res.params["W_in"]), "w_out": flat(res.params["w_out"]),
              "w_in_init": init["W_in"], "w_out_init": init["w_out"], "diverged": flat(res.diverged)}
    per_step = ("seed", "step")
    dims = {**{k: per_step for k in ("train_loss", "test_loss", "train_accuracy", "test_accuracy", "relevant_share",
                                      "distractor_norm", "relevant_norm", "n_alive")},
            "w_in_history": ("saved_step", "row", "neuron"), "w_in": ("seed", "row", "neuron"),
            "w_out": ("seed", "neuron"), "w_in_init": ("seed", "row", "neuron"), "w_out_init": ("seed", "neuron"),
            "diverged": ("seed",)}
    coords = {"seed": list(seeds), "step": steps, "saved_step": steps[saved], "row": range(cfg.n_bits + 1),
              "neuron": range(cfg.hidden)}
    return Part(arrays, dims, coords, info={"train_seconds": res.train_seconds, "weight_decay": weight_decay},
                n_runs=cfg.seeds, compile_seconds=res.compile_seconds)


def run(cfg: PruningConfig, store) -> None:
    """One part per arm (``PruningConfig.arms``)."""
    for arm, decay, wd in zip(cfg.arms, cfg.decays, cfg.weight_decays):
        store.part(arm, lambda decay=decay, wd=wd, arm=arm: train_part(cfg, decay, wd, store, arm))


# ---------------------------------------------------------------- summary


def analyse(a: dict, cfg: PruningConfig) -> list[dict]:
    """Per seed of one part's arrays: the steps, the train-loss rise, the pruning and
    the shares (see ``summarize``)."""
    steps = cfg.history_steps
    mem = grok.first_step(a["train_accuracy"], steps)
    gen = grok.first_step(a["test_accuracy"], steps)
    tr, te = np.asarray(a["train_loss"], np.float64), np.asarray(a["test_loss"], np.float64)
    level = first_at_or_after((te <= cfg.match * tr) | (te <= grok.LOSS_THRESHOLD), steps, mem)
    pruned = first_at_or_after(np.asarray(a["n_alive"]) == 0, steps, mem)
    level, pruned = (np.where(np.isnan(mem), np.nan, x) for x in (level, pruned))  # only after memorising
    stop = np.where(np.isnan(level), steps[-1], level)  # the rise's window ends there, or at the last step
    drop = steepest_drop(te, steps)
    share0 = relevant_share(a["w_in_init"], cfg.n_relevant)
    dn = np.asarray(a["distractor_norm"], np.float64)
    out = []
    for s in range(tr.shape[0]):
        rise = loss_rise(tr[s], steps, mem[s], stop[s])
        after = loss_rise(tr[s], steps, gen[s], np.nan_to_num(pruned[s], nan=steps[-1]))
        j_peak = int(np.argmax(dn[s]))
        stats = neuron_stats(a["w_in"][s], a["w_out"][s], cfg.n_relevant, cfg.active, cfg.same)
        init_stats = neuron_stats(a["w_in_init"][s], a["w_out_init"][s], cfg.n_relevant, cfg.active, cfg.same)
        gen_s = gen[s]
        out.append({
            "seed": s, "memorise_step": finite_or_none(mem[s]), "generalise_step": finite_or_none(gen_s),
            "test_loss_matches_step": finite_or_none(level[s]),
            "final_test_accuracy": float(a["test_accuracy"][s, -1]), "final_train_loss": float(tr[s, -1]),
            "final_test_loss": float(te[s, -1]),
            "train_loss_rise": {k: finite_or_none(v) for k, v in rise.items()},
            "rise_peak_minus_generalise": finite_or_none(rise["peak_step"] - gen_s),
            "train_loss_rise_after": {k: finite_or_none(v) for k, v in after.items()},
            "distractor_norm_peak": float(dn[s, j_peak]), "distractor_norm_peak_step": int(steps[j_peak]),
            "distractor_norm_at_generalise": finite_or_none(at_step(dn[s], steps, gen_s)),
            "distractor_norm_at_generalise_over_peak": finite_or_none(at_step(dn[s], steps, gen_s) / dn[s, j_peak]),
            "distractor_norm_end": float(dn[s, -1]),
            "alive_at_generalise": finite_or_none(at_step(a["n_alive"][s], steps, gen_s)),
            "alive_end": int(a["n_alive"][s, -1]),
            "test_drop_step": float(drop[s]),
            "distractor_norm_at_drop_over_peak": finite_or_none(at_step(dn[s], steps, drop[s]) / dn[s, j_peak]),
            "alive_at_drop": finite_or_none(at_step(a["n_alive"][s], steps, drop[s])),
            "all_pruned_minus_drop": finite_or_none(pruned[s] - drop[s]),
            "all_pruned_step": finite_or_none(pruned[s]),
            "all_pruned_minus_generalise": finite_or_none(pruned[s] - gen_s),
            "relevant_share_start": float(share0[s]),
            "relevant_share_at_generalise": finite_or_none(at_step(a["relevant_share"][s], steps, gen_s)),
            "relevant_share_end": float(a["relevant_share"][s, -1]),
            "neurons": stats, "neurons_at_init": init_stats})
    return out


def _median(values) -> float | None:
    v = np.asarray([np.nan if x is None else x for x in values], np.float64)
    return finite_or_none(np.nanmedian(v)) if np.isfinite(v).any() else None


def _range(values) -> list:
    v = np.asarray([np.nan if x is None else x for x in values], np.float64)
    return [finite_or_none(np.nanmin(v)), finite_or_none(np.nanmax(v))] if np.isfinite(v).any() else [None, None]


#: per-run results whose median over seeds each arm reports
MEDIAN_KEYS = ("memorise_step", "generalise_step", "test_loss_matches_step", "rise_peak_minus_generalise",
               "distractor_norm_peak_step", "distractor_norm_at_generalise_over_peak", "alive_at_generalise",
               "all_pruned_minus_generalise", "test_drop_step", "distractor_norm_at_drop_over_peak", "alive_at_drop",
               "all_pruned_minus_drop", "alive_end", "relevant_share_start", "relevant_share_at_generalise",
               "relevant_share_end")

def summarize(parts: dict, cfg: PruningConfig) -> dict:
    """Per arm (``by_arm``): each seed's numbers (``analyse``) and their medians and ranges.

    Steps: ``memorise_step``/``generalise_step`` are the first history points with
    train/test accuracy >= ``grok.ACCURACY_THRESHOLD``; ``test_loss_matches_step`` the
    first (after memorising) with test loss <= ``match`` x train loss or <= 1e-5.
    ``train_loss_rise`` is the largest rise of the train loss over an earlier minimum
    between memorising and that step, or the last (``loss_rise``); ``rise_runs`` counts seeds whose
    factor exceeds 1.1 (ours). ``train_loss_rise_after`` (``rise_after_runs``) is the
    same from the generalisation step to ``all_pruned_step`` (or the last step), the
    window of the last pruning. ``all_pruned_step`` is the first point (after
    memorising) with no distracting weight above ``alive``; ``test_drop_step`` where
    the log test loss falls fastest (``steepest_drop``). ``n_distractor_weights`` is how
    many weights the distracting digits have (``alive`` counts out of it).
    """
    results = {}
    for arm, decay, wd in zip(cfg.arms, cfg.decays, cfg.weight_decays):
        runs = analyse(parts[arm].arrays, cfg)
        col = lambda key, sub=None: [r[key] if sub is None else r[key][sub] for r in runs]
        generalised = [r["generalise_step"] is not None for r in runs]
        results[arm] = {
            "decay": decay, "weight_decay": wd, "n_seeds": len(runs), "n_generalised": int(sum(generalised)),
            "rise_runs": int(sum((r["train_loss_rise"]["factor"] or 0) > 1.1 for r in runs)),
            "median": {
                **{k: _median(col(k)) for k in MEDIAN_KEYS},
                **{f"{k}_factor": _median(col(k, "factor")) for k in ("train_loss_rise", "train_loss_rise_after")},
                **{f"neurons_{k}": _median(col("neurons", k)) for k in ("n_active", "effective", "n_distinct",
                                                                         "redundancy", "max_cosine")}},
            "rise_after_runs": int(sum((r["train_loss_rise_after"]["factor"] or 0) > 1.1 for r in runs)),
            "range": {"train_loss_rise_factor": _range(col("train_loss_rise", "factor")),
                      "train_loss_rise_after_factor": _range(col("train_loss_rise_after", "factor")),
                      "generalise_step": _range(col("generalise_step")),
                      "neurons_n_active": _range(col("neurons", "n_active")),
                      "neurons_n_distinct": _range(col("neurons", "n_distinct")),
                      "relevant_share_end": _range(col("relevant_share_end"))},
            "runs": runs}
    return {"by_arm": results, "n_distractor_weights": (cfg.n_bits - cfg.n_relevant) * cfg.hidden,
            "thresholds": {"alive": cfg.alive, "active": cfg.active, "same": cfg.same, "match": cfg.match,
                           "rise": 1.1, "accuracy": grok.ACCURACY_THRESHOLD}}


def draw(parts: dict, summary: dict, cfg: PruningConfig, out) -> None:
    """Every figure (``parity_figures``)."""
    from jaxmem.studies.grokking import parity_figures

    parity_figures.pruning(parts, summary, cfg, out)
