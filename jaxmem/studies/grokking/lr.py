"""``grokking-lr``: what learning rate, optimizer, loss and initial scale do to grokking
on the explorable's main modular-addition model, claim by claim of the Vaintrob / Kaarel
discussion (docs/sources.md §3).

Claims checked (``ROLES`` names the grids that answer each):

- *optimizer*: "ADAM is significantly better than SGD". AdamW and SGD (momentum 0.9)
  are compared at a **matched per-step decay** ``lr * weight_decay`` (decoupled decay
  multiplies the weights by ``1 - lr * wd`` every step in both optimisers, so a fixed
  ``wd`` would decay SGD at lr 1 a thousand times harder than AdamW at lr 1e-3) and
  without decay, each optimiser at its own best lr of its grid.
- *lr_p*: "there is an optimal learning rate ... that depends on ... the size of the
  prime": the best lr of the same AdamW grid at several p.
- large lr "will sometimes immediately grok": every cell at lr >= ``LARGE_LR`` reported
  by its curves (memorise step, generalise step, the largest train - test accuracy gap).
- *scaled*: "reduce the learning rate to be small and comparatively adjust the number of
  epochs": each lr trains ``lr_steps / lr`` steps at a fixed weight-decay coefficient, so
  ``lr * steps`` and the total decay ``lr * wd * steps`` are the same for every lr.
- *loss*: cross-entropy vs MSE, by accuracy and loss curves (the CE side is the
  *optimizer* AdamW grid at the same p and decay).
- *init_scale*: a small initial weight norm in place of weight decay (Omnigrok).

Each grid's runs go through ``run_grid`` (``modular_addition.train_seeds``), one call per
lr (its weight decays, init scales and seeds traced together: a per-step decay ``d`` at lr
``l`` is the coefficient ``d / l``), on the faithful model of ``modular-addition``
(``ModularConfig``) with only the grid's own settings changed; a grid is one part of the
results, named by the grid.

Presets: ``quick`` is a scaled-down check (float32, 2,500 steps, 2 seeds, fewer lrs,
primes 31/67/113, per-step decay 1e-2 beside the faithful 1e-3 and none); ``paper`` runs
every claim at the source precision (``precision="source"``), 50,000 steps, 4 seeds and
the faithful per-step decay 1e-3 (and none), primes 31/67/97/113. The discussion gives
no lr grid, primes, momentum or step budget: those are ours (docs/grokking-lr.md).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from jaxmem.store import Part, finite_or_none
from jaxmem.studies.grokking import grok
from jaxmem.studies.grokking.modular_addition import ModularConfig, train_seeds
from jaxmem.validate import finite_values, in_range, one_of, positive_int

DESCRIPTION = ("Modular addition (faithful model) against the grokking discussion: AdamW vs SGD at matched per-step "
               "decay, optimum lr vs p, large lr, small lr with more steps, CE vs MSE, init scale")

#: what a grid answers (see the module docstring); "" only reports the grid
ROLES = ("", "optimizer", "lr_p", "scaled", "loss", "init_scale")
#: cells at this lr and above are the "large learning rates" of the discussion (".1 or more")
LARGE_LR = 0.1
#: test-accuracy levels whose first step every cell reports (not one threshold alone)
LEVELS = (0.5, 0.9, grok.ACCURACY_THRESHOLD)
#: history points of the median curves kept in ``summary.json``
CURVE_POINTS = 11
HISTORY = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")


@dataclasses.dataclass(frozen=True)
class LrGrid:
    """One grid at modulus ``p``: ``lrs`` x decays x ``init_scales`` x seeds.

    The decay is either ``weight_decays`` (coefficients: a run's per-step decay is
    ``lr * wd``, the explorable's AdamW convention) or, when ``step_decays`` is given,
    the per-step decay itself, held fixed across lrs (a run's coefficient is ``d / lr``).
    ``lr_steps``: each lr trains ``lr_steps / lr`` steps (``lr * steps`` held fixed; the
    history is then indexed by ``time = lr * step``); otherwise every lr trains ``steps``
    (None: the model's). ``role``: which claim the grid answers (``ROLES``); ``name``
    names its part of the results. A per-step decay of 1 or more (weights multiplied by
    ``1 - lr * wd <= 0`` every step) is refused.
    """

    name: str
    lrs: tuple[float, ...]
    optimizer: str = "adamw"
    loss: str = "ce"
    p: int = 67
    weight_decays: tuple[float, ...] = (1.0,)
    init_scales: tuple[float, ...] = (1.0,)
    step_decays: tuple[float, ...] | None = None
    steps: int | None = None
    lr_steps: float | None = None
    role: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or "/" in self.name or self.name == "claims":
            raise ValueError(f"a grid's name must be a non-empty string without '/', not 'claims', got {self.name!r}")
        what = f"grid {self.name!r}:"
        one_of(f"{what} optimizer", self.optimizer, grok.OPTIMIZERS)
        one_of(f"{what} loss", self.loss, grok.LOSSES)
        one_of(f"{what} role", self.role, ROLES)
        for field in ("lrs", "init_scales"):
            values = finite_values(f"{what} {field}", getattr(self, field))
            if min(values) <= 0:
                raise ValueError(f"{what} {field} must be positive, got {values!r}")
        for field in ("weight_decays", "step_decays"):
            values = getattr(self, field)
            if values is not None and (not finite_values(f"{what} {field}", values) or min(values) < 0):
                raise ValueError(f"{what} {field} must be non-negative, got {values!r}")
        if self.step_decays is not None and tuple(self.weight_decays) != (1.0,):
            raise ValueError(f"{what} give weight_decays or step_decays, not both")
        if self.steps is not None and self.lr_steps is not None:
            raise ValueError(f"{what} give steps or lr_steps, not both")
        if self.steps is not None:
            positive_int(f"{what} steps", self.steps)
        if self.lr_steps is not None:
            if not self.lr_steps > 0 or not math.isfinite(self.lr_steps):
                raise ValueError(f"{what} lr_steps must be positive, got {self.lr_steps!r}")
            for lr in self.lrs:
                n = self.lr_steps / lr
                if abs(n - round(n)) > 1e-6 * n or round(n) < 1:
                    raise ValueError(f"{what} lr_steps / lr must be a whole number of steps, got "
                                     f"{self.lr_steps} / {lr} = {n}")
        for lr in self.lrs:
            for wd in self.coefficients(lr):
                if lr * wd >= 1:
                    raise ValueError(f"{what} lr {lr} x weight decay {wd} = {lr * wd:g} per step multiplies the "
                                     f"weights by {1 - lr * wd:g} <= 0 every step")

    @property
    def decay_axis(self) -> str:
        """The grid's decay dim: ``"step_decay"`` (per-step, fixed) or ``"weight_decay"``."""
        return "weight_decay" if self.step_decays is None else "step_decay"

    @property
    def decays(self) -> tuple[float, ...]:
        """The values along ``decay_axis``."""
        return tuple(self.weight_decays if self.step_decays is None else self.step_decays)

    def coefficients(self, lr: float) -> list[float]:
        """The weight-decay coefficients at ``lr``, one per ``decays`` value."""
        if self.step_decays is None:
            return [float(w) for w in self.weight_decays]
        return [float(d) / float(lr) for d in self.step_decays]

    def steps_at(self, lr: float, default: int) -> int:
        """Steps trained at ``lr`` (``default``: the model's)."""
        if self.lr_steps is not None:
            return int(round(self.lr_steps / lr))
        return self.steps or default


#: the faithful model's per-step decay (AdamW lr 1e-3 x weight decay 1.0)
FAITHFUL_DECAY = 1e-3
_ADAM_LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)
#: paper: each claim at the faithful model's precision (``precision="source"``), 50,000
#: steps, 4 seeds and its per-step decay 1e-3; the discussion names no lr grid, primes,
#: SGD momentum or step budget: these are ours
PAPER_GRIDS = (
    LrGrid("adamw", _ADAM_LRS, step_decays=(FAITHFUL_DECAY, 0.0), role="optimizer"),
    LrGrid("sgd", (0.03, 0.1, 0.3, 1.0, 3.0), optimizer="sgd", step_decays=(FAITHFUL_DECAY, 0.0), role="optimizer"),
    LrGrid("adamw_p31", _ADAM_LRS, p=31, step_decays=(FAITHFUL_DECAY,), role="lr_p"),
    LrGrid("adamw_p97", _ADAM_LRS, p=97, step_decays=(FAITHFUL_DECAY,), role="lr_p"),
    LrGrid("adamw_p113", _ADAM_LRS, p=113, step_decays=(FAITHFUL_DECAY,), role="lr_p"),
    LrGrid("adamw_wd1", _ADAM_LRS, role="lr_p"),
    LrGrid("adamw_scaled", (1e-2, 5e-3, 2e-3, 1e-3, 5e-4), lr_steps=50.0, role="scaled"),
    LrGrid("sgd_scaled", (2.0, 1.0, 0.5), optimizer="sgd", weight_decays=(FAITHFUL_DECAY,), lr_steps=50_000.0,
           role="scaled"),
    LrGrid("mse", (1e-4, 1e-3, 1e-2, 0.1), loss="mse", step_decays=(FAITHFUL_DECAY,), role="loss"),
    LrGrid("init_scale", (1e-3, 1e-2), step_decays=(0.0,), init_scales=(0.03, 0.1, 0.3, 1.0), role="init_scale"))


@dataclasses.dataclass(frozen=True)
class GrokLrConfig:
    """``model``: the faithful setting every grid starts from (its ``steps``, ``seeds``,
    ``n_history`` and ``precision`` apply to every grid unless the grid sets its steps);
    SGD uses momentum ``sgd_momentum`` (the discussion gives none; 0.9 here)."""

    model: ModularConfig = dataclasses.field(default_factory=lambda: ModularConfig(seeds=4))
    grids: tuple[LrGrid, ...] = PAPER_GRIDS
    sgd_momentum: float = 0.9

    def __post_init__(self):
        names = [g.name for g in self.grids]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"grids must be at least one, with distinct names, got {names}")
        in_range("sgd_momentum", self.sgd_momentum, 0.0, 1.0)
        for g in self.grids:
            for lr in g.lrs:
                m = self.grid_model(g, lr)  # ModularConfig's checks (p)
                if g.lr_steps is not None and m.steps % m.n_history:
                    raise ValueError(f"grid {g.name!r}: lr {lr} trains {m.steps} steps, not a multiple of "
                                     f"n_history {m.n_history} (each lr needs the same history points)")

    @property
    def seeds(self) -> int:
        return self.model.seeds

    def grid_model(self, grid: LrGrid, lr: float | None = None) -> ModularConfig:
        """The model of ``grid`` at ``lr`` (its step count)."""
        steps = self.model.steps if lr is None else grid.steps_at(lr, self.model.steps)
        return dataclasses.replace(self.model, p=grid.p, loss=grid.loss, optimizer=grid.optimizer, steps=steps)

    def history_index(self, grid: LrGrid) -> tuple[str, np.ndarray]:
        """(dim name, values) of the grid's history axis: ``"step"``, or ``"time"`` (lr x
        step, the same for every lr) for an ``lr_steps`` grid."""
        if grid.lr_steps is None:
            return "step", self.grid_model(grid, grid.lrs[0]).grok_config.history_steps
        n = self.model.n_history
        return "time", grid.lr_steps * np.arange(1, n + 1) / n


#: the matched per-step decays of the quick preset's comparisons: the faithful model's
#: 1e-3 and 10x it, at which grokking falls within its 2,500 steps
QUICK_DECAY = 1e-2

#: quick: a scaled-down check, not the discussion's setting. float32 (about 3x faster
#: than the source's float64 here, and known to grok less often: docs/modular-addition.md),
#: 2,500 steps, 2 seeds, per-step decays 1e-2 (10x the faithful) and 1e-3 (the
#: faithful) and none for the optimisers, 1e-2 for the primes (31, 67, 113) and MSE,
#: fewer lrs, and the lr x steps grid from 1,000 to 10,000 steps; the source's precision,
#: 50,000 steps and 4 seeds are the paper preset's
QUICK = GrokLrConfig(
    model=ModularConfig(seeds=2, steps=2_500, n_history=50, precision="float32"),
    grids=(LrGrid("adamw", (1e-3, 3e-3, 1e-2, 3e-2, 0.1), step_decays=(QUICK_DECAY, FAITHFUL_DECAY, 0.0),
                  role="optimizer"),
           LrGrid("sgd", (0.3, 1.0, 3.0), optimizer="sgd", step_decays=(QUICK_DECAY, FAITHFUL_DECAY, 0.0),
                  role="optimizer"),
           LrGrid("adamw_p31", (1e-3, 3e-3, 1e-2, 3e-2, 0.1), p=31, step_decays=(QUICK_DECAY,), role="lr_p"),
           LrGrid("adamw_p113", (3e-3, 1e-2, 3e-2, 0.1), p=113, step_decays=(QUICK_DECAY,), role="lr_p"),
           LrGrid("adamw_scaled", (0.025, 0.01, 0.0025), lr_steps=25.0, role="scaled"),
           LrGrid("mse", (1e-3, 3e-3, 1e-2), loss="mse", step_decays=(QUICK_DECAY,), role="loss"),
           LrGrid("init_scale", (1e-2,), step_decays=(0.0,), init_scales=(0.1, 0.3, 1.0), role="init_scale")))
PAPER = GrokLrConfig(model=ModularConfig(seeds=4), grids=PAPER_GRIDS)
PRESETS = {"quick": QUICK, "paper": PAPER}
#: ``--seeds`` sets the model's seed count
SEEDS = "model.seeds"


def record(cfg: GrokLrConfig) -> dict:
    """The config, and the constants of the analysis beside it."""
    return {**dataclasses.asdict(cfg), "accuracy_threshold": grok.ACCURACY_THRESHOLD, "grok_delay": grok.GROK_DELAY,
            "large_lr": LARGE_LR, "levels": list(LEVELS)}


def grid_dims(grid: LrGrid) -> tuple[str, ...]:
    """A grid's run dims, in ``runs_of``'s order."""
    return ("lr", grid.decay_axis, "init_scale", "seed")


def runs_of(grid: LrGrid, seeds: int) -> dict:
    """Each run's settings, flattened in ``grid_dims``'s order: ``lr``, ``weight_decay``
    (the coefficient), ``step_decay`` (``lr * weight_decay``: the weights' per-step decay
    factor is ``1 - step_decay``), ``init_scale``, ``seed``."""
    i_lr, i_d, i_s, seed = (a.ravel() for a in np.meshgrid(np.arange(len(grid.lrs)), np.arange(len(grid.decays)),
                                                           np.arange(len(grid.init_scales)), np.arange(seeds),
                                                           indexing="ij"))
    lr = np.asarray(grid.lrs, np.float64)[i_lr]
    wd = np.asarray([grid.coefficients(l) for l in grid.lrs], np.float64)[i_lr, i_d]
    return {"lr": lr, "weight_decay": wd, "step_decay": lr * wd,
            "init_scale": np.asarray(grid.init_scales, np.float64)[i_s], "seed": seed}


def lr_axes(cfg: GrokLrConfig, grid: LrGrid, lr: float) -> dict:
    """The traced axes of ``grid``'s runs at ``lr`` (``train_seeds``'s ``axes``): the lr,
    its weight-decay coefficients (``d / lr`` for a per-step decay ``d``), the init scales
    and ``b1`` (SGD's momentum: ``grok.fit`` passes it as ``momentum``)."""
    return {"lr": [float(lr)], "weight_decay": grid.coefficients(lr), "init_scale": list(grid.init_scales),
            "b1": [cfg.sgd_momentum if grid.optimizer == "sgd" else cfg.model.b1]}


def train_lr(cfg: GrokLrConfig, grid: LrGrid, lr: float, progress=None, checkpoint_dir=None):
    """One lr of ``grid``: its decays x init scales x seeds by ``train_seeds`` (one
    ``run_grid``): (``GrokResult``, compile s, train s, history steps)."""
    m = cfg.grid_model(grid, lr)
    with m.precision_context():
        res, compile_s, run_s = train_seeds(m, "factored", lr_axes(cfg, grid, lr), progress=progress,
                                            checkpoint_dir=checkpoint_dir)
    return res, compile_s, run_s, m.grok_config.history_steps


def grid_part(cfg: GrokLrConfig, grid: LrGrid, store) -> Part:
    """One grid: histories (losses, accuracies) ``[lr, decay, init_scale, seed, step|time]``,
    each run's outcomes (``grok.outcomes``, in steps) and its steps trained."""
    per_lr, compile_s, run_s = [], 0.0, 0.0
    for lr in grid.lrs:
        res, c, r, steps = train_lr(cfg, grid, lr, store.progress, store.checkpoints(grid.name))
        compile_s, run_s = compile_s + c, run_s + r
        h = {k: np.asarray(getattr(res.history, k)) for k in HISTORY}
        per_lr.append({**grok.outcomes(res.history, steps), **h, "diverged": np.asarray(res.diverged),
                       "steps_trained": np.full(len(res.diverged), int(steps[-1]))})
    flat = {k: np.concatenate([d[k] for d in per_lr]) for k in per_lr[0]}
    shape = (len(grid.lrs), len(grid.decays), len(grid.init_scales), cfg.seeds)
    arrays = {k: np.asarray(v).reshape(shape + np.shape(v)[1:]) for k, v in flat.items()}
    hist_dim, hist_values = cfg.history_index(grid)
    dims = {k: grid_dims(grid) + (hist_dim,) * (v.ndim - len(shape)) for k, v in arrays.items()}
    coords = {"lr": grid.lrs, grid.decay_axis: grid.decays, "init_scale": grid.init_scales,
              "seed": range(cfg.seeds), hist_dim: hist_values}
    return Part(arrays, dims, coords, info={"train_seconds": run_s}, n_runs=int(np.prod(shape)),
                compile_seconds=compile_s)


def run(cfg: GrokLrConfig, store) -> None:
    """A part per grid, named by the grid."""
    for grid in cfg.grids:
        store.part(grid.name, lambda g=grid: grid_part(cfg, g, store))


def flat(part: Part, grid: LrGrid, seeds: int) -> dict:
    """A grid's per-run arrays and settings, flattened in ``runs_of``'s order."""
    n = len(grid_dims(grid))
    return {**runs_of(grid, seeds), **{k: np.asarray(v).reshape((-1,) + np.shape(v)[n:])
                                       for k, v in part.arrays.items()}}


# ---------------------------------------------------------------- analysis


def _median(x) -> float | None:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else None


def _first_steps(acc: np.ndarray, steps: np.ndarray, level: float) -> np.ndarray:
    """``grok.first_step`` with per-run ``steps`` ``[runs, records]``."""
    reached = np.asarray(acc) >= level
    first = np.take_along_axis(np.asarray(steps, np.float64), np.argmax(reached, axis=-1)[:, None], axis=-1)[:, 0]
    return np.where(reached.any(axis=-1), first, np.nan)


def run_steps(a: dict, history: np.ndarray, lr_steps: float | None) -> np.ndarray:
    """Each run's history steps ``[runs, records]`` (``history`` is steps, or lr x step
    ``time`` for an ``lr_steps`` grid)."""
    if lr_steps is None:
        return np.broadcast_to(history, a["test_accuracy"].shape)
    return np.rint(history[None, :] / a["lr"][:, None])


def cells(a: dict, history: np.ndarray | None = None, lr_steps: float | None = None) -> list[dict]:
    """Per setting (seeds pooled) of a grid's flat arrays ``a`` (``flat``): how many
    memorised and generalised, median steps (and lr x step), first steps at each test
    accuracy in ``LEVELS``, median final and best accuracies and final losses, the median
    largest train - test accuracy gap, and outcomes. ``history``: the part's history
    coordinate (steps, or lr x step with ``lr_steps``)."""
    keys = np.stack([a[k] for k in ("lr", "weight_decay", "init_scale")], axis=-1)
    history = np.asarray(history) if history is not None else None
    out = []
    for setting in np.unique(keys, axis=0):
        sel = np.all(keys == setting, axis=-1)
        mem, gen = a["memorise_step"][sel], a["generalise_step"][sel]
        lr = float(setting[0])
        cell = {"lr": lr, "weight_decay": float(setting[1]), "step_decay": float(setting[0] * setting[1]),
                "init_scale": float(setting[2]), "seeds": int(sel.sum()),
                "steps": int(np.max(a["steps_trained"][sel])) if "steps_trained" in a else None,
                "memorised": int(np.isfinite(mem).sum()), "generalised": int(np.isfinite(gen).sum()),
                "median_memorise_step": _median(mem), "median_generalise_step": _median(gen),
                "median_generalise_time": None if _median(gen) is None else lr * _median(gen),
                "median_plateau_steps": float(np.median(a["plateau_steps"][sel])),
                "outcomes": grok.outcome_counts(a["outcome"][sel])}
        if "test_accuracy" in a:
            tr, te = a["train_accuracy"][sel], a["test_accuracy"][sel]
            if history is not None:
                steps = run_steps({k: a[k][sel] for k in ("lr", "test_accuracy")}, history, lr_steps)
                cell["median_first_test_step"] = {str(lv): _median(_first_steps(te, steps, lv)) for lv in LEVELS}
            cell.update(final_train_accuracy=_median(tr[:, -1]), final_test_accuracy=_median(te[:, -1]),
                        max_test_accuracy=_median(te.max(-1)),
                        median_max_gap=_median((tr - te).max(-1)),
                        final_train_loss=_median(a["train_loss"][sel][:, -1]),
                        final_test_loss=_median(a["test_loss"][sel][:, -1]))
        out.append(cell)
    return out


#: a cell whose median final train accuracy is below this "learned nothing": it ranks
#: after every cell that fit its training set at least this far
LEARNED = 0.5


def best_key(cell: dict) -> tuple:
    """Order of cells, best first: most seeds generalised, then the earliest median
    generalise step; where none generalised, a cell that learned (median final train
    accuracy >= ``LEARNED``) before one that did not (a uniform output sits at chance
    test accuracy, above a memorising run's), then the highest median final test accuracy."""
    gen = cell["median_generalise_step"]
    learned = (cell.get("final_train_accuracy") or 0.0) >= LEARNED
    return (-cell["generalised"], math.inf if gen is None else gen, not learned,
            -(cell.get("final_test_accuracy") or 0.0))


def best_cells(grid_cells: list[dict]) -> list[dict]:
    """The best lr (``best_key``) at each (per-step decay or coefficient, init scale) of a
    grid, as ``{"decay": ..., "init_scale": ..., "best": cell}`` (decay: the grid's fixed
    quantity, per-step for a ``step_decays`` grid)."""
    groups: dict = {}
    for c in grid_cells:
        groups.setdefault((c["_decay"], c["init_scale"]), []).append(c)
    return [{"decay": d, "init_scale": s, "best": _public(min(cs, key=best_key))} for (d, s), cs in groups.items()]


def _public(cell: dict) -> dict:
    return {k: v for k, v in cell.items() if not k.startswith("_")}


def _grid_cells(a: dict, grid: LrGrid, history) -> list[dict]:
    out = cells(a, history, grid.lr_steps)
    for c in out:
        c["_decay"] = round(c["step_decay"], 12) if grid.step_decays is not None else c["weight_decay"]
    return out


def median_curves(a: dict, sel: np.ndarray, history: np.ndarray) -> dict:
    """Median over the selected runs of each history at ``CURVE_POINTS`` points."""
    idx = np.unique(np.linspace(0, len(history) - 1, CURVE_POINTS).round().astype(int))
    return {"at": [float(x) for x in np.asarray(history)[idx]],
            **{k: [finite_or_none(v) for v in np.median(a[k][sel][:, idx], axis=0)] for k in HISTORY}}


def summarize(parts: dict, cfg: GrokLrConfig) -> dict:
    """Per grid its cells and best lr per decay; then per claim (``claims``) the numbers
    that answer it."""
    grids, flats, all_cells = {}, {}, {}
    for grid in cfg.grids:
        part = parts[grid.name]
        a = flat(part, grid, cfg.seeds)
        history = np.asarray(part.coords[cfg.history_index(grid)[0]])
        flats[grid.name] = (a, history)
        all_cells[grid.name] = _grid_cells(a, grid, history)
        grids[grid.name] = {"optimizer": grid.optimizer, "loss": grid.loss, "p": grid.p, "role": grid.role,
                            "decay_axis": grid.decay_axis, "lr_steps": grid.lr_steps,
                            "outcomes": grok.outcome_counts(a["outcome"]),
                            "cells": [_public(c) for c in all_cells[grid.name]],
                            "best": best_cells(all_cells[grid.name])}
    return {**grids, "claims": claims(cfg, grids, flats)}


def _best_row(grid: LrGrid, entry: dict) -> dict:
    b = entry["best"]
    return {"grid": grid.name, "optimizer": grid.optimizer, "loss": grid.loss, "p": grid.p,
            "decay_axis": grid.decay_axis, "decay": entry["decay"], "init_scale": entry["init_scale"],
            "best_lr": b["lr"], "generalised": b["generalised"], "seeds": b["seeds"],
            "median_generalise_step": b["median_generalise_step"], "median_memorise_step": b["median_memorise_step"],
            "final_train_accuracy": b.get("final_train_accuracy"), "final_test_accuracy": b.get("final_test_accuracy"),
            "steps": b["steps"]}


def claims(cfg: GrokLrConfig, grids: dict, flats: dict) -> dict:
    """The numbers that answer each claim of the discussion, from the grids' summaries."""
    by_role = lambda role: [g for g in cfg.grids if g.role == role]
    out = {}
    # Adam vs SGD: each optimiser's best lr at each decay (matched per-step decay, and none)
    rows = [_best_row(g, e) for g in by_role("optimizer") for e in grids[g.name]["best"]]
    out["optimizer"] = sorted(rows, key=lambda r: (r["p"], -r["decay"], r["optimizer"]))
    # and each optimiser at its best (lr, decay) over all of its grids' decays
    row_key = lambda r: best_key({"generalised": r["generalised"], "median_generalise_step":
                                  r["median_generalise_step"], "final_train_accuracy": r["final_train_accuracy"],
                                  "final_test_accuracy": r["final_test_accuracy"]})
    out["optimizer_best_overall"] = {opt: min((r for r in rows if r["optimizer"] == opt), key=row_key)
                                     for opt in sorted({r["optimizer"] for r in rows})}
    # optimum lr vs p: AdamW cross-entropy at init scale 1, grouped by the decay held fixed
    lr_p = [_best_row(g, e) for g in cfg.grids if g.role in ("optimizer", "lr_p") and g.optimizer == "adamw"
            and g.loss == "ce" for e in grids[g.name]["best"] if e["init_scale"] == 1.0]
    groups: dict = {}
    for r in lr_p:
        groups.setdefault(f"{r['decay_axis']}={r['decay']:g}", []).append(r)
    out["optimum_lr_vs_p"] = {k: sorted(v, key=lambda r: r["p"]) for k, v in groups.items()
                              if len({r["p"] for r in v}) > 1}
    # large lr: every cell at lr >= LARGE_LR, by its curves
    large = []
    for g in cfg.grids:
        for c in grids[g.name]["cells"]:
            if c["lr"] >= LARGE_LR:
                large.append({"grid": g.name, "optimizer": g.optimizer, "loss": g.loss, "p": g.p,
                              **{k: c.get(k) for k in ("lr", "weight_decay", "step_decay", "init_scale", "seeds",
                                                       "memorised", "generalised", "median_memorise_step",
                                                       "median_generalise_step", "median_max_gap",
                                                       "final_train_accuracy", "final_test_accuracy",
                                                       "max_test_accuracy", "outcomes")}})
    out["large_lr"] = large
    # small lr with proportionally more steps
    out["scaled"] = [{"grid": g.name, "optimizer": g.optimizer, "lr_steps": g.lr_steps,
                      "cells": [{k: c.get(k) for k in ("lr", "steps", "weight_decay", "step_decay", "generalised",
                                                      "seeds", "median_generalise_step", "median_generalise_time",
                                                      "median_memorise_step", "median_plateau_steps",
                                                      "final_train_accuracy", "final_test_accuracy", "outcomes")}
                                for c in grids[g.name]["cells"]]} for g in by_role("scaled")]
    # MSE vs CE: each loss's best lr at the same optimizer, p and decay, with its median curves
    loss_rows = []
    for g in by_role("loss"):
        partners = [h for h in cfg.grids if h.loss != g.loss and h.optimizer == g.optimizer and h.p == g.p and
                    h.decay_axis == g.decay_axis and h.lr_steps is None and h.role in ("optimizer", "lr_p")]
        for e in grids[g.name]["best"]:
            pair = []
            for h, entry in [(g, e)] + [(h, x) for h in partners for x in grids[h.name]["best"]
                                        if x["decay"] == e["decay"] and x["init_scale"] == e["init_scale"]]:
                a, history = flats[h.name]
                b = entry["best"]
                sel = (a["lr"] == b["lr"]) & np.isclose(a["weight_decay"], b["weight_decay"]) & \
                      (a["init_scale"] == b["init_scale"])
                pair.append({**_best_row(h, entry), "curves": median_curves(a, sel, history),
                             "median_first_test_step": b.get("median_first_test_step"),
                             "final_train_loss": b.get("final_train_loss"),
                             "final_test_loss": b.get("final_test_loss")})
            loss_rows.append(pair)
    out["loss"] = loss_rows
    # init scale without decay
    out["init_scale"] = [{"grid": g.name, "optimizer": g.optimizer,
                          "cells": [{k: c.get(k) for k in ("lr", "step_decay", "init_scale", "seeds", "memorised",
                                                          "generalised", "median_memorise_step",
                                                          "median_generalise_step", "final_train_accuracy",
                                                          "final_test_accuracy", "outcomes")}
                                    for c in grids[g.name]["cells"]]} for g in by_role("init_scale")]
    # one-line answers: best lr and seeds generalised, per optimiser and decay, per p
    short = lambda r: f"lr={r['best_lr']:g},gen={r['generalised']}/{r['seeds']}"
    out["headline"] = {
        "optimizer": {f"{r['optimizer']}@d={r['decay']:g}": short(r) for r in out["optimizer"]},
        "optimizer_best_overall": {opt: f"{short(r)},d={r['decay']:g}"
                                   for opt, r in out["optimizer_best_overall"].items()},
        "lr_vs_p": {f"p{r['p']}@{key.replace('step_decay=', 'd=')}": short(r)
                    for key, rows in out["optimum_lr_vs_p"].items() for r in rows}}
    return out


def draw(parts: dict, summary: dict, cfg: GrokLrConfig, out) -> None:
    """``grokking-lr``'s figures (``lr_figures``)."""
    from jaxmem.studies.grokking import lr_figures

    by_grid = {}
    for g in cfg.grids:
        part = parts[g.name]
        by_grid[g.name] = (flat(part, g, cfg.seeds), np.asarray(part.coords[cfg.history_index(g)[0]]))
    lr_figures.draw_all(by_grid, summary, cfg, out)
