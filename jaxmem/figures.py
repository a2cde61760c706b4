"""Figures of SMDD (Henighan et al. 2023), drawn from the saved per-run arrays."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

FEATURE_COLOR, DATA_COLOR = "tab:blue", "tab:red"
_rng = np.random.default_rng(0)


def _subsample(values: np.ndarray, most: int) -> np.ndarray:
    """At most ``most`` values, always keeping the largest."""
    values = values[np.isfinite(values)]
    if values.size <= most:
        return values
    keep = _rng.choice(values.size, most - 1, replace=False)
    return np.append(values[keep], values.max())


def _save(fig, path) -> None:
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def dimensionality(T, feature_dim, data_dim, n_hidden, path, most=3000):
    """Feature (blue) and training-example (red) dimensionality vs T, with the m/T line.

    ``feature_dim [len(T), seeds, n]``, ``data_dim [len(T), seeds, T_max]`` (NaN past T).
    """
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, t in enumerate(T):
        for values, color, dx in ((feature_dim[i], FEATURE_COLOR, 0.97), (data_dim[i], DATA_COLOR, 1.03)):
            v = _subsample(np.ravel(values), most)
            ax.scatter(np.full(v.size, t * dx), v, s=4, alpha=0.25, color=color, linewidths=0)
    grid = np.geomspace(min(T), max(T), 200)
    ax.plot(grid, np.minimum(1.0, n_hidden / grid), "k--", lw=1, label="m / T")
    ax.scatter([], [], color=FEATURE_COLOR, label="features (columns of W)")
    ax.scatter([], [], color=DATA_COLOR, label="training examples (h = W x)")
    ax.set(xscale="log", xlabel="training set size T", ylabel="dimensionality",
           title="Dimensionality of features and training examples vs T", ylim=(-0.02, 1.05))
    ax.legend(loc="upper right", fontsize=8)
    _save(fig, path)


def vectors(T, W, hidden, path, shared_scale: bool, most=600):
    """Columns of W (blue) and hidden vectors (red) in 2-D, one panel per T.

    ``W [k, 2, n]`` and ``hidden [k, T_max, 2]`` (zero rows are skipped) for the sizes ``T``.
    """
    k = len(T)
    cols = min(4, k)
    rows = -(-k // cols)
    fig, axes = plt.subplots(rows, 2 * cols, figsize=(3.0 * cols * 2 / 1.3, 3.0 * rows), squeeze=False)
    lim_w = np.nanmax(np.abs(W)) * 1.05
    lim_h = np.nanmax(np.abs(hidden)) * 1.05
    for i in range(k):
        ax_w, ax_h = axes[i // cols, 2 * (i % cols)], axes[i // cols, 2 * (i % cols) + 1]
        for ax, vec, color, lim in ((ax_w, W[i].T, FEATURE_COLOR, lim_w), (ax_h, hidden[i], DATA_COLOR, lim_h)):
            vec = vec[np.all(np.isfinite(vec), axis=-1) & np.any(vec != 0, axis=-1)]
            norms = np.linalg.norm(vec, axis=-1)
            vec = vec[np.argsort(norms)[-most:]]  # the longest ones
            ax.plot(np.stack([np.zeros(len(vec)), vec[:, 0]]), np.stack([np.zeros(len(vec)), vec[:, 1]]),
                    color=color, lw=0.8, alpha=0.7)
            ax.scatter(vec[:, 0], vec[:, 1], s=4, color=color)
            lim = lim if shared_scale else max(1e-6, 1.1 * (norms.max() if norms.size else 1.0))
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=[], yticks=[])
        ax_w.set_title(f"T={T[i]}: features", fontsize=9)
        ax_h.set_title(f"T={T[i]}: hidden vectors", fontsize=9)
    for j in range(k, rows * cols):
        axes[j // cols, 2 * (j % cols)].axis("off")
        axes[j // cols, 2 * (j % cols) + 1].axis("off")
    scale = "one scale for all panels" if shared_scale else "each panel scaled to fit"
    fig.suptitle(f"Feature vectors (blue) and hidden vectors of training examples (red), {scale}")
    fig.tight_layout()
    _save(fig, path)


def curve_vs_T(T, curves: dict, ylabel: str, title: str, path, logy=False):
    """Mean over seeds (line) and each seed (dots) of ``curves[label] [len(T), seeds]``."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, values in curves.items():
        line, = ax.plot(T, np.nanmean(values, axis=1), "o-", label=label, ms=4)
        for s in range(values.shape[1]):
            ax.scatter(T, values[:, s], s=8, alpha=0.4, color=line.get_color())
    ax.set(xscale="log", xlabel="training set size T", ylabel=ylabel, title=title)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def loss_vs_T(T, test_loss, train_loss, zero_loss, path, infinite=None):
    """Test loss (linear, where the double-descent bump shows) above train loss (log).

    ``zero_loss`` is the loss of the all-zero output, ``E ||x||^2``, for reference;
    ``infinite [seeds]`` (optional) the test loss with fresh data every step.
    """
    fig, (ax_test, ax_train) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for ax, values, label in ((ax_test, test_loss, "test loss"), (ax_train, train_loss, "train loss")):
        line, = ax.plot(T, np.nanmean(values, axis=1), "o-", ms=4, label=f"{label} (mean over seeds)")
        for s in range(values.shape[1]):
            ax.scatter(T, values[:, s], s=8, alpha=0.4, color=line.get_color())
        ax.axhline(zero_loss, color="gray", ls=":", lw=1, label="all-zero output")
        if infinite is not None and ax is ax_test:
            ax.axhline(float(np.nanmean(infinite)), color="C3", ls="--", lw=1, label="infinite data (mean over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_ylabel(label)
    ax_test.set_title("Test loss vs T (double descent) and train loss")
    ax_train.set(xscale="log", yscale="log", xlabel="training set size T")
    _save(fig, path)


def dstar_curves(T, dstar, path):
    """Sorted D* of the training examples per T (seed 0), raw and stretched to unit length.

    ``dstar [len(T), seeds, T_max]`` with zeros past each T.
    """
    fig, (ax_raw, ax_unit) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = plt.cm.viridis(np.linspace(0, 1, len(T)))
    for i, t in enumerate(T):
        curve = np.sort(dstar[i, 0, :t])[::-1]
        ax_raw.plot(np.arange(1, t + 1), curve, color=colors[i], lw=1.2)
        ax_unit.plot(np.linspace(0, 1, t), curve, color=colors[i], lw=1.2)
    ax_raw.set(xscale="log", yscale="log", xlabel="example rank (sorted by D*)", ylabel="D*",
               title="D* of training examples, sorted")
    ax_unit.set(yscale="log", xlabel="example rank / T (stretched to unit length)", ylabel="D*",
                title="Same curves, stretched to the same length")
    norm = matplotlib.colors.LogNorm(vmin=min(T), vmax=max(T))
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=[ax_raw, ax_unit], label="dataset size T")
    _save(fig, path)


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


def opt_failure(saved: dict, cfg, by_n: list, out) -> None:
    """The figures of ``opt-failure`` (see ``jaxmem.experiments.opt_failure``)."""
    from jaxmem import construct, identity

    # 1. an example of each class, with its latent zones
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.5))
    for c, name in enumerate(identity.CLASSES):
        found = None
        for n in ([cfg.escape_n] + [m for m in cfg.ns if m != cfg.escape_n]):
            hits = np.argwhere(saved[f"n{n}_cls"] == c)
            if len(hits):
                idx = tuple(hits[0])
                found = (saved[f"n{n}_W"][idx], saved[f"n{n}_b"][idx],
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
        db = saved[f"n{n}_dead_bias"]
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
    rec = saved["escape_recovered"].astype(float)
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
    if "sym_profile_t" in saved:
        _symmetric_state(saved, cfg, out / "symmetric_state.png")

    # 6. the no-bias bound
    fig, ax = plt.subplots(figsize=(6, 4))
    for n in cfg.ns:
        c = saved[f"n{n}_no_bias_reconstructed"]
        ax.scatter(np.full(c.size, n) + np.random.default_rng(n).uniform(-0.15, 0.15, c.size), c, s=10, alpha=0.5)
    ax.axhline(4, color="k", ls="--", label="2m = 4")
    ax.set(xlabel="n", ylabel="one-hots reconstructed", title="Without bias: ReLU(W^T W x) reconstructs at most 2m")
    ax.legend(fontsize=8)
    _save(fig, out / "no_bias.png")


def _symmetric_state(saved: dict, cfg, path) -> None:
    """``opt-failure``'s ``symmetric_state_test``: 1-D loss profiles from the point, escape
    steps of gradient descent after random perturbations, and AdamW in float32 vs float64."""
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.2))
    t = saved["sym_profile_t"]
    ax = axes[0]
    for y, label in zip(saved["sym_profile_tilt"], ("W_dead = t (1, 0)", "W_dead = t (cos pi/7, sin pi/7)",
                                                    "W_dead = t (1, 0), b_dead - t", "W_dead = t (1, 0), b_dead + t")):
        ax.plot(t, y, label=label)
    ax.plot(t, saved["sym_profile_bias_only"], "k--", label="b_dead + t alone")
    ax.set(xlabel="t", ylabel="L - L(point)", title="The post's tilts, live columns held")
    ax.legend(fontsize=7)
    ax = axes[1]
    ts = saved["sym_profile_small_t"]
    ax.plot(ts, saved["sym_profile_ray"], label="descent ray (shift live circle, W_dead against it)")
    ax.plot(ts, saved["sym_profile_steepest"], label="steepest one-sided direction found")
    ax.plot(ts, saved["sym_profile_H_min"], label="Hessian's most negative eigenvector (kinks fire)")
    ax.axhline(0, color="gray", lw=0.8)
    low = saved["sym_profile_steepest"].min()
    ax.set(xlabel="t (unit directions)", ylabel="L - L(point)", ylim=(min(-2e-6, 1.5 * low), -3 * low),
           title="All parameters: second-order fall")
    ax.legend(fontsize=7)
    ax = axes[2]
    r, at = saved["sym_pert_radius"], saved["sym_pert_escape_step"]
    jitter = np.exp(np.random.default_rng(0).uniform(-0.15, 0.15, r.size))
    rest = saved["sym_pert_rest_step"]
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
    every = int(saved["sym_adam_log_every"])
    names = [str(x) for x in saved["sym_adam_optimizers"]]
    for key, ls in (("float32", "-"), ("float64", "--")):
        hist = saved[f"sym_adam_history_{key}"]
        for i, name in enumerate(names):
            ax.plot(every * (1 + np.arange(hist.shape[-1])), hist[i], ls, color=f"C{i}", label=f"{name}, {key}")
    ax.set(xlabel="step", ylabel="L - L(point)", title=f"Adam(W) from the point, lr {cfg.lrs[0]:g}")
    ax.legend(fontsize=7)
    fig.suptitle(f"Symmetric failure at n = {cfg.escape_n}: local minimum or saddle? (float64 unless marked)", y=1.02)
    fig.tight_layout()
    _save(fig, path)


def phase_diagram(T, ms, test_loss_TxM, zero_loss, out) -> None:
    """Test loss over (T, m) as a heatmap, and as one line per m against T."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    im = ax.imshow(test_loss_TxM.T, origin="lower", aspect="auto", cmap="magma_r")
    ax.set_xticks(range(len(T)), [str(t) for t in T], rotation=45)
    ax.set_yticks(range(len(ms)), [str(m) for m in ms])
    ax.set(xlabel="training set size T", ylabel="hidden size m",
           title="Test loss over dataset size and hidden size (mean over seeds)")
    for i in range(len(T)):
        for j in range(len(ms)):
            ax.text(i, j, f"{test_loss_TxM[i, j]:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if test_loss_TxM[i, j] > np.nanmedian(test_loss_TxM) else "black")
    fig.colorbar(im, ax=ax, label="test loss")
    _save(fig, out / "phase_heatmap.png")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.cm.viridis(np.linspace(0, 1, len(ms)))
    for j, m in enumerate(ms):
        ax.plot(T, test_loss_TxM[:, j], "o-", ms=3, color=colors[j], label=f"m = {m}")
    ax.axhline(zero_loss, color="gray", ls=":", lw=1, label="all-zero output")
    ax.set(xscale="log", xlabel="training set size T", ylabel="test loss",
           title="Test loss vs T, one line per hidden size m")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    _save(fig, out / "phase_lines.png")


def curves_by_variant(x_by_variant: dict, y_by_variant: dict, xlabel: str, ylabel: str, title: str, path,
                      logy: bool = False, vline: float | None = None, vline_label: str = ""):
    """One line (mean over seeds, dots per seed) per variant: ``y [len(x), seeds]``."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(y_by_variant)))
    for color, (label, y) in zip(colors, y_by_variant.items()):
        x = np.asarray(x_by_variant[label], float)
        ax.plot(x, np.nanmean(y, axis=1), "o-", ms=3, color=color, label=label)
        for s in range(y.shape[1]):
            ax.scatter(x, y[:, s], s=6, alpha=0.35, color=color)
    if vline is not None:
        ax.axvline(vline, color="gray", ls="--", lw=1, label=vline_label)
    ax.set(xscale="log", xlabel=xlabel, ylabel=ylabel, title=title)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


def repeat_map(T, Rs, stored_TxR, n_features, path):
    """Fraction of seeds whose repeated point is stored, over (T, R), with R = 0.4 T / n."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    im = ax.imshow(stored_TxR.T, origin="lower", aspect="auto", cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(T)), [str(t) for t in T], rotation=45)
    ax.set_yticks(range(len(Rs)), [str(r) for r in Rs])
    # the line R = 0.4 T / n, drawn in the heatmap's index coordinates
    t_grid = np.geomspace(min(T), max(T), 200)
    x_idx = np.interp(np.log(t_grid), np.log(T), np.arange(len(T)))
    y_idx = np.interp(0.4 * t_grid / n_features, Rs, np.arange(len(Rs)), left=np.nan, right=np.nan)
    ax.plot(x_idx, y_idx, "r--", lw=1.5, label="R = 0.4 T / n (Jermyn)")
    ax.set(xlabel="training set size T", ylabel="repeats R of one datapoint",
           title="Is the repeated datapoint stored? (fraction of seeds)")
    ax.legend(fontsize=8, loc="upper left")
    fig.colorbar(im, ax=ax, label="stored fraction")
    _save(fig, path)
