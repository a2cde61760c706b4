"""Figures of the grokking experiments (docs/sources.md §3), drawn from the saved per-run arrays."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxmem.plotting import plt
from jaxmem.plotting import save as _save
from jaxmem.studies.grokking import fourier, grok

OUTCOME_COLORS = ("tab:green", "tab:blue", "tab:orange", "tab:gray", "black")


def _curves(ax_loss, ax_acc, steps, h: dict, color, label, style="-"):
    for i in range(h["train_loss"].shape[0]):
        tag = label if i == 0 else None
        ax_loss.plot(steps, h["train_loss"][i], style, color=color, alpha=0.35, lw=1)
        ax_loss.plot(steps, h["test_loss"][i], style, color=color, lw=1.2, label=tag)
        ax_acc.plot(steps, h["train_accuracy"][i], style, color=color, alpha=0.35, lw=1)
        ax_acc.plot(steps, h["test_accuracy"][i], style, color=color, lw=1.2, label=tag)


def learning_curves(steps, by_label: dict, title: str, path) -> None:
    """Loss (log) and accuracy over training; thin pale lines train, thick lines test."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.2))
    for (label, h), color in zip(by_label.items(), plt.cm.tab10.colors):
        _curves(ax_loss, ax_acc, steps, h, color, label)
    ax_loss.set(yscale="log", xlabel="step", ylabel="loss", title=f"{title}: loss (pale = train, dark = test)")
    ax_acc.set(xlabel="step", ylabel="accuracy", ylim=(-0.02, 1.02), title="accuracy (pale = train, dark = test)")
    ax_acc.axhline(grok.ACCURACY_THRESHOLD, color="k", lw=0.6, ls=":")
    for ax in (ax_loss, ax_acc):
        ax.legend(fontsize=8)
    _save(fig, path)


def _order_by_frequency(w_in_PxH) -> np.ndarray:
    freq = fourier.neuron_frequencies(w_in_PxH)
    coef = np.asarray(fourier.coefficients(np.asarray(w_in_PxH).T))  # [H, K, 2]
    phase = np.arctan2(coef[np.arange(len(freq["dominant"])), freq["dominant"] - 1, 1],
                       coef[np.arange(len(freq["dominant"])), freq["dominant"] - 1, 0])
    return np.lexsort((phase, freq["dominant"]))


def weight_heatmaps(steps, w_in_history, path, n_panels: int = 5) -> None:
    """``W_input^T`` (neurons x input number) at points over training, with the DFT
    amplitudes below; neurons ordered by their final frequency and phase."""
    order = _order_by_frequency(w_in_history[-1])
    picks = np.unique(np.round(np.geomspace(1, len(steps), n_panels)).astype(int) - 1)
    fig, axes = plt.subplots(2, len(picks), figsize=(3.2 * len(picks), 5.6), squeeze=False)
    for col, i in enumerate(picks):
        w = w_in_history[i][:, order].T
        lim = np.abs(w).max()
        axes[0, col].imshow(w, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        axes[0, col].set(title=f"step {steps[i]}", xlabel="input number", ylabel="neuron" if col == 0 else None)
        amp = np.asarray(fourier.frequency_norms(w))
        axes[1, col].imshow(amp, cmap="Greys", aspect="auto", extent=(0.5, amp.shape[1] + 0.5, amp.shape[0] - 0.5, -0.5))
        axes[1, col].set(xlabel="frequency", ylabel="neuron" if col == 0 else None)
    fig.suptitle("W_input over training (top) and its DFT amplitude per neuron (bottom)")
    fig.tight_layout()
    _save(fig, path)


def neuron_waves(w_in_PxH, path) -> None:
    """Each live neuron's input weights, a column per key frequency k: over the input
    number (top) and over the inputs reordered by ``k i mod p`` (bottom), where a neuron
    of frequency k is one smooth wave."""
    freq = fourier.neuron_frequencies(w_in_PxH)
    keys, p = freq["key_frequencies"], w_in_PxH.shape[0]
    cols = max(1, len(keys))
    fig, axes = plt.subplots(2, cols, figsize=(3.4 * cols, 5.4), squeeze=False, sharey=True)
    for col, k in enumerate(keys):
        order = np.argsort((k * np.arange(p)) % p)  # inputs i sorted by k i mod p
        for h in np.flatnonzero((freq["dominant"] == k) & freq["live"]):
            axes[0, col].plot(w_in_PxH[:, h], lw=0.8)
            axes[1, col].plot(w_in_PxH[order, h], lw=1)
        axes[0, col].set(title=f"frequency {k}", xlabel="input number i")
        axes[1, col].set(xlabel=f"inputs ordered by {k} i mod {p}")
    for row in axes:
        row[0].set_ylabel("input weight")
    fig.suptitle("Neurons grouped by dominant frequency (live neurons)")
    fig.tight_layout()
    _save(fig, path)


def stars(w_in_PxH, w_out_HxP, path) -> None:
    """DFT (cos, sin) coefficient of each neuron at its own frequency: input side (top)
    and output side (bottom), a panel per key frequency. Stars like the constructed
    solution mean evenly spread phases."""
    freq = fourier.neuron_frequencies(w_in_PxH)
    keys = freq["key_frequencies"]
    coef_in = np.asarray(fourier.coefficients(np.asarray(w_in_PxH).T))  # [H, K, 2]
    coef_out = np.asarray(fourier.coefficients(np.asarray(w_out_HxP)))  # [H, K, 2]
    fig, axes = plt.subplots(2, max(1, len(keys)), figsize=(3 * max(1, len(keys)), 6), squeeze=False)
    for col, k in enumerate(keys):
        members = np.flatnonzero((freq["dominant"] == k) & freq["live"])
        for row, coef, side in ((0, coef_in, "W_input"), (1, coef_out, "W_output")):
            ax = axes[row, col]
            for h in members:
                c, s = coef[h, k - 1]
                ax.plot([0, c], [0, s], "-o", ms=3, lw=1)
            ax.set_aspect("equal")
            ax.axhline(0, color="k", lw=0.4)
            ax.axvline(0, color="k", lw=0.4)
            ax.set(title=f"{side}, frequency {k}", xlabel="cos", ylabel="sin" if col == 0 else None)
    fig.tight_layout()
    _save(fig, path)


def frequency_logits(logits_GxP, groups, answer: int, a: int, b: int, path) -> None:
    """Each frequency group's contribution to the logits of one input pair."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for g, logits in zip(groups, logits_GxP):
        ax.plot(logits, lw=1.2, label=f"frequency {g}")
    ax.plot(logits_GxP.sum(0), "k", lw=1.6, label="all")
    ax.axvline(answer, color="k", ls=":", lw=1)
    ax.set(xlabel="answer c", ylabel="logit contribution", title=f"Logits by neuron frequency for {a} + {b} (answer {answer})")
    ax.legend(fontsize=8, ncol=2)
    _save(fig, path)


def mode_losses(steps, mode_loss_RxK, key_frequencies, path) -> None:
    """Cross-entropy of the logits restricted to each Fourier mode over training."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for k in range(mode_loss_RxK.shape[1]):
        is_key = (k + 1) in set(np.asarray(key_frequencies).tolist())
        ax.plot(steps, mode_loss_RxK[:, k], lw=1.6 if is_key else 0.6, color=None if is_key else "0.7",
                label=f"mode {k + 1}" if is_key else None)
    ax.set(xlabel="step", ylabel="loss of the mode alone (all pairs)",
           title="Per-Fourier-mode loss over training (grey: other modes)")
    ax.legend(fontsize=8)
    _save(fig, path)


def constructed(construction: dict, path) -> None:
    """Accuracy of the constructed solution over N, per p, ReLU vs x^2."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for (i, p), color in zip(enumerate(construction["p"]), plt.cm.tab10.colors):
        ax.plot(construction["n_neurons"], construction["relu_accuracy"][i], "-o", color=color, label=f"ReLU, p = {p}")
        ax.plot(construction["n_neurons"], construction["square_accuracy"][i], "--s", color=color, mfc="none",
                label=f"x², p = {p}")
    ax.set(xlabel="neurons N", ylabel="accuracy over all pairs", title="Constructed circular solution")
    ax.legend(fontsize=7, ncol=2)
    _save(fig, path)


def seed_curves(steps, h: dict, plateau_mask, title: str, path, n_max: int = 8) -> None:
    """Train and test accuracy of each seed in its own panel, the longest plateau (train
    accuracy >= 0.99, test < 0.5) shaded."""
    n = min(n_max, h["train_accuracy"].shape[0])
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False, sharex=True, sharey=True)
    for s, ax in enumerate(axes.ravel()):
        if s >= n:
            ax.axis("off")
            continue
        ax.plot(steps, h["train_accuracy"][s], color="tab:red", lw=1, label="train")
        ax.plot(steps, h["test_accuracy"][s], color="tab:blue", lw=1.2, label="test")
        first, length = grok.longest_run(plateau_mask[s])
        if length:
            ax.axvspan(steps[first] - steps[0], steps[first + length - 1], color="0.85", zorder=0, label="plateau")
        ax.set(title=f"seed {s}", ylim=(-0.02, 1.02))
        if s % cols == 0:
            ax.set_ylabel("accuracy")
        if s >= n - cols:
            ax.set_xlabel("step")
    axes[0, 0].legend(fontsize=7, loc="center right")
    fig.suptitle(f"{title}: train (red) and test (blue) accuracy per seed; grey: train >= 0.99 while test < 0.5")
    fig.tight_layout()
    _save(fig, path)


def modular_addition(parts: dict, cfg, construction: dict, out) -> None:
    """Every figure of ``modular-addition``: ``parts`` maps each variant to its part (the
    first one's holds the ``W_input`` and mode-loss snapshots)."""
    out = Path(out)
    hist = lambda v: {k: parts[v][k] for k in ("train_loss", "test_loss", "train_accuracy", "test_accuracy")}
    first = next(iter(parts.values()))
    steps = first.coords["step"]
    learning_curves(steps, {v: hist(v) for v in parts}, f"(a + b) mod {cfg.p}", out / "curves.png")
    for v in parts:
        h = hist(v)
        plateau = (h["train_accuracy"] >= grok.ACCURACY_THRESHOLD) & (h["test_accuracy"] < 0.5)
        seed_curves(steps, h, plateau, f"{v}, (a + b) mod {cfg.p}", out / f"curves_{v}.png")
    final_test = first["test_accuracy"][:, -1]
    s = int(np.argmax(final_test >= grok.ACCURACY_THRESHOLD)) if (final_test >= grok.ACCURACY_THRESHOLD).any() else 0
    w_in, w_out = (np.asarray(first[k][s], np.float32) for k in ("w_input", "w_output"))
    snapshot_steps = first.coords["snapshot_step"]
    weight_heatmaps(snapshot_steps, first["w_input_history"][s], out / "weights_over_training.png")
    neuron_waves(w_in, out / "neuron_waves.png")
    stars(w_in, w_out, out / "stars.png")
    freq = fourier.neuron_frequencies(w_in)
    keys = freq["key_frequencies"]
    a, b = 5 % cfg.p, 17 % cfg.p
    pre = w_in[a] + w_in[b]
    h = np.maximum(pre, 0) if cfg.activation == "relu" else pre ** 2
    group = np.where(freq["live"], freq["dominant"], 0)
    logits = np.asarray(fourier.group_logits(h[None], w_out, group, keys))[:, 0]
    frequency_logits(logits, keys, (a + b) % cfg.p, a, b, out / "frequency_logits.png")
    mode_losses(snapshot_steps, first["mode_loss"][s], keys, out / "mode_losses.png")
    constructed(construction, out / "constructed.png")


OUTCOME_SHORT = ("grok", "direct", "mem", "none", "nan")


def outcome_maps(counts_NxHxWxC, train_sizes, hidden_sizes, weight_decays, path) -> None:
    """A panel per weight decay: train size x hidden size, each cell coloured by its most
    common outcome (shade = its share) and labelled with the count of each outcome."""
    n_seeds = counts_NxHxWxC[0, 0, 0].sum()
    fig, axes = plt.subplots(1, len(weight_decays), figsize=(3.3 * len(weight_decays), 3.6), squeeze=False,
                             sharey=True)
    for w, ax in enumerate(axes[0]):
        counts = counts_NxHxWxC[:, :, w]  # [train, hidden, class]
        top = counts.argmax(-1)
        rgba = np.array([[plt.matplotlib.colors.to_rgba(OUTCOME_COLORS[top[i, j]], 0.25 + 0.75 * counts[i, j].max() / n_seeds)
                          for i in range(len(train_sizes))] for j in range(len(hidden_sizes))])
        ax.imshow(rgba, origin="lower", aspect="auto")
        for i in range(len(train_sizes)):
            for j in range(len(hidden_sizes)):
                label = "\n".join(f"{OUTCOME_SHORT[c]} {counts[i, j, c]}" for c in np.flatnonzero(counts[i, j]))
                ax.text(i, j, label, ha="center", va="center", fontsize=6)
        ax.set(xticks=range(len(train_sizes)), xticklabels=train_sizes, yticks=range(len(hidden_sizes)),
               yticklabels=hidden_sizes, xlabel="train size", title=f"weight decay {weight_decays[w]}")
    axes[0, 0].set_ylabel("hidden size")
    handles = [plt.matplotlib.patches.Patch(color=c, label=n) for c, n in zip(OUTCOME_COLORS, grok.OUTCOMES)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, bbox_to_anchor=(0.5, -0.08))
    fig.suptitle(f"Sparse parity outcomes (counts out of {n_seeds} seeds)")
    fig.tight_layout()
    _save(fig, path)


def outcome_examples(part, path, cfg) -> None:
    """Loss and accuracy curves of one run of each (loss-rule) outcome class present (the
    first in the grid's order), with the rule's loss threshold."""
    steps, code = part.coords["step"], part["loss_outcome"]
    present = [c for c in range(len(grok.OUTCOMES)) if np.any(code == c)]
    fig, axes = plt.subplots(2, len(present), figsize=(3.6 * len(present), 5.5), squeeze=False, sharex=True)
    for col, c in enumerate(present):
        at = tuple(np.argwhere(code == c)[0])  # [train, hidden, wd, seed]
        n, h, wd = cfg.train_sizes[at[0]], cfg.hidden_sizes[at[1]], np.float32(cfg.weight_decays[at[2]])
        axes[0, col].axhline(cfg.loss_threshold, color="k", lw=0.6, ls=":")
        axes[0, col].plot(steps, part["train_loss"][at], label="train")
        axes[0, col].plot(steps, part["test_loss"][at], label="test")
        axes[0, col].set(yscale="log", title=f"{grok.OUTCOMES[c]}\nn={n}, h={h}, wd={wd:g}")
        axes[1, col].plot(steps, part["train_accuracy"][at], label="train")
        axes[1, col].plot(steps, part["test_accuracy"][at], label="test")
        axes[1, col].set(ylim=(0.4, 1.02), xlabel="step")
    axes[0, 0].set_ylabel("loss")
    axes[1, 0].set_ylabel("accuracy")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def parity_grid(part, cfg, out) -> None:
    """Outcome maps by the article's loss rule and, as a second view, by accuracy, from
    the part's arrays on ``[train_size, hidden, weight_decay, seed]``."""
    out = Path(out)
    for key, name in (("loss_outcome", "outcome_maps.png"), ("outcome", "outcome_maps_accuracy.png")):
        counts = grok.count_classes(np.asarray(part[key]))
        outcome_maps(counts, cfg.train_sizes, cfg.hidden_sizes, cfg.weight_decays, out / name)
    outcome_examples(part, out / "outcome_examples.png", cfg)


def _circle_panel(ax, points_Nx2, order, title: str, side: str) -> None:
    """Neurons' (cos, sin) components as labelled dots, each joined to the next one in
    ``order`` (closed), on a circle of their mean norm."""
    r = float(np.linalg.norm(points_Nx2, axis=1).mean())
    t = np.linspace(0, 2 * np.pi, 200)
    ax.plot(r * np.cos(t), r * np.sin(t), color="0.8", lw=0.8, zorder=0)
    loop = np.append(order, order[0])
    ax.plot(points_Nx2[loop, 0], points_Nx2[loop, 1], "-", color="k", lw=1, zorder=1)
    ax.scatter(points_Nx2[:, 0], points_Nx2[:, 1], s=140, color="k", zorder=2)
    for j, (x, y) in enumerate(points_Nx2):
        ax.text(x, y, str(j), color="w", ha="center", va="center", fontsize=7, zorder=3)
    lim = 1.25 * max(r, float(np.abs(points_Nx2).max()))
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), title=title, xlabel=f"{side} cos component",
           ylabel=f"{side} sin component")
    ax.set_aspect("equal")
    ax.axhline(0, color="0.9", lw=0.5, zorder=0)
    ax.axvline(0, color="0.9", lw=0.5, zorder=0)


def circle_neurons(in_proj_Sx2xN, out_proj_SxNx2, runs: list, path, n_max: int = 8) -> None:
    """``modular-circle``'s trained projections, as the explorable draws them: per seed the
    in-projection (input side) and out-projection (output side) components of each neuron,
    adjacent neurons on the in-projection circle joined on both."""
    n = min(n_max, len(runs))
    cols = min(2, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, 2 * cols, figsize=(6.4 * cols, 3.3 * rows), squeeze=False)
    for ax in axes.ravel()[2 * n:]:
        ax.axis("off")
    for s in range(n):
        r = runs[s]
        row, col = divmod(s, cols)
        order = np.asarray(r["order"])
        _circle_panel(axes[row, 2 * col], np.asarray(in_proj_Sx2xN[s]).T, order,
                      f"seed {s}: W_in-proj (acc {r['all_pairs_accuracy']:.3f})", "input")
        _circle_panel(axes[row, 2 * col + 1], np.asarray(out_proj_SxNx2[s]), order,
                      f"W_out-proj: winding {r['winding']:.0f}, step ratio {r['mean_step_ratio']:.2f}", "output")
    fig.suptitle("Five neurons on a fixed circular embedding: neurons adjacent on the W_in-proj circle joined "
                 "(W_out-proj going round twice = rotating twice as fast)", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def circle_geometry_over_training(steps, spread_in_SxT, spread_out_SxT, ratio_SxT, test_acc_SxT, path) -> None:
    """``modular-circle`` over training, per seed: norm spread (std / mean over neurons) of
    both projections, the mean out/in angle-step ratio, and test accuracy."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for s, color in zip(range(spread_in_SxT.shape[0]), plt.cm.tab10.colors * 4):
        axes[0].plot(steps, spread_in_SxT[s], color=color, lw=1, label=f"seed {s}" if s < 10 else None)
        axes[0].plot(steps, spread_out_SxT[s], "--", color=color, lw=1)
        axes[1].plot(steps, ratio_SxT[s], color=color, lw=1)
        axes[2].plot(steps, test_acc_SxT[s], color=color, lw=1)
    axes[0].set(yscale="log", xlabel="step", ylabel="norm std / mean over neurons",
                title="neuron norm spread\n(solid: W_in-proj, dashed: W_out-proj)")
    axes[1].axhline(2.0, color="k", ls=":", lw=0.8)
    axes[1].set(xlabel="step", ylabel="mean out-step / in-gap", ylim=(-3.2, 3.2),
                title="W_out-proj's rotation rate / W_in-proj's\n(2: twice as fast)")
    axes[2].set(xlabel="step", ylabel="test accuracy", ylim=(-0.02, 1.02), title="test accuracy")
    axes[0].legend(fontsize=7, ncol=2)
    for ax in axes:
        ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:g}k")
    fig.tight_layout()
    _save(fig, path)


def modular_circle(part, results: dict, cfg, out) -> None:
    """Every figure of ``modular-circle``."""
    from jaxmem.studies.grokking import circle

    out = Path(out)
    steps = part.coords["step"]
    h = {k: part[k] for k in ("train_loss", "test_loss", "train_accuracy", "test_accuracy")}
    learning_curves(steps, {f"{cfg.n_hidden} neurons, fixed circle": h}, f"(a + b) mod {cfg.p}", out / "curves.png")
    circle_neurons(part["in_proj"][:, -1], part["out_proj"][:, -1], results["runs"], out / "circle_neurons.png")
    geo = [[circle.geometry(part["in_proj"][s, t], part["out_proj"][s, t]) for t in range(len(steps))]
           for s in range(part["in_proj"].shape[0])]
    pick = lambda k: np.array([[g[k] for g in row] for row in geo])
    circle_geometry_over_training(steps, pick("in_norm_spread"), pick("out_norm_spread"), pick("mean_step_ratio"),
                                  part["test_accuracy"], out / "geometry_over_training.png")


def peak_curves(steps, h: dict, title: str, path, n_max: int = 8) -> None:
    """Per seed: train and test accuracy (left axis) and losses (right, log), the peak
    test accuracy marked: a seed that generalises then memorises rises then falls."""
    n = min(n_max, h["train_accuracy"].shape[0])
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 3.0 * rows), squeeze=False, sharex=True)
    for s, ax in enumerate(axes.ravel()):
        if s >= n:
            ax.axis("off")
            continue
        ax.plot(steps, h["train_accuracy"][s], color="tab:red", lw=1, label="train acc")
        ax.plot(steps, h["test_accuracy"][s], color="tab:blue", lw=1.2, label="test acc")
        i = int(np.argmax(h["test_accuracy"][s]))
        ax.plot(steps[i], h["test_accuracy"][s, i], "v", color="tab:blue", ms=6, label="peak test")
        ax.set(title=f"seed {s}: peak {h['test_accuracy'][s, i]:.2f} @ {steps[i]}", ylim=(-0.02, 1.02))
        loss_ax = ax.twinx()
        loss_ax.plot(steps, h["train_loss"][s], ":", color="tab:red", lw=0.8)
        loss_ax.plot(steps, h["test_loss"][s], ":", color="tab:blue", lw=0.8)
        loss_ax.set_yscale("log")
        if s % cols == cols - 1:
            loss_ax.set_ylabel("loss (dotted)")
        if s % cols == 0:
            ax.set_ylabel("accuracy")
        if s >= n - cols:
            ax.set_xlabel("step")
    axes[0, 0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{title}: accuracy (solid) and loss (dotted), train red, test blue")
    fig.tight_layout()
    _save(fig, path)
