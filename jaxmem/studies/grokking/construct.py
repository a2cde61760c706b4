"""The explorable's hand-built modular-addition solution, to compare trained models against."""
from __future__ import annotations

import numpy as np


def modular_circle(p: int, n_neurons: int, dtype=np.float32) -> dict:
    """The explorable's constructed modular-addition solution (Appendix A), as params of
    the factored ``models.modular`` model with tied 2-d embedding.

    ``W_embed[i] = (cos i w, sin i w)`` with ``w = 2 pi / p``; neuron ``j`` reads along
    ``(cos j t, sin j t)`` and writes along ``(cos 2 j t, sin 2 j t)``, ``t = 2 pi / N``, so
    ``logit_c = sum_j act(cos(a w - j t) + cos(b w - j t)) cos(c w - 2 j t)``. With
    ``act = x^2`` this is ``N cos^2((a - b) w / 2) cos((a + b - c) w)`` for ``N > 4``,
    whose argmax is ``(a + b) mod p`` exactly for odd ``p``; with ReLU it is close.
    """
    if int(p) != p or p < 3:
        raise ValueError(f"p must be an integer >= 3, got {p!r}")
    if int(n_neurons) != n_neurons or n_neurons < 1:
        raise ValueError(f"n_neurons must be a positive integer, got {n_neurons!r}")
    numbers, neurons = 2 * np.pi * np.arange(p) / p, 2 * np.pi * np.arange(n_neurons) / n_neurons
    on_circle = lambda angles: np.stack([np.cos(angles), np.sin(angles)])
    return {"embed": on_circle(numbers).T.astype(dtype), "in_proj": on_circle(neurons).astype(dtype),
            "out_proj": on_circle(2 * neurons).T.astype(dtype)}
