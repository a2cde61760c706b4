"""Figures of ``memorisation``: memorisation against D* per SMDD regime, where memorised
examples sit among the hidden vectors, and MNIST's scatter and image grids."""
from __future__ import annotations

import numpy as np

from matplotlib.ticker import NullFormatter

from jaxmem.plotting import plt
from jaxmem.studies.memorisation import memorisation as study


def _rho(x) -> str:
    return "n/a" if x is None else f"{x:+.2f}"


def smdd_scatter(part, p, path) -> None:
    """Per T: memorisation (± SE) against the full-data model's D* (top) and data
    dimensionality (middle), and against the mean D* of the example in the subset models
    that trained on it (bottom)."""
    n = len(p.T)
    fig, axes = plt.subplots(3, n, figsize=(3.6 * n, 9.4), squeeze=False)
    for i, regime in enumerate(p.regimes):
        e = study.smdd_estimates(part, i)
        for row, key, label in ((0, "dstar", "D* (full-data model)"),
                                (1, "data_dim", "data dimensionality (full-data model)"),
                                (2, "dstar_in", "D* in the subset models with it (mean)")):
            ax = axes[row, i]
            ax.errorbar(e[key], e["mem"], yerr=e["se"], fmt="o", ms=3, alpha=0.6, elinewidth=0.7, color="C0")
            ax.axhline(0, color="grey", lw=0.7)
            rho = study.spearman(e["mem"], e[key])
            ax.set_title(f"T = {e['T']} ({regime}), subsets of {int(np.floor(p.fraction * e['T'] + 0.5))}\n"
                         f"Spearman {_rho(rho)}", fontsize=9)
            ax.set_xlabel(label)
            if i == 0:
                ax.set_ylabel("memorisation: loss out - loss in")
    fig.suptitle(f"SMDD (n = {p.n_features}, S = {p.sparsity}, m = {p.n_hidden}, {p.steps} steps):\n"
                 f"counterfactual memorisation vs D*, K = {p.subsets} subset models, fraction {p.fraction}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=75)
    plt.close(fig)


def smdd_hidden(part, p, path) -> None:
    """Per T: the full-data model's hidden vectors ``W x_i`` (m = 2: the plane; else the
    first two neurons), coloured by memorisation."""
    n = len(p.T)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.6), squeeze=False)
    for i, regime in enumerate(p.regimes):
        e = study.smdd_estimates(part, i)
        h = part["full/hidden"][i][: e["T"]]
        ax = axes[0, i]
        for v in h:
            ax.plot([0, v[0]], [0, v[1]], color="lightgrey", lw=0.5, zorder=0)
        sc = ax.scatter(h[:, 0], h[:, 1], c=e["mem"], cmap="viridis", s=14, vmin=np.nanmin([0, *e["mem"]]),
                        vmax=max(np.nanmax(e["mem"]), 1e-6))
        fig.colorbar(sc, ax=ax, label="memorisation")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(f"T = {e['T']} ({regime})", fontsize=9)
        ax.set_xlabel("hidden 1")
        ax.set_ylabel("hidden 2")
    fig.suptitle("Hidden vectors of the full-data model, coloured by memorisation", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def mnist_scatter(part, path) -> None:
    """Memorisation against D* coloured by class (left); held-out accuracy against
    in-set accuracy, the full model's errors marked (right)."""
    e = study.mnist_estimates(part)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    ax = axes[0]
    sc = ax.scatter(e["dstar"], e["mem"], c=e["labels"], cmap="tab10", s=6, alpha=0.7, vmin=-0.5, vmax=9.5)
    if e["wrong"].any():
        ax.scatter(e["dstar"][e["wrong"]], e["mem"][e["wrong"]], facecolors="none", edgecolors="red", s=40,
                   label="misclassified by the full model")
        ax.legend(fontsize=8, loc="upper right")
    fig.colorbar(sc, ax=ax, label="class", ticks=range(10))
    ax.axhline(0, color="grey", lw=0.7)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("D* (full-data model)")
    ax.set_ylabel("memorisation (correct-class probability, in - out)")
    ax.set_title(f"MNIST: memorisation vs D*, Spearman {_rho(study.spearman(e['mem'], e['dstar']))}", fontsize=10)
    ax = axes[1]
    ax.scatter(e["dstar_in"], e["mem"], c=e["labels"], cmap="tab10", s=6, alpha=0.7, vmin=-0.5, vmax=9.5)
    ax.axhline(0, color="grey", lw=0.7)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("D* in the subset models with the image (mean)")
    ax.set_ylabel("memorisation")
    ax.set_title(f"vs the training models' own D*, Spearman {_rho(study.spearman(e['mem'], e['dstar_in']))}",
                 fontsize=10)
    ax = axes[2]
    ax.scatter(e["acc_out"], e["acc_in"], c=e["mem"], cmap="viridis", s=8, alpha=0.7)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.7, label="mem = 0")
    ax.set_xlabel("accuracy of models without the image")
    ax.set_ylabel("accuracy of models with the image")
    ax.set_title("Feldman-Zhang memorisation = vertical distance to the diagonal", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def mnist_grid(part, path, count: int = 16) -> None:
    """The ``count`` most and least memorised images, each with label, memorisation and D*."""
    e = study.mnist_estimates(part)
    mem = np.nan_to_num(e["mem"], nan=-np.inf)
    order = np.argsort(-mem, kind="stable")
    finite = order[np.isfinite(mem[order])]
    groups = (("most memorised", finite[:count]), ("least memorised", finite[::-1][:count]))
    cols = 8
    rows_per = -(-count // cols)
    fig, axes = plt.subplots(2 * rows_per, cols, figsize=(1.6 * cols, 2.0 * 2 * rows_per))
    for g, (title, idx) in enumerate(groups):
        for j in range(rows_per * cols):
            ax = axes[g * rows_per + j // cols, j % cols]
            ax.axis("off")
            if j >= len(idx):
                continue
            k = idx[j]
            ax.imshow(part["images"][k], cmap="gray_r")
            ax.set_title(f"y={e['labels'][k]} m={e['mem'][k]:.2f}\nD*={e['dstar'][k]:.3f}", fontsize=7)
        axes[g * rows_per, 0].text(-0.2, 1.45, title, transform=axes[g * rows_per, 0].transAxes, fontsize=10,
                                   fontweight="bold")
    fig.suptitle("MNIST images by memorisation (m: correct-class probability in - out; D*: full-data model)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
