"""Figures of SMDD (Henighan et al. 2023), drawn from the saved per-run arrays."""
from __future__ import annotations

import matplotlib
import numpy as np

from jaxmem.plotting import DATA_COLOR, FEATURE_COLOR, plt
from jaxmem.plotting import save as _save

_rng = np.random.default_rng(0)


def _subsample(values: np.ndarray, most: int) -> np.ndarray:
    """At most ``most`` values, always keeping the largest."""
    values = values[np.isfinite(values)]
    if values.size <= most:
        return values
    keep = _rng.choice(values.size, most - 1, replace=False)
    return np.append(values[keep], values.max())


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
    """Fraction of seeds whose repeated point is stored, over (T, R); the top axis in T / n."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    im = ax.imshow(stored_TxR.T, origin="lower", aspect="auto", cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(T)), [str(t) for t in T], rotation=45)
    ax.set_yticks(range(len(Rs)), [str(r) for r in Rs])
    for i in range(len(T)):
        for j in range(len(Rs)):
            ax.text(i, j, f"{stored_TxR[i, j]:.2g}", ha="center", va="center", fontsize=7,
                    color="white" if stored_TxR[i, j] > 0.5 else "black")
    top = ax.secondary_xaxis("top")
    top.set_xticks(range(len(T)), [f"{t / n_features:.2g}" for t in T], fontsize=7)
    top.set_xlabel(f"T / n (n = {n_features})")
    ax.set(xlabel="training set size T", ylabel="repeats R of one datapoint",
           title="Is the repeated datapoint stored? (fraction of seeds)")
    fig.colorbar(im, ax=ax, label="stored fraction")
    _save(fig, path)


def hidden_norms(T, hidden, path):
    """Norms ``||h_t||`` of the training examples' hidden vectors ``h_t = W x_t`` vs T:
    mean over each seed's examples (dots) and over seeds (line), the 10-90% band over
    every seed's examples, and the largest (dashed). ``hidden [len(T), seeds, T_max, m]``."""
    norms = [np.linalg.norm(np.asarray(hidden[i][:, :t], float), axis=-1) for i, t in enumerate(T)]  # [seeds, t]
    fig, ax = plt.subplots(figsize=(7, 4))
    per_seed = np.array([n.mean(-1) for n in norms])
    ax.fill_between(T, [np.quantile(n, 0.1) for n in norms], [np.quantile(n, 0.9) for n in norms],
                    color=DATA_COLOR, alpha=0.15, label="10-90% of the examples (all seeds)")
    ax.plot(T, per_seed.mean(-1), "o-", ms=4, color=DATA_COLOR, label="mean ||h|| (mean over seeds)")
    for s in range(per_seed.shape[1]):
        ax.scatter(T, per_seed[:, s], s=8, alpha=0.4, color=DATA_COLOR)
    ax.plot(T, [n.max(-1).mean() for n in norms], "--", color=DATA_COLOR, lw=1, label="largest ||h|| (mean over seeds)")
    ax.set(xscale="log", yscale="log", xlabel="training set size T", ylabel="||h|| = ||W x|| of a training example",
           title="Hidden-vector norms of the training examples vs T")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def norms_vs_jermyn(T, W_norm, b_norm, T_range, W_trend, path):
    """``||W||_F`` and ``||b||`` vs T (mean line, seed dots), the T range of Jermyn's
    weight-norm comparison (T = 100-1,000 at n = 10,000, moved to the same T / n) shaded
    and the measured trend of ``||W||_F`` over it in the legend."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, values, color in (("||W||_F", W_norm, FEATURE_COLOR), ("||b||", b_norm, "tab:green")):
        ax.plot(T, np.nanmean(values, axis=1), "o-", ms=4, color=color, label=label)
        for s in range(values.shape[1]):
            ax.scatter(T, values[:, s], s=8, alpha=0.4, color=color)
    lo, hi = T_range
    what = ("" if W_trend is None else
            f": ||W||_F {W_trend['label']}, x{W_trend['last_over_first']:.2f} first to last")
    ax.axvspan(lo, hi, color="gray", alpha=0.15,
               label=f"T = {lo:g}-{hi:g}, Jermyn's 100-1,000 at the same T/n{what}")
    ax.set(xscale="log", yscale="log", xlabel="training set size T", ylabel="norm",
           title="Weight and bias norms vs T, against Jermyn's replication comment")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


def feature_dim_after(T, feature_dim, generalising_T, infinite_fdim_max, path):
    """The largest feature dimensionality and the mean of the 5 largest (the pentagon's)
    vs T (mean line, seed dots), the generalising T marked and the infinite-data line's
    largest (dashed). ``feature_dim [len(T), seeds, n]``, ``infinite_fdim_max [seeds]``."""
    fdim = np.asarray(feature_dim, float)
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, values, color in (("largest", fdim.max(-1), FEATURE_COLOR),
                                 ("mean of the 5 largest", np.sort(fdim, -1)[..., -5:].mean(-1), "tab:purple")):
        ax.plot(T, np.nanmean(values, axis=1), "o-", ms=4, color=color, label=f"{label} feature dimensionality")
        for s in range(values.shape[1]):
            ax.scatter(T, values[:, s], s=8, alpha=0.4, color=color)
    if generalising_T is not None:
        ax.axvline(generalising_T, color="gray", ls=":", lw=1, label=f"generalising T = {generalising_T}")
    if infinite_fdim_max is not None:
        ax.axhline(float(np.nanmean(infinite_fdim_max)), color="C3", ls="--", lw=1,
                   label="largest, infinite data (mean over seeds)")
    ax.axhline(0.4, color="k", ls=":", lw=0.8, label="2/5 (regular pentagon alone)")
    ax.set(xscale="log", xlabel="training set size T", ylabel="feature dimensionality",
           title="Feature dimensionality after the generalising jump (Jermyn: the peak falls)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


def dstar_levels(T, quantiles: dict, flat_q10: float, train_loss, memorised_loss: float, path):
    """Top: each seed's 10%, 50% and 90% quantile of D* in units of m / T against T (the
    flatness threshold dotted). Bottom: the runs' train loss (log) with the memorising
    threshold; the T where every seed memorises shaded in both. ``quantiles[k] [len(T),
    seeds]``, ``train_loss [len(T), seeds]`` or None."""
    fig, (ax_q, ax_l) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True)
    styles = {"q90_over_m_over_T": ("90% quantile", ":"), "median_over_m_over_T": ("median", "-"),
              "q10_over_m_over_T": ("10% quantile", "--")}
    seeds = next(iter(quantiles.values())).shape[1]
    colors = plt.cm.tab10(np.arange(seeds))
    for key, (label, ls) in styles.items():
        for s in range(seeds):
            ax_q.plot(T, quantiles[key][:, s], ls=ls, marker="o", ms=3, color=colors[s],
                      label=f"{label}, seed {s}")
    ax_q.axhline(1.0, color="k", lw=0.8, label="m / T (a regular T-gon)")
    ax_q.axhline(flat_q10, color="gray", ls=":", lw=1, label=f"flat: 10% quantile >= {flat_q10:g} m / T")
    ax_q.set(yscale="log", ylabel="D* / (m / T)", title="D* of the training examples: levels and spread vs T")
    if train_loss is not None:
        memorised = np.all(np.asarray(train_loss) < memorised_loss, axis=-1)
        for s in range(seeds):
            ax_l.plot(T, np.maximum(train_loss[:, s], 1e-12), "o-", ms=3, color=colors[s], label=f"seed {s}")
        ax_l.axhline(memorised_loss, color="gray", ls=":", lw=1, label="memorising threshold")
        for ax in (ax_q, ax_l):
            for i in np.nonzero(memorised)[0]:
                lo = T[i - 1] if i > 0 else T[i] / 1.2
                hi = T[i + 1] if i + 1 < len(T) else T[i] * 1.2
                ax.axvspan(np.sqrt(lo * T[i]), np.sqrt(hi * T[i]), color="gold", alpha=0.2, lw=0,
                           label="every seed memorises" if (ax is ax_l and i == np.nonzero(memorised)[0][0]) else None)
        ax_l.set(yscale="log", ylabel="train loss of the run")
        ax_l.legend(fontsize=7)
    ax_l.set(xscale="log", xlabel="training set size T")
    ax_q.legend(fontsize=6, ncol=2)
    for ax in (ax_q, ax_l):
        ax.grid(alpha=0.3)
    _save(fig, path)


def feature_dim_by_m(T, fdim_max_by_m: dict, spread_by_m: dict, path):
    """One panel per hidden size m: each seed's largest feature dimensionality against T
    (``[len(T), seeds]``), the mean spread between seeds in the panel's title."""
    ms = list(fdim_max_by_m)
    cols = min(4, len(ms))
    rows = -(-len(ms) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False, sharex=True)
    for ax, m in zip(axes.ravel(), ms):
        y = np.asarray(fdim_max_by_m[m])
        for s in range(y.shape[1]):
            ax.plot(T, y[:, s], "o-", ms=2.5, lw=1, alpha=0.8, label=f"seed {s}")
        ax.set(xscale="log", title=f"m = {m}: seed spread {spread_by_m[m]:.3f}")
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(ms):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("training set size T")
    for ax in axes[:, 0]:
        ax.set_ylabel("max feature dim.")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Largest feature dimensionality vs T per seed, one panel per hidden size m "
                 "(spread: mean over T of largest minus smallest seed)", fontsize=10)
    fig.tight_layout()
    _save(fig, path)
