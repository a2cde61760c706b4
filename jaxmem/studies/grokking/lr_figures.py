"""Figures of ``grokking-lr`` (docs/sources.md §3), drawn from each grid's saved per-run
arrays: curves per optimiser at matched per-step decay, the optimum lr against p, MSE vs
cross-entropy curves, large-lr curves, small lr with proportionally more steps, init scale,
and every run's steps to memorise and generalise against the lr."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxmem.plotting import plt
from jaxmem.plotting import save as _save
from jaxmem.studies.grokking import grok

COLORS = plt.cm.tab10.colors


def _select(a: dict, lr: float, weight_decay: float, init_scale: float) -> np.ndarray:
    return (a["lr"] == lr) & np.isclose(a["weight_decay"], weight_decay) & (a["init_scale"] == init_scale)


def _runs(ax_acc, ax_loss, x, a: dict, sel: np.ndarray, color, label: str, loss_norm: bool = False) -> None:
    """Each selected run: test accuracy (solid) and train accuracy (dotted); test loss
    (solid) and train loss (dotted), divided by the first record's with ``loss_norm``."""
    for i, r in enumerate(np.flatnonzero(sel)):
        tag = label if i == 0 else None
        ax_acc.plot(x, a["test_accuracy"][r], "-", color=color, lw=1.3, label=tag)
        ax_acc.plot(x, a["train_accuracy"][r], ":", color=color, lw=1.0)
        if ax_loss is not None:
            scale = (lambda v: v / v[0]) if loss_norm else (lambda v: v)
            ax_loss.plot(x, scale(a["test_loss"][r]), "-", color=color, lw=1.3, label=tag)
            ax_loss.plot(x, scale(a["train_loss"][r]), ":", color=color, lw=1.0)


def _acc_axes(ax, xlabel="step", title=""):
    ax.set(xlabel=xlabel, ylabel="accuracy (solid test, dotted train)", ylim=(-0.02, 1.02), title=title)
    ax.axhline(grok.ACCURACY_THRESHOLD, color="k", lw=0.5, ls=":")


def _fmt(x: float) -> str:
    return f"{x:g}"


def optimizers(by_grid: dict, summary: dict, cfg, out: Path) -> None:
    """Per decay (rows: matched per-step decays, then none) each optimiser's best-lr runs."""
    rows = summary["claims"]["optimizer"]
    decays = sorted({r["decay"] for r in rows}, reverse=True)
    if not decays:
        return
    fig, axes = plt.subplots(len(decays), 2, figsize=(12, 3.8 * len(decays)), squeeze=False)
    for (ax_acc, ax_loss), d in zip(axes, decays):
        for color, r in zip(COLORS, [r for r in rows if r["decay"] == d]):
            a, history = by_grid[r["grid"]]
            b = next(e["best"] for e in summary[r["grid"]]["best"] if e["decay"] == d and
                     e["init_scale"] == r["init_scale"])
            label = f"{r['optimizer']} best lr {_fmt(b['lr'])} (wd {_fmt(b['weight_decay'])}): " \
                    f"{b['generalised']}/{b['seeds']} generalised"
            _runs(ax_acc, ax_loss, history, a, _select(a, b["lr"], b["weight_decay"], b["init_scale"]), color, label)
        what = f"per-step decay lr x wd = {_fmt(d)}" if d else "no weight decay"
        _acc_axes(ax_acc, title=f"p = {rows[0]['p']}, {what}")
        ax_loss.set(yscale="log", xlabel="step", ylabel="loss (solid test, dotted train)", title=f"loss, {what}")
        ax_acc.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, out / "lr_optimizers.png")


def lr_vs_p(by_grid: dict, summary: dict, cfg, out: Path) -> None:
    """Left: median generalise step against lr per p (AdamW, cross-entropy, the decay of
    each group); right: the best lr against p."""
    groups = summary["claims"]["optimum_lr_vs_p"]
    if not groups:
        return
    fig, (ax, ax_best) = plt.subplots(1, 2, figsize=(12, 4.2))
    for gi, (key, rows) in enumerate(groups.items()):
        style = ("-", "--", ":")[gi % 3]
        for color, r in zip(COLORS, rows):
            cells = [c for c in summary[r["grid"]]["cells"] if c["init_scale"] == 1.0]
            lrs = np.array([c["lr"] for c in cells])
            gen = np.array([np.nan if c["median_generalise_step"] is None else c["median_generalise_step"]
                            for c in cells])
            ax.plot(lrs, gen, style, marker="o", color=color, label=f"p = {r['p']} ({key})")
            never = ~np.isfinite(gen)
            steps = np.array([c["steps"] for c in cells])
            ax.scatter(lrs[never], steps[never], marker="x", color=color)
        ax_best.plot([r["p"] for r in rows], [r["best_lr"] for r in rows], style, marker="o", label=key)
        for r in rows:
            ax_best.annotate(f"{r['generalised']}/{r['seeds']}", (r["p"], r["best_lr"]), fontsize=7,
                             textcoords="offset points", xytext=(4, 4))
    ax.set(xscale="log", yscale="log", xlabel="learning rate", ylabel="median step to test accuracy >= 0.99",
           title="AdamW: steps to generalise (x: no seed generalised)")
    ax_best.set(yscale="log", xlabel="p", ylabel="best lr (most seeds, then fastest)",
                title="best lr against p (label: seeds generalised)")
    for a_ in (ax, ax_best):
        a_.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, out / "lr_vs_p.png")


def losses(by_grid: dict, summary: dict, cfg, out: Path) -> None:
    """MSE vs cross-entropy at each loss's best lr: accuracy and loss (/ its first value)."""
    pairs = summary["claims"]["loss"]
    if not pairs:
        return
    fig, axes = plt.subplots(len(pairs), 2, figsize=(12, 3.8 * len(pairs)), squeeze=False)
    for (ax_acc, ax_loss), pair in zip(axes, pairs):
        for color, r in zip(COLORS, pair):
            a, history = by_grid[r["grid"]]
            b = next(e["best"] for e in summary[r["grid"]]["best"] if e["decay"] == r["decay"] and
                     e["init_scale"] == r["init_scale"])
            _runs(ax_acc, ax_loss, history, a, _select(a, b["lr"], b["weight_decay"], b["init_scale"]), color,
                  f"{r['loss']} lr {_fmt(b['lr'])}: {b['generalised']}/{b['seeds']} generalised", loss_norm=True)
        _acc_axes(ax_acc, title=f"MSE vs cross-entropy, {pair[0]['optimizer']}, p = {pair[0]['p']}, "
                                f"{pair[0]['decay_axis']} {_fmt(pair[0]['decay'])}")
        ax_loss.set(yscale="log", xlabel="step", ylabel="loss / its first record (solid test, dotted train)",
                    title="loss, each in its own units, relative to step 1 record")
        ax_acc.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, out / "lr_loss.png")


def large(by_grid: dict, summary: dict, cfg, out: Path) -> None:
    """A panel per grid with lrs >= ``lr.LARGE_LR``: every such run's curves."""
    from jaxmem.studies.grokking.lr import LARGE_LR

    grids = [g for g in cfg.grids if max(g.lrs) >= LARGE_LR]
    if not grids:
        return
    cols = min(4, len(grids))
    rows = -(-len(grids) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax, g in zip(axes.ravel(), grids):
        a, history = by_grid[g.name]
        settings = sorted({(l, w, s) for l, w, s in zip(a["lr"], a["weight_decay"], a["init_scale"]) if l >= LARGE_LR})
        for color, (l, w, s) in zip(COLORS, settings):
            label = f"lr {_fmt(l)}, lr x wd {_fmt(l * w)}" + (f", init x{_fmt(s)}" if len(g.init_scales) > 1 else "")
            _runs(ax, None, history, a, _select(a, l, w, s), color, label)
        _acc_axes(ax, "lr x step" if g.lr_steps else "step", f"{g.name}: {g.optimizer}, {g.loss}, p = {g.p}")
        ax.legend(fontsize=6)
    for ax in axes.ravel()[len(grids):]:
        ax.axis("off")
    fig.suptitle(f"lr >= {LARGE_LR:g}: does test accuracy rise with train accuracy?")
    fig.tight_layout()
    _save(fig, out / "lr_large.png")


def scaled(by_grid: dict, summary: dict, cfg, out: Path) -> None:
    """Grids with lr x steps fixed: accuracy against lr x step."""
    grids = [g for g in cfg.grids if g.lr_steps is not None]
    if not grids:
        return
    fig, axes = plt.subplots(1, len(grids), figsize=(6 * len(grids), 4.2), squeeze=False)
    for ax, g in zip(axes[0], grids):
        a, history = by_grid[g.name]
        for color, lr in zip(COLORS, g.lrs):
            for w in g.coefficients(lr):
                sel = (a["lr"] == lr) & np.isclose(a["weight_decay"], w) & (a["init_scale"] == g.init_scales[0])
                _runs(ax, None, history, a, sel, color,
                      f"lr {_fmt(lr)}, {int(round(g.lr_steps / lr)):,} steps, wd {_fmt(w)}")
        _acc_axes(ax, "lr x step", f"{g.name}: lr x steps = {_fmt(g.lr_steps)} ({g.optimizer}, p = {g.p})")
        ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, out / "lr_scaled.png")


def init_scales(by_grid: dict, summary: dict, cfg, out: Path) -> None:
    """Grids over init scale: every run's curves, a colour per scale."""
    grids = [g for g in cfg.grids if len(g.init_scales) > 1]
    if not grids:
        return
    fig, axes = plt.subplots(len(grids), 2, figsize=(12, 3.8 * len(grids)), squeeze=False)
    for (ax_acc, ax_loss), g in zip(axes, grids):
        a, history = by_grid[g.name]
        lr, d = g.lrs[-1], g.decays[0]
        w = g.coefficients(lr)[0]
        for color, s in zip(COLORS, g.init_scales):
            _runs(ax_acc, ax_loss, history, a, _select(a, lr, w, s), color, f"init scale {_fmt(s)}")
        _acc_axes(ax_acc, title=f"{g.name}: {g.optimizer} lr {_fmt(lr)}, {g.decay_axis} {_fmt(d)}")
        ax_loss.set(yscale="log", xlabel="step", ylabel="loss (solid test, dotted train)", title="loss")
        ax_acc.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, out / "lr_init.png")


def phase(by_grid: dict, summary: dict, cfg, out: Path) -> None:
    """A panel per grid: each run's step to generalise (green) and memorise (grey)
    against the lr (or init scale); crosses at the top: not generalised in its steps."""
    grids = cfg.grids
    cols = min(4, len(grids))
    rows = -(-len(grids) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.9 * cols, 3.5 * rows), squeeze=False)
    for ax, g in zip(axes.ravel(), grids):
        a, _ = by_grid[g.name]
        x = a["init_scale"] if len(g.init_scales) > 1 else a["lr"]
        jitter = np.exp(0.08 * (a["seed"] - a["seed"].mean()))
        for key, color, label in (("memorise_step", "0.6", "memorised"), ("generalise_step", "tab:green",
                                                                          "generalised")):
            ok = np.isfinite(a[key])
            ax.scatter((x * jitter)[ok], a[key][ok], s=14, color=color, label=label)
        never = ~np.isfinite(a["generalise_step"])
        ax.scatter((x * jitter)[never], a["steps_trained"][never], marker="x", color="tab:red",
                   label="not generalised (at its last step)")
        ax.set(xscale="log", yscale="log", title=f"{g.name}: {g.optimizer}, {g.loss}, p = {g.p}",
               xlabel="initial weight scale" if len(g.init_scales) > 1 else "learning rate",
               ylabel="step (train / test accuracy >= 0.99)")
    axes[0, 0].legend(fontsize=6)
    for ax in axes.ravel()[len(grids):]:
        ax.axis("off")
    fig.tight_layout()
    _save(fig, out / "lr_phase.png")


def draw_all(by_grid: dict, summary: dict, cfg, out) -> None:
    """Every figure. ``by_grid``: grid name -> (flat per-run arrays, history coordinate)."""
    out = Path(out)
    results = summary.get("results", summary)
    for fn in (phase, optimizers, lr_vs_p, losses, large, scaled, init_scales):
        fn(by_grid, results, cfg, out)
