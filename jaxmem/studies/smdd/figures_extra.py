"""Figures of the SMDD follow-ups: variants, model-wise double descent, repeated points."""
from __future__ import annotations

import numpy as np

from jaxmem.plotting import DATA_COLOR, FEATURE_COLOR, plt
from jaxmem.plotting import save as _save


def _mean_and_seeds(ax, x, y, color, label, ms=3, ls="-"):
    """Mean over seeds (line) and each seed (dots) of ``y [len(x), seeds]``."""
    ax.plot(x, np.nanmean(y, axis=1), "o", ls=ls, ms=ms, color=color, label=label)
    for s in range(y.shape[1]):
        ax.scatter(x, y[:, s], s=6, alpha=0.35, color=color)


def variant_curves(T, test_by_variant: dict, learned_by_variant: dict, zero_loss: float, path,
                   dashed=()) -> None:
    """Test loss (top) and learned features (bottom) vs T, one line per variant (those in
    ``dashed`` dashed, e.g. a control that should lie on another line); every value
    ``[len(T), seeds]``, losses in the same units."""
    fig, (ax_test, ax_learn) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True)
    colors = plt.cm.tab10(np.arange(len(test_by_variant)))
    for color, name in zip(colors, test_by_variant):
        ls = "--" if name in dashed else "-"
        _mean_and_seeds(ax_test, T, test_by_variant[name], color, name, ls=ls)
        _mean_and_seeds(ax_learn, T, learned_by_variant[name], color, name, ls=ls)
    ax_test.axhline(zero_loss, color="gray", ls=":", lw=1, label="all-zero output")
    ax_test.set(ylabel="test loss (summed over features)",
                title="Double descent with a hidden ReLU and with the loss rescaled by 1/n")
    ax_learn.set(xscale="log", xlabel="training set size T", ylabel="learned features (D > 0.1)")
    for ax in (ax_test, ax_learn):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, path)


def modelwise_curves(ms, test_by_T: dict, peak_m: dict, zero_loss: float, path) -> None:
    """Test loss vs hidden size m at fixed T (``test_by_T[T] [len(ms), seeds]``), the peak
    of each curve marked."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(test_by_T)))
    for color, (T, y) in zip(colors, test_by_T.items()):
        _mean_and_seeds(ax, ms, y, color, f"T = {T}")
        if peak_m.get(T) is not None:
            j = list(ms).index(peak_m[T])
            ax.scatter([ms[j]], [np.nanmean(y[j])], s=80, facecolors="none", edgecolors=color, lw=1.5)
    ax.axhline(zero_loss, color="gray", ls=":", lw=1, label="all-zero output")
    ax.set(xlabel="hidden size m", ylabel="test loss", xticks=list(ms),
           title="Model-wise double descent: test loss vs m at fixed T (circle: peak)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


def repeat_slots(panels: list, path) -> None:
    """Columns of W (blue; the repeated point's features black) and the repeated point's
    hidden vector ``W x0`` (red arrow, same scale), one panel per
    ``(title, W [2, n], support [n] bool, h0 [2])``."""
    cols = min(5, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.8 * cols, 2.8 * rows), squeeze=False)
    for ax, (title, W, support, h0) in zip(axes.ravel(), panels):
        for mask, color in ((~support, FEATURE_COLOR), (support, "black")):
            v = W[:, mask].T
            ax.plot(np.stack([np.zeros(len(v)), v[:, 0]]), np.stack([np.zeros(len(v)), v[:, 1]]),
                    color=color, lw=0.8, alpha=0.7)
        lim = 1.1 * max(np.abs(W).max(), np.abs(h0).max(), 1e-6)
        ax.annotate("", xy=h0, xytext=(0, 0), arrowprops={"arrowstyle": "->", "color": DATA_COLOR, "lw": 1.5})
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=[], yticks=[])
        ax.set_title(title, fontsize=8)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.suptitle("Features (blue), the repeated point's features (black), its hidden vector (red)")
    fig.tight_layout()
    _save(fig, path)
