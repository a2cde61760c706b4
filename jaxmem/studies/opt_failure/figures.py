"""Figures of ``opt-failure``: the toy autoencoder on the identity."""
from __future__ import annotations

import numpy as np

from jaxmem.studies.opt_failure import construct
from jaxmem.plotting import plt
from jaxmem.plotting import save as _save
from jaxmem.studies.opt_failure import analysis as identity


def latent_zones(ax, W, b, title, extent=None):
    """Columns of ``W [2, n]`` as arrows over the hidden plane, each point coloured by the
    output with the largest positive pre-activation ``W_i . h + b_i`` (white: none)."""
    n = W.shape[1]
    lim = extent or 1.3 * max(np.linalg.norm(W, axis=0).max(), 1e-3)
    g = np.linspace(-lim, lim, 301)
    hx, hy = np.meshgrid(g, g)
    pre = np.einsum("mi,mxy->ixy", W, np.stack([hx, hy])) + (0 if b is None else b[:, None, None])
    zone = np.where(pre.max(0) > 0, pre.argmax(0), -1).astype(float)
    cmap = plt.get_cmap("tab20", 20)
    ax.imshow(np.ma.masked_less(zone, 0), origin="lower", extent=(-lim, lim, -lim, lim), cmap=cmap,
              vmin=0, vmax=19, alpha=0.35, interpolation="nearest")
    for i in range(n):
        ax.annotate("", xy=W[:, i], xytext=(0, 0), arrowprops=dict(arrowstyle="->", color=cmap(i), lw=1.8))
        ax.text(*(W[:, i] * 1.08), str(i), fontsize=7, ha="center", va="center")
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=title)
    ax.tick_params(labelsize=7)


def opt_failure(parts: dict, cfg, by_n: list, out, adam=None) -> None:
    """The figures of ``opt-failure`` (see ``jaxmem.studies.opt_failure.opt_failure``)
    from its parts: ``n{n}`` per n, ``escape`` and ``symmetric``; with ``adam`` (the
    summary's ``adam_vs_adamw``) also ``adam_vs_adamw.png``."""
    if adam is not None:
        adam_vs_adamw(adam, out / "adam_vs_adamw.png")

    # 1. an example of each class, with its latent zones
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.5))
    for c, name in enumerate(identity.CLASSES):
        found = None
        for n in ([cfg.escape_n] + [m for m in cfg.ns if m != cfg.escape_n]):
            hits = np.argwhere(parts[f"n{n}"]["cls"] == c)
            if len(hits):
                idx = tuple(hits[0])
                found = (parts[f"n{n}"]["W"][idx], parts[f"n{n}"]["b"][idx],
                         f"{name.replace('_', ' ')} (trained, n={n}, "
                         f"{cfg.optimizers[idx[0]][0]}, {cfg.inits[idx[1]]}, lr {cfg.lrs[idx[2]]:g})")
                break
        if found is None and name == "symmetric_failure":
            p = construct.symmetric_failure(cfg.escape_n)
            found = (p["W"], p["b"], f"symmetric failure (constructed, n={cfg.escape_n}; none trained)")
        if found is None:
            axes[c].axis("off")
            axes[c].set_title(f"{name}: no run")
            continue
        latent_zones(axes[c], found[0], found[1], found[2])
        axes[c].title.set_fontsize(9)
    fig.suptitle("Columns of W and latent zones (which output fires where in the hidden plane)")
    _save(fig, out / "columns_by_class.png")

    # 2. failure rate vs n with 95% Wilson intervals: one panel per lr, one line per (init, optimiser)
    fig, axes = plt.subplots(1, len(cfg.lrs), figsize=(6 * len(cfg.lrs), 4), squeeze=False)
    for ax, lr in zip(axes[0], cfg.lrs):
        for io, (name, _) in enumerate(cfg.optimizers):
            for ii, init in enumerate(cfg.inits):
                rows = [r for r in by_n if r["optimizer"] == name and r["init"] == init and r["lr"] == lr]
                ns = np.array([r["n"] for r in rows]) + 0.08 * (ii - 1) + 0.04 * io
                fails = np.array([round(r["failure_rate"] * r["n_seeds"]) for r in rows])
                trials = np.array([r["n_seeds"] for r in rows])
                lo, hi = identity.wilson_interval(fails, trials)
                rate = fails / trials
                ax.errorbar(ns, rate, yerr=[np.maximum(rate - lo, 0), np.maximum(hi - rate, 0)], marker="os"[io % 2],
                            capsize=3, ls="-:"[io % 2], color=f"C{ii}", label=f"{init}, {name}")
        ax.set(xlabel="n (features)", ylabel="failure rate (not perfect)", ylim=(-0.02, 1.02),
               title=f"lr {lr:g}: {cfg.seeds} seeds each, 95% Wilson intervals")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Failure rate vs n, by init (xavier: N(0, 2/(2+n)); torch_linear: U(+-1/sqrt n); normal: N(0, 1))")
    _save(fig, out / "failure_rate.png")

    # 3. bias of dead columns vs 1/n
    fig, ax = plt.subplots(figsize=(7, 4))
    for n in cfg.ns:
        db = parts[f"n{n}"]["dead_bias"]
        db = db[np.isfinite(db)]
        ax.scatter(np.full(db.size, n) + np.random.default_rng(n).uniform(-0.15, 0.15, db.size), db,
                   s=8, alpha=0.5, color="tab:red")
    grid = np.linspace(min(cfg.ns), max(cfg.ns), 100)
    ax.plot(grid, 1 / grid, "k--", label="1/n (mean of the target)")
    ax.axhline(0, color="gray", lw=0.8)
    ax.set(xlabel="n", ylabel="bias of dead columns", title="Bias of dead columns of W vs 1/n (all runs)")
    ax.legend(fontsize=8)
    _save(fig, out / "dead_bias.png")

    # 4. escape map
    rec = parts["escape"]["recovered"].astype(float)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    im = ax.imshow(rec.T, origin="lower", cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(cfg.escape_bias)), [f"{v:+.2f}" for v in cfg.escape_bias], rotation=60, fontsize=7)
    ax.set_yticks(range(len(cfg.escape_weight)), [f"{v:g}" for v in cfg.escape_weight])
    ax.set(xlabel="offset added to b_dead (starts at 1/n)", ylabel="|W_dead| / |W_live|",
           title=f"Escape from the symmetric failure (n={cfg.escape_n}, {cfg.escape_steps} steps): "
                 "green = recovered", )
    ax.title.set_fontsize(9)
    fig.colorbar(im, ax=ax, ticks=[0, 1])
    _save(fig, out / "escape.png")

    # 5. the symmetric failure in float64: minimum or saddle
    if "symmetric" in parts:
        _symmetric_state(parts["symmetric"], cfg, out / "symmetric_state.png")

    # 6. the no-bias bound
    fig, ax = plt.subplots(figsize=(6, 4))
    for n in cfg.ns:
        c = parts[f"n{n}"]["no_bias"]["reconstructed"]
        ax.scatter(np.full(c.size, n) + np.random.default_rng(n).uniform(-0.15, 0.15, c.size), c, s=10, alpha=0.5)
    ax.axhline(4, color="k", ls="--", label="2m = 4")
    ax.set(xlabel="n", ylabel="one-hots reconstructed", title="Without bias: ReLU(W^T W x) reconstructs at most 2m")
    ax.legend(fontsize=8)
    _save(fig, out / "no_bias.png")


def _symmetric_state(part, cfg, path) -> None:
    """``opt-failure``'s ``symmetric_state_test`` (its part ``symmetric``): 1-D loss
    profiles from the point, escape steps of gradient descent after random
    perturbations, and AdamW in float32 vs float64."""
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.2))
    profile, t = part["profile"], part.coords["t"]
    ax = axes[0]
    for y, label in zip(profile["tilt"], part.coords["tilt"]):
        ax.plot(t, y, label=str(label))
    ax.plot(t, profile["bias_only"], "k--", label="b_dead + t alone")
    ax.set(xlabel="t", ylabel="L - L(point)", title="The post's tilts, live columns held")
    ax.legend(fontsize=7)
    ax = axes[1]
    ts = part.coords["t_small"]
    ax.plot(ts, profile["ray"], label="descent ray (shift live circle, W_dead against it)")
    ax.plot(ts, profile["steepest"], label="steepest one-sided direction found")
    ax.plot(ts, profile["H_min"], label="Hessian's most negative eigenvector (kinks fire)")
    ax.axhline(0, color="gray", lw=0.8)
    low = profile["steepest"].min()
    ax.set(xlabel="t (unit directions)", ylabel="L - L(point)", ylim=(min(-2e-6, 1.5 * low), -3 * low),
           title="All parameters: second-order fall")
    ax.legend(fontsize=7)
    ax = axes[2]
    pert = part["perturbation"]
    at, rest = pert["escape_step"].ravel(), pert["rest_step"].ravel()
    r = np.repeat(part.coords["radius"], pert["escape_step"].shape[1])
    jitter = np.exp(np.random.default_rng(0).uniform(-0.15, 0.15, r.size))
    ax.scatter((r * jitter)[at >= 0], at[at >= 0], s=6, alpha=0.4, label="escaped (loss < L - 1e-6)")
    if (rest >= 0).any():
        ax.scatter((r * jitter)[rest >= 0], rest[rest >= 0], s=16, marker="x", color="red",
                   label="returned (at rest at the loss of the point)")
    if ((at < 0) & (rest < 0)).any():
        left = (at < 0) & (rest < 0)
        ax.scatter((r * jitter)[left], np.full(left.sum(), cfg.sym_gd_steps), s=16, marker="^", color="k",
                   label="undecided at the last step")
    ax.set(xscale="log", xlabel="perturbation radius", ylabel="gradient-descent steps to escape / rest",
           title=f"GD (lr {cfg.sym_gd_lr:g}) after {r.size} perturbations")
    ax.legend(fontsize=7)
    ax = axes[3]
    names = [str(x) for x in part.coords["adam_optimizer"]]
    for hist, key, ls in zip(part["adam"]["history"], part.coords["dtype"], ("-", "--")):
        for i, name in enumerate(names):
            ax.plot(part.coords["adam_step"], hist[i], ls, color=f"C{i}", label=f"{name}, {key}")
    ax.set(xlabel="step", ylabel="L - L(point)", title=f"Adam(W) from the point, lr {cfg.lrs[0]:g}")
    ax.legend(fontsize=7)
    fig.suptitle(f"Symmetric failure at n = {cfg.escape_n}: local minimum or saddle? (float64 unless marked)", y=1.02)
    fig.tight_layout()
    _save(fig, path)


def adam_vs_adamw(adam: dict, path) -> None:
    """Failure rate vs n for AdamW and plain Adam from the same inits: one panel per init,
    one colour per lr, solid AdamW, dashed Adam, 95% Wilson intervals."""
    inits = list(dict.fromkeys(r["init"] for r in adam["rows"]))
    lrs = list(dict.fromkeys(r["lr"] for r in adam["rows"]))
    fig, axes = plt.subplots(1, len(inits), figsize=(5.2 * len(inits), 4.2), squeeze=False, sharey=True)
    for ax, init in zip(axes[0], inits):
        for il, lr in enumerate(lrs):
            r = next(r for r in adam["rows"] if r["init"] == init and r["lr"] == lr)
            for name, title, ls, mk, dx in (("adamw", "AdamW", "-", "o", -0.06), ("adam", "Adam", "--", "s", 0.06)):
                rate = np.array(r[f"{name}_rate"])
                lo, hi = (np.array(v) for v in r[f"{name}_wilson"])
                label = f"{title} (wd {adam['weight_decay'][name]:g}), lr {lr:g}"
                ax.errorbar(np.array(r["ns"]) + dx + 0.03 * il, rate,
                            yerr=[np.maximum(rate - lo, 0), np.maximum(hi - rate, 0)], ls=ls, marker=mk,
                            color=f"C{il}", capsize=2, ms=4, label=label)
        if 7 in r["ns"]:
            ax.axvline(7, color="gray", ls=":", lw=1)
        ax.set(xlabel="n (features; m = 2)", title=f"init {init}", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("failure rate (not perfect)")
    axes[0][-1].legend(fontsize=8, loc="upper left")
    t = adam["total"]
    fig.suptitle(f"AdamW vs plain Adam, same inits and seeds ({adam['seeds']} per cell, {adam['steps']:,} steps, "
                 f"constant lr): failed runs {t['adamw']} vs {t['adam']} of {t['runs_each']}; dotted: the post's n = 7",
                 fontsize=10)
    fig.tight_layout()
    _save(fig, path)

