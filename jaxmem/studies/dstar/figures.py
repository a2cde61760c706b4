"""Figures of ``dstar-mnist`` (Hobbhahn, "More findings on maximal data dimensionality"),
drawn from each saved part's arrays and coordinates alone (``jaxmem plot DIR`` redraws them).

D* curves are sorted from the highest D* (left, "memorised") to the lowest (right),
on a log scale as in the seed; points with D* = 0 (a hidden vector of zeros) are
left off the log axis.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.ticker
import numpy as np

from jaxmem.plotting import plt
from jaxmem.plotting import save as _save
from jaxmem.store import flatten

N_BINS = 10
WRONG_COLOR = "tab:red"


def _curve(ax, dstar_N, label=None, stretch=False, **kw):
    """Sorted D* (descending) against rank, or rank / N with ``stretch``."""
    d = np.sort(np.asarray(dstar_N))[::-1]
    x = np.arange(1, d.size + 1)
    if stretch:
        x = x / d.size
    keep = d > 0
    return ax.plot(x[keep], d[keep], label=label, **kw)[0]


def _curve_axes(ax, n=None, stretch=False, title=""):
    ax.set_yscale("log")
    ax.set_xlabel("training point, sorted by D* (fraction of the set)" if stretch
                  else f"training point, sorted by D* (of {n})" if n else "training point, sorted by D*")
    ax.set_ylabel("D* (log scale)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both", lw=0.4)


def spearman_heatmap(ax, rho, labels, title):
    rho = np.asarray(rho, float)
    im = ax.imshow(rho, vmin=min(0.0, np.nanmin(rho)), vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    if len(labels) <= 12:
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, f"{rho[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if rho[i, j] > 0.6 else "white")
    ax.set_title(title, fontsize=10)
    plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="Spearman rho")


def curves_and_spearman(curves, labels, rho, title, path, legend_title="", stretch=False, ns=None,
                        reference=None):
    """Left: sorted D* curves, one per model; right: Spearman matrix of the points' D*.

    ``ns`` cuts each curve to its real points (padded runs); ``reference`` is an
    extra ``(label, curve)`` drawn dashed and left out of the matrix.
    """
    fig, (ax_c, ax_s) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1.25, 1]})
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(curves)))
    for i, (c, lab) in enumerate(zip(curves, labels, strict=True)):
        _curve(ax_c, c[: ns[i]] if ns is not None else c, lab, stretch, color=colors[i], lw=1.3)
    if reference is not None:
        _curve(ax_c, reference[1], reference[0], stretch, color="black", ls="--", lw=1.2)
    _curve_axes(ax_c, None if stretch else len(curves[0]), stretch, "D* of the training points, sorted")
    ax_c.legend(title=legend_title, fontsize=8, title_fontsize=8)
    spearman_heatmap(ax_s, rho, [str(lab).split(" (")[0] for lab in labels],
                     "Spearman rank correlation of the same points' D*")
    fig.suptitle(title)
    _save(fig, path)


def _acc(a) -> str:
    return f"train acc {100 * float(a):.1f}%"


def decile_fraction(dstar_N, wrong_N, n_bins=N_BINS):
    order = np.argsort(-np.asarray(dstar_N), kind="stable")
    return np.array([np.asarray(wrong_N)[b].mean() for b in np.array_split(order, n_bins)])


def _curve_with_errors(ax, dstar_N, wrong_N, title):
    """Sorted D* curve with the misclassified points marked on it, and the error
    fraction per decile of D* as bars on a second axis."""
    order = np.argsort(-np.asarray(dstar_N), kind="stable")
    d, w = np.asarray(dstar_N)[order], np.asarray(wrong_N, bool)[order]
    x = np.arange(1, d.size + 1)
    keep = d > 0
    frac = decile_fraction(dstar_N, wrong_N)
    edges = np.array([b[0] for b in np.array_split(np.arange(d.size), N_BINS)] + [d.size]) + 0.5
    ax_b = ax.twinx()
    ax_b.bar(edges[:-1], frac, width=np.diff(edges), align="edge", color=WRONG_COLOR, alpha=0.15,
             edgecolor=WRONG_COLOR, label="error fraction per D* decile (right axis)")
    ax_b.set_ylabel("fraction misclassified in the decile", color=WRONG_COLOR, fontsize=8)
    ax_b.set_ylim(0, max(frac.max() * 1.3, 1e-3))
    ax.set_zorder(ax_b.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.plot(x[keep], d[keep], color="tab:blue", lw=1.3, label="D*, sorted")
    ax.scatter(x[w & keep], d[w & keep], s=10, color=WRONG_COLOR, zorder=3, label=f"misclassified ({w.sum()})")
    _curve_axes(ax, d.size, title=title)
    lines = ax.get_legend_handles_labels()
    bars = ax_b.get_legend_handles_labels()
    ax.legend(lines[0] + bars[0], lines[1] + bars[1], fontsize=7, loc="lower left")


def inputs(arrays, out: Path):
    """(a, b): raw vs normalised; (c): classes along the curve; misclassified digits."""
    names = ("raw inputs", "L2-normalised inputs")
    d, wrong, labels = arrays["dstar"], arrays["wrong"], arrays["labels"]
    fig, axes = plt.subplots(1, 2, figsize=(15, 4.8), gridspec_kw={"wspace": 0.4})
    for r, ax in enumerate(axes):
        _curve_with_errors(ax, d[r], wrong[r], f"{names[r]}: {_acc(arrays['train_accuracy'][r])}, "
                                              f"test acc {100 * float(arrays['test_accuracy'][r]):.1f}%")
    fig.suptitle(f"MLP (512 hidden) on {d.shape[1]} MNIST images: D* curve and where the misclassified "
                 "training points fall")
    _save(fig, out / "inputs_curves.png")

    fig, axes = plt.subplots(1, 2, figsize=(14, 4.6))
    for r, ax in enumerate(axes):
        order = np.argsort(-d[r], kind="stable")
        share = np.zeros((10, N_BINS))
        for k, b in enumerate(np.array_split(order, N_BINS)):
            share[:, k] = np.bincount(labels[b], minlength=10)
        share /= share.sum(1, keepdims=True)
        im = ax.imshow(share, cmap="magma", vmin=0, vmax=max(0.3, share.max()), aspect="auto")
        ax.set(xticks=range(N_BINS), xticklabels=[f"{k + 1}" for k in range(N_BINS)], yticks=range(10),
               xlabel="decile of D* (1 = highest D*, left of the curve)", ylabel="digit class",
               title=f"{names[r]}: share of each class per D* decile (uniform = 0.1)")
        plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the class's points")
    fig.suptitle("Classes along the D* curve")
    _save(fig, out / "inputs_classes.png")

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for r, ax in enumerate(axes):
        ax.scatter(arrays["input_norm"], d[r], s=3, alpha=0.3)
        rho = _spearman_1d(arrays["input_norm"], d[r])
        ax.set(yscale="log", xlabel="L2 norm of the raw image", ylabel="D*",
               title=f"{names[r]}: D* vs image norm (Spearman {rho:.2f})")
        ax.grid(alpha=0.3)
    fig.suptitle("Do 'fat' digits (large norm) get high D*? (Olah normalised inputs for this reason)")
    _save(fig, out / "dstar_vs_input_norm.png")

    misclassified_digits(arrays["images"], d[1], wrong[1], out / "misclassified_digits.png",
                         "Misclassified training points (normalised inputs), by decreasing D*")


def _spearman_1d(a, b) -> float:
    """Spearman rho of two 1-D arrays (NumPy; ties ranked by position, fine for a title)."""
    ra, rb = (np.argsort(np.argsort(v, kind="stable")).astype(float) for v in (a, b))
    return float(np.corrcoef(ra, rb)[0, 1])


def misclassified_digits(images, dstar_N, wrong_N, path, title, most=40):
    idx = np.flatnonzero(wrong_N)
    idx = idx[np.argsort(-dstar_N[idx], kind="stable")][:most]
    cols = 10
    rows = max(1, -(-idx.size // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.45), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k < idx.size:
            ax.imshow(images[idx[k]], cmap="gray_r")
            ax.set_title(f"D*={dstar_N[idx[k]]:.1e}", fontsize=6.5)
    fig.suptitle(f"{title} ({min(idx.size, most)} of {int(np.sum(wrong_N))})", fontsize=10)
    _save(fig, path)


def _ecdf(ax, dstar_N, label, relative=False, **kw):
    """Fraction of points with D* <= x against x, log-log: the low-D* tail is the
    lower left (``relative``: x is D* / mean D*)."""
    d = np.sort(np.asarray(dstar_N, float))
    if relative:
        d = d / d.mean()
    frac = np.arange(1, d.size + 1) / d.size
    keep = d > 0
    ax.plot(d[keep], frac[keep], label=label, **kw)


def tail_figure(curves, labels, title, path, legend_title=""):
    """The low-D* tail of each curve: empirical CDF of D* (left) and of D* / mean D*
    (right; the mean is rank / N, so curves of different hidden sizes line up)."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(curves)))
    for rel, ax in zip((False, True), axes, strict=True):
        for i, (c, lab) in enumerate(zip(curves, labels, strict=True)):
            _ecdf(ax, c, lab, rel, color=colors[i], lw=1.3)
        ax.set(xscale="log", yscale="log", ylim=(min(1e-4, 0.5 / len(curves[0])), 1),
               xlabel="D* / mean D*" if rel else "D*", ylabel="fraction of points with D* at most x",
               title="relative to the curve's mean (rank / N)" if rel else "absolute D*")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # crowded on a short log axis
        ax.grid(alpha=0.3, which="both", lw=0.4)
        ax.legend(title=legend_title, fontsize=8, title_fontsize=8)
    fig.suptitle(title)
    _save(fig, path)


def hidden_sizes(arrays, out: Path, rho):
    labels = [f"{m} ({_acc(a)})" for m, a in zip(arrays["n_hidden"], arrays["train_accuracy"], strict=True)]
    curves_and_spearman(arrays["dstar"], labels, rho, "D* across hidden sizes (MLP, normalised inputs)",
                        out / "hidden_sizes.png", "hidden neurons")
    tail_figure(arrays["dstar"], labels, "Low-D* tail across hidden sizes (lower left = the right-hand tail "
                "of the sorted curve)", out / "hidden_sizes_tail.png", "hidden neurons")


def seeds(arrays, out: Path, rho):
    labels = [f"{s} ({_acc(a)})" for s, a in zip(arrays["seed"], arrays["train_accuracy"], strict=True)]
    curves_and_spearman(arrays["dstar"], labels, rho, "D* across random seeds (same data, 512 hidden)",
                        out / "seeds.png", "seed")
    tail_figure(arrays["dstar"], labels, "Low-D* tail across random seeds (lower left = the right-hand tail "
                "of the sorted curve)", out / "seeds_tail.png", "seed")


def weight_decay(arrays, out: Path, rho):
    labels = [f"{w:g} ({_acc(a)})" for w, a in zip(arrays["weight_decay"], arrays["train_accuracy"], strict=True)]
    curves_and_spearman(arrays["dstar"], labels, rho, "D* across weight decay (AdamW, same seed and data)",
                        out / "weight_decay.png", "weight decay")


def dataset_sizes(arrays, out: Path, rho):
    """Curves stretched to one length, raw and divided by their mean (shape only),
    and the Spearman matrix on the points every set holds."""
    sizes = [int(n) for n in arrays["n_train"]]
    labels = [f"{n} ({_acc(a)})" for n, a in zip(sizes, arrays["train_accuracy"], strict=True)]
    fig, (ax_c, ax_n, ax_s) = plt.subplots(1, 3, figsize=(19, 5), gridspec_kw={"width_ratios": [1.1, 1.1, 1]})
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(sizes)))
    for i, n in enumerate(sizes):
        d = arrays["dstar"][i, :n]
        _curve(ax_c, d, labels[i], True, color=colors[i], lw=1.3)
        _curve(ax_n, d / d.mean(), labels[i], True, color=colors[i], lw=1.3)
    _curve_axes(ax_c, stretch=True, title="D*, sorted (curves stretched to one length)")
    _curve_axes(ax_n, stretch=True, title="D* / mean D* (shape only; flatter = more shared)")
    ax_n.set_ylabel("D* / mean D* (log scale)")
    for ax in (ax_c, ax_n):
        ax.legend(title="training points", fontsize=8, title_fontsize=8)
    spearman_heatmap(ax_s, rho, [str(n) for n in sizes], f"Spearman of D* on the {sizes[0]} points all sets share")
    fig.suptitle("D* across dataset sizes (nested subsets, same number of epochs)")
    _save(fig, out / "dataset_sizes.png")


def training(arrays, out: Path, rho_epochs, rho_batches):
    per_epoch = int(arrays["updates_per_epoch"])
    steps, acc = arrays["step"], arrays["train_accuracy"]
    for key, rho, name, what in (("epoch_index", rho_epochs, "training_epochs.png", "epoch"),
                                 ("batch_index", rho_batches, "training_first_batches.png", "minibatch")):
        idx = arrays[key]
        unit = [s // per_epoch if what == "epoch" else s for s in steps[idx]]
        labels = [f"{u} ({_acc(acc[i])})" for u, i in zip(unit, idx, strict=True)]
        title = ("D* during training, at epoch checkpoints (0 = initialisation)" if what == "epoch" else
                 f"D* after each of the first {len(idx) - 1} minibatches ({per_epoch} per epoch; 0 = initialisation)")
        curves_and_spearman(arrays["dstar"][idx], labels, rho, title, out / name,
                            "epochs" if what == "epoch" else "minibatches seen")


def error_rates(arrays, out: Path):
    d, wrong, updates, acc = arrays["dstar"], arrays["wrong"], arrays["horizon"], arrays["train_accuracy"]
    cols = min(3, len(updates))
    rows = -(-len(updates) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4.2 * rows), squeeze=False,
                             gridspec_kw={"wspace": 0.45, "hspace": 0.35})
    for r, ax in enumerate(axes.ravel()):
        if r >= len(updates):
            ax.axis("off")
            continue
        _curve_with_errors(ax, d[r], wrong[r], f"trained {updates[r]} updates: train error {100 * (1 - acc[r]):.1f}%")
    fig.suptitle("Models trained from scratch to different error rates: misclassified points along the D* curve")
    _save(fig, out / "error_rates.png")


AE_TITLES = {"linear": "linear hidden layer, h = W x", "relu": "ReLU hidden layer, h = ReLU(W x)"}


def autoencoder(arrays, out: Path, rho):
    """One panel of sorted curves per hidden-layer variant, side by side, the
    classifier's curve dashed in each; the Spearman matrix of all of them."""
    d, sizes, variants = arrays["dstar"], arrays["n_hidden"], [str(v) for v in arrays["variant"]]
    fig, axes = plt.subplots(1, len(variants) + 1, figsize=(6.2 * (len(variants) + 1), 5),
                             gridspec_kw={"width_ratios": [1.2] * len(variants) + [1]})
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(sizes)))
    for v, ax in enumerate(axes[:-1]):
        for k, m in enumerate(sizes):
            live = f", {int(arrays['live'][v, k])} live" if "live" in arrays else ""
            _curve(ax, d[v, k], f"{m} (loss {arrays['train_loss'][v, k]:.3f}{live})", color=colors[k], lw=1.3)
        if "classifier_dstar" in arrays:
            _curve(ax, arrays["classifier_dstar"], "classifier, 512 hidden", color="black", ls="--", lw=1.2)
        _curve_axes(ax, d.shape[-1], title=AE_TITLES.get(variants[v], variants[v]))
        ax.legend(title="hidden size", fontsize=8, title_fontsize=8)
    labels = [f"{'lin' if v == 'linear' else v} {m}" for v in variants for m in sizes]
    spearman_heatmap(axes[-1], rho, labels, "Spearman rank correlation of the same points' D*")
    fig.suptitle("D* of the ReLU-output autoencoder ReLU(W^T h + b) on MNIST")
    _save(fig, out / "autoencoder.png")


def target_error(arrays, out: Path):
    """Per seed, the model closest to the seed's error rate: its curve with the
    misclassified points marked; last panel, every selected model's errors by place
    along the curve, against an even spread; and its misclassified digits."""
    d, wrong, acc = arrays["dstar"], arrays["wrong"], arrays["train_accuracy"]
    seed, epochs, chosen = arrays["seed"], arrays["epochs"], [int(r) for r in arrays["selected"]]
    n = d.shape[1]
    cols = min(3, len(chosen) + 1)
    rows = -(-(len(chosen) + 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4.3 * rows), squeeze=False,
                             gridspec_kw={"wspace": 0.45, "hspace": 0.4})
    flat = axes.ravel()
    positions = []
    for ax, r in zip(flat, chosen, strict=False):
        _curve_with_errors(ax, d[r], wrong[r], f"seed {seed[r]}, {epochs[r]} epochs: {int(wrong[r].sum())} "
                                               f"errors of {n} ({100 * (1 - acc[r]):.2f}%)")
        order = np.argsort(-d[r], kind="stable")
        pos = np.empty(n)
        pos[order] = np.arange(n) / max(n - 1, 1)
        positions.append(pos[wrong[r]])
    ax = flat[len(chosen)]
    for i, (pos, r) in enumerate(zip(positions, chosen, strict=True)):
        ax.scatter(pos, np.full(pos.size, i), s=25, color=WRONG_COLOR)
    ax.set(xlim=(0, 1), ylim=(-0.7, len(chosen) - 0.3), yticks=range(len(chosen)),
           yticklabels=[f"seed {seed[r]}" for r in chosen],
           xlabel="place along the sorted curve (0 = highest D*, 1 = lowest)",
           title=f"errors of the selected models (target {float(arrays['target_errors']):.1f} of {n})")
    ax.axvline(0.5, color="gray", lw=0.8, ls="--")
    ax.grid(alpha=0.3)
    for extra in flat[len(chosen) + 1:]:
        extra.axis("off")
    fig.suptitle("MLP at the seed's training error rate (21 of 50,000): misclassified points along the D* curve")
    _save(fig, out / "target_error.png")

    r = chosen[0]
    rows_wrong = np.flatnonzero(wrong[r])
    where = np.searchsorted(arrays["error_rows"], rows_wrong)
    misclassified_digits(arrays["error_images"][where], d[r][rows_wrong], np.ones(rows_wrong.size, bool),
                         out / "target_error_digits.png",
                         f"Misclassified training points, seed {seed[r]} ({epochs[r]} epochs), by decreasing D*")


def draw(name: str, part, out) -> None:
    """Every figure of one ``dstar-mnist`` part (a ``jaxmem.store.Part``) from its
    arrays, and its coordinates under their dim names."""
    out = Path(out)
    arrays = {**part.coords, **flatten(part.arrays)}
    if name == "inputs":
        inputs(arrays, out)
    elif name == "hidden_sizes":
        hidden_sizes(arrays, out, arrays["spearman"])
    elif name == "seeds":
        seeds(arrays, out, arrays["spearman"])
    elif name == "weight_decay":
        weight_decay(arrays, out, arrays["spearman"])
    elif name == "dataset_sizes":
        dataset_sizes(arrays, out, arrays["spearman"])
    elif name == "training":
        training(arrays, out, arrays["spearman_epochs"], arrays["spearman_first_batches"])
    elif name == "error_rates":
        error_rates(arrays, out)
    elif name == "autoencoder":
        autoencoder(arrays, out, arrays["spearman"])
    elif name == "target_error":
        target_error(arrays, out)
    else:
        raise ValueError(f"no figures for part {name!r}")
