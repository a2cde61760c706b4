"""Figures of ``parity-pruning`` (docs/sources.md §3), drawn from its saved parts and summary."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxmem.plotting import plt
from jaxmem.plotting import save as _save

DECAY_NAMES = {"l1": "L1 decay", "l2": "L2 decay"}


def _label(decay: str, wd: float) -> str:
    return f"{DECAY_NAMES.get(decay, decay)} (wd {wd:g})"


def dynamics(parts: dict, summary: dict, cfg, path, seed: int = 0) -> None:
    """Per decay (columns): train/test loss of every seed (``seed`` dark); the relevant
    share and the distractor norm; the weights of ``seed`` over training, the first
    three digits highlighted as in the article's trajectory chart. Dashed: memorisation
    and generalisation steps of ``seed``."""
    steps = cfg.history_steps
    arms = list(cfg.arms)
    fig, axes = plt.subplots(3, len(arms), figsize=(6.8 * len(arms), 10), squeeze=False, sharex="col")
    for col, (arm, decay, wd) in enumerate(zip(arms, cfg.decays, cfg.weight_decays)):
        a = parts[arm].arrays
        run = summary["by_arm"][arm]["runs"][seed]
        ax_loss, ax_share, ax_w = axes[:, col]
        for s in range(a["train_loss"].shape[0]):
            alpha, lw = (1.0, 1.4) if s == seed else (0.25, 0.8)
            ax_loss.plot(steps, a["train_loss"][s], color="tab:blue", alpha=alpha, lw=lw,
                         label="train loss" if s == seed else None)
            ax_loss.plot(steps, a["test_loss"][s], color="tab:orange", alpha=alpha, lw=lw,
                         label="test loss" if s == seed else None)
            ax_share.plot(steps, a["relevant_share"][s], color="tab:green", alpha=alpha, lw=lw,
                          label="share of |W_in|^2 on digits 1-3" if s == seed else None)
        ax_loss.set(yscale="log", ylabel="cross-entropy", title=f"{_label(decay, wd)}: loss (seed {seed} dark)")
        ax_share.set(ylabel="relevant share", ylim=(0, 1.02), title="relevant share (green) and distractor norm (red)")
        twin = ax_share.twinx()
        for s in range(a["distractor_norm"].shape[0]):
            alpha, lw = (1.0, 1.4) if s == seed else (0.25, 0.8)
            twin.plot(steps, a["distractor_norm"][s], color="tab:red", alpha=alpha, lw=lw,
                      label="norm of W_in on digits 4-30" if s == seed else None)
        twin.set(ylabel="distractor norm")
        lines = ax_share.get_legend_handles_labels()
        more = twin.get_legend_handles_labels()
        ax_share.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="center right")
        w = a["w_in_history"]  # [saved, n_bits + 1, H]
        saved = parts[arm].coords.get("saved_step", steps[:w.shape[0]])
        flat = w.reshape(w.shape[0], w.shape[1], -1)
        for row in list(range(cfg.n_relevant, flat.shape[1] - 1)) + [flat.shape[1] - 1] + list(range(cfg.n_relevant)):
            relevant, bias = row < cfg.n_relevant, row == flat.shape[1] - 1  # distracting rows drawn first
            color = "tab:purple" if relevant else ("pink" if bias else "black")
            ax_w.plot(saved, flat[:, row], color=color, alpha=0.9 if relevant or bias else 0.08, lw=0.8)
        ax_w.plot([], [], color="tab:purple", label="digits 1-3")
        ax_w.plot([], [], color="black", alpha=0.4, label="digits 4-30")
        ax_w.plot([], [], color="pink", label="bias")
        ax_w.legend(fontsize=8, loc="upper right")
        ax_w.set(xlabel="training step", ylabel="weight value", title=f"W_in over training, seed {seed}")
        for ax in (ax_loss, ax_share, ax_w):
            for key, style in (("memorise_step", ":"), ("generalise_step", "--")):
                if run[key] is not None:
                    ax.axvline(run[key], color="k", ls=style, lw=0.8)
        ax_loss.plot([], [], "k:", lw=0.8, label="train acc >= 99%")
        ax_loss.plot([], [], "k--", lw=0.8, label="test acc >= 99%")
        ax_loss.legend(fontsize=8)
    fig.suptitle("Sparse parity (1,200 sequences): pruning of the distracting digits as the model generalises")
    fig.tight_layout(w_pad=2.5)
    _save(fig, path)


def neuron_maps(parts: dict, summary: dict, cfg, path, seed: int = 0) -> None:
    """Final ``W_in`` (neurons x digits, bias last) and ``w_out`` of ``seed`` per decay,
    neurons ordered by path strength, with the run's redundancy numbers."""
    arms = list(cfg.arms)
    fig, axes = plt.subplots(1, 2 * len(arms), figsize=(5.2 * len(arms), 5.4), squeeze=False,
                             gridspec_kw={"width_ratios": [8, 1] * len(arms)})
    for k, (arm, decay, wd) in enumerate(zip(arms, cfg.decays, cfg.weight_decays)):
        a = parts[arm].arrays
        w_in, w_out = np.asarray(a["w_in"][seed]), np.asarray(a["w_out"][seed])
        strength = np.linalg.norm(w_in[:cfg.n_relevant], axis=0) * np.abs(w_out)
        order = np.argsort(-strength, kind="stable")
        lim = max(np.abs(w_in).max(), 1e-9)
        ax, ax_o = axes[0, 2 * k], axes[0, 2 * k + 1]
        im = ax.imshow(w_in[:, order].T, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        n = summary["by_arm"][arm]["runs"][seed]["neurons"]
        ax.set(xlabel="digit (last column: bias)", ylabel="neuron (by path strength)",
               title=f"{_label(decay, wd)}, seed {seed}\n{n['n_active']} active neurons, "
                     f"{n['n_distinct']} distinct, effective {n['effective']:.1f}")
        ax.axvline(cfg.n_relevant - 0.5, color="k", lw=0.6)
        fig.colorbar(im, ax=ax, fraction=0.04)
        lim_o = max(np.abs(w_out).max(), 1e-9)
        ax_o.imshow(w_out[order][:, None], cmap="RdBu_r", vmin=-lim_o, vmax=lim_o, aspect="auto")
        ax_o.set(xticks=[], yticks=[], title="w_out")
    fig.suptitle(f"Input weights after {cfg.steps:,} steps (1,200 sequences, {cfg.hidden} neurons): "
                 "L1 keeps a few neurons on digits 1-3, L2 spreads the solution over many")
    fig.tight_layout()
    _save(fig, path)


def redundancy(summary: dict, cfg, path) -> None:
    """Active and distinct neurons per seed, per decay."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, arm in enumerate(cfg.arms):
        runs = summary["by_arm"][arm]["runs"]
        for j, (key, marker) in enumerate((("n_active", "o"), ("n_distinct", "s"), ("effective", "^"))):
            y = [r["neurons"][key] for r in runs]
            x = k + (j - 1) * 0.22 + np.linspace(-0.05, 0.05, len(y))
            ax.scatter(x, y, marker=marker, color=f"C{j}", label=key.replace("n_", "") if k == 0 else None)
    ax.set_xticks(range(len(cfg.arms)), [_label(d, w) for d, w in zip(cfg.decays, cfg.weight_decays)])
    ax.set(ylabel="neurons", title="Neurons on digits 1-3 at the end, one point per seed")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def pruning(parts: dict, summary: dict, cfg, out) -> None:
    """Every figure of a ``parity-pruning`` run (``summary``: the whole summary.json)."""
    out, summary = Path(out), summary.get("results", summary)
    dynamics(parts, summary, cfg, out / "pruning_dynamics.png")
    neuron_maps(parts, summary, cfg, out / "neuron_maps.png")
    redundancy(summary, cfg, out / "redundant_neurons.png")
