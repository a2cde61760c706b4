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
