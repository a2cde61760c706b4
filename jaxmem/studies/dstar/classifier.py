"""The MLP classifier of ``dstar-mnist`` (``models.mlp``) as a ``run_grid`` model.

``model(n_in, n_hidden, n_out)`` gives ``run_grid``'s ``init``, ``loss`` and ``observe``
(whole-training-set loss and accuracy at every history point); ``fit`` trains a grid
of runs with AdamW, full batch or minibatches reshuffled every epoch (``run_grid``'s
``batch_size``), and returns its arrays flattened to one run axis. What a sweep varies
is a grid axis: ``seed``, ``n_train`` (the first rows of the data), and traced ``lr``,
``weight_decay``, ``init_scale``, ``horizon`` (the update count the schedule spans, 0
from there on: shorter runs inside a longer scan) and ``input`` (which of the input
variants ``x [N, V, n_in]`` a run trains on). Data is ``{"x": [N, n_in] or [N, V,
n_in], "labels": int [N]}``.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmem.models import mlp
from jaxmem.train import run_grid

#: this study's schedule names -> ``run_grid``'s
SCHEDULES = {"cosine": "warmup_cosine", "constant": "constant"}


def inputs(batch: dict, hp):
    """The inputs a run trains on: ``batch["x"]``, or its variant ``hp["input"]`` when
    it holds several (``[N, V, n_in]``)."""
    x = batch["x"]
    if x.ndim == 3:
        x = jax.lax.dynamic_index_in_dim(x, jnp.asarray(hp["input"]).astype(jnp.int32), axis=1, keepdims=False)
    return x


@functools.cache
def model(n_in: int, n_hidden: int, n_out: int = 10):
    """``(init, loss, observe)`` of the MLP for ``run_grid``; cached per size, so that
    equal shapes reuse ``run_grid``'s compiled programs."""

    def init(key, hp):
        return mlp.init(key, n_in, n_hidden, n_out, hp.get("init_scale", 1.0))

    def loss(params, batch, hp):
        return mlp.example_losses(params, inputs(batch, hp), batch["labels"])

    def observe(params, batch, weights, hp, aux):
        x = inputs(batch, hp)
        return {"train_loss": mlp.loss(params, x, batch["labels"], weights),
                "train_accuracy": mlp.accuracy(params, x, batch["labels"], weights)}

    return init, loss, observe


class History(NamedTuple):
    """Weighted loss and accuracy on the whole training set after ``step`` updates."""

    step: np.ndarray  # [n_records]
    loss: np.ndarray  # [R, n_records]
    accuracy: np.ndarray  # [R, n_records]


class Fit(NamedTuple):
    """A grid's runs flattened to ``R`` (the grid's axes in order, the last fastest)."""

    params: Any  # [R, ...]
    loss: np.ndarray  # [R] final weighted train loss
    accuracy: np.ndarray  # [R] final weighted train accuracy
    history: History
    checkpoints: Any  # [R, K, ...] params after the ``checkpoints`` update counts; None without
    compile_seconds: float
    train_seconds: float


def fit(data: dict, grid: dict, steps: int, *, n_hidden: int, lr: float = 1e-3, weight_decay: float = 1e-2,
        batch_size: int | None = None, schedule: str = "cosine", warmup_frac: float = 0.0, n_history: int = 20,
        checkpoints=(), seed: int = 0, n_out: int = 10) -> Fit:
    """Train the MLP on ``data`` for every run of ``grid`` (``run_grid``); ``lr`` and
    ``weight_decay`` apply where the grid has no such axis. ``checkpoints``: update
    counts (0 = the init, ``steps`` = the final params) whose params are kept."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {tuple(SCHEDULES)}, got {schedule!r}")
    grid = {**grid, **{k: [v] for k, v in (("lr", lr), ("weight_decay", weight_decay)) if k not in grid}}
    init, loss, observe = model(int(data["x"].shape[-1]), n_hidden, n_out)
    res = run_grid(init, loss, data, grid, steps, schedule=SCHEDULES[schedule], warmup_frac=warmup_frac,
                   batch_size=batch_size, n_history=min(n_history, steps), observe=observe, seed=seed,
                   keep_params_at=tuple(checkpoints), progress=False)
    n_runs = int(np.prod([len(v) for v in res.axes.values()]))

    def flat(a):
        return np.asarray(a).reshape((n_runs,) + np.shape(a)[len(res.axes):])

    rec = res.records
    history = History(np.asarray(res.history_steps), flat(rec["train_loss"]), flat(rec["train_accuracy"]))
    kept = None if res.params_at is None else jax.tree.map(flat, res.params_at)
    return Fit(jax.tree.map(flat, res.params), flat(res.train_loss), history.accuracy[:, -1], history, kept,
               res.compile_seconds, res.train_seconds)


def hidden_at(checkpoints, x) -> jax.Array:
    """Hidden vectors of ``x [N, n_in]`` under each of ``K`` stacked params: ``[K, N, h]``."""
    return jax.lax.map(lambda p: mlp.hidden(p, x), checkpoints)
