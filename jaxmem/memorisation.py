"""Counterfactual memorisation and influence from runs trained on random subsets.

Feldman (2020) and Feldman & Zhang (2020) define the memorisation of training example i
by a (randomised) algorithm A as the difference of its expected score between models
trained with i and models trained without it,

    mem(i) = E[score_i(h) | i in S'] - E[score_i(h) | i not in S'],

S' a random subset of the training set (Feldman & Zhang: a fixed fraction of it, e.g.
0.7), and the influence of i on a test example z as the same difference measured on z.
Zhang et al. (2021) use a loss-based score; here scores are always "higher is better":
pass accuracy, or minus a loss (mem in squared error = mean loss without i minus mean
loss with i). Sources: ``docs/sources.md §6``.

``jaxmem.run_grid`` trains the runs: a grid axis ``subset`` (random subsets, or
leave-one-out with ``subset_fraction="loo"``) whose masks come back as
``GridResult.subset_mask``; ``evaluate_scores`` makes the ``evaluate`` hook that returns
per-example scores on the training rows and a test set. ``memorisation`` and
``influence`` estimate the two differences of means with standard errors
sqrt(var_in / n_in + var_out / n_out) (sample variances, ddof 1): the usual SE of a
difference of two independent means, conditional on the counts. ``leave_one_out`` gives
the exact leave-one-out differences from a full-data run and the n runs that each drop
one row.

For a least-squares linear readout on fixed features X with full-data residuals e, the
leave-one-out residual of row i is e_i / (1 - h_ii), h_ii the leverage of row i (D*,
``jaxmem.dstar.exact``), so the leave-one-out memorisation with score = minus the squared
error is e_i^2 (1 / (1 - h_ii)^2 - 1); tests/core/test_memorisation.py checks the
engine and the estimators against it.

This module is callable: ``jaxmem.memorisation(scores, in_mask)`` is
``jaxmem.memorisation.memorisation(scores, in_mask)``.
"""
from __future__ import annotations

import sys
import types
from typing import Callable, NamedTuple

import numpy as np


class MemResult(NamedTuple):
    """Per example (the runs axis reduced away).

    value: mean_in - mean_out; NaN where n_in == 0 or n_out == 0 (an example that every
      run, or no run, trained on has no counterfactual).
    stderr: sqrt(var_in / n_in + var_out / n_out), sample variances (ddof 1); NaN where
      n_in < 2 or n_out < 2 (a variance needs two runs; e.g. leave-one-out has n_out = 1).
    n_in, n_out: int, the runs that trained / did not train on the example.
    mean_in, mean_out: the mean score over those runs (NaN for no runs).
    """

    value: np.ndarray
    stderr: np.ndarray
    n_in: np.ndarray
    n_out: np.ndarray
    mean_in: np.ndarray
    mean_out: np.ndarray


class InfluenceResult(NamedTuple):
    """value, stderr: [n_train, n_test] (NaN rules as ``MemResult``); n_in, n_out: [n_train]."""

    value: np.ndarray
    stderr: np.ndarray
    n_in: np.ndarray
    n_out: np.ndarray


def _group(scores, mask):
    """Count, mean and sample variance (ddof 1) of ``scores`` where ``mask``, over axis 0."""
    n = mask.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(mask, scores, 0.0).sum(0) / n
        var = np.where(mask, (scores - mean) ** 2, 0.0).sum(0) / (n - 1)
    mean = np.where(n > 0, mean, np.nan)
    var = np.where(n > 1, var, np.nan)
    return n, mean, var


def _difference(n_in, mean_in, var_in, n_out, mean_out, var_out):
    value = np.where((n_in > 0) & (n_out > 0), mean_in - mean_out, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        stderr = np.sqrt(var_in / n_in + var_out / n_out)
    return value, np.where((n_in > 1) & (n_out > 1), stderr, np.nan)


def memorisation(scores, in_mask, axis: int = -2, valid=None) -> MemResult:
    """Counterfactual memorisation of every training example, with its standard error.

    Args:
      scores: [..., K, N] run k's score on example n, higher is better (accuracy, or
        minus a loss); ``axis`` is the runs axis (default -2: ``[K, N]`` runs first).
      in_mask: bool, broadcastable to ``scores``: True where run k trained on example n
        (``GridResult.subset_mask``).
      valid: optional bool, broadcastable to ``scores``: only these (run, example) pairs
        count (e.g. drop rows past a run's ``n_train``, or diverged runs). Non-finite
        scores in valid pairs make that example's results NaN.

    Returns:
      ``MemResult`` of arrays shaped like ``scores`` without ``axis``.
    """
    scores = np.asarray(scores, np.float64)
    in_mask = np.broadcast_to(np.asarray(in_mask, bool), scores.shape)
    valid = np.ones(scores.shape, bool) if valid is None else np.broadcast_to(np.asarray(valid, bool), scores.shape)
    scores, in_mask, valid = (np.moveaxis(a, axis, 0) for a in (scores, in_mask, valid))
    n_in, mean_in, var_in = _group(scores, in_mask & valid)
    n_out, mean_out, var_out = _group(scores, ~in_mask & valid)
    value, stderr = _difference(n_in, mean_in, var_in, n_out, mean_out, var_out)
    return MemResult(value, stderr, n_in, n_out, mean_in, mean_out)


def influence(test_scores, in_mask) -> InfluenceResult:
    """Influence of every training example on every test example, with standard errors.

    Args:
      test_scores: [K, n_test] run k's score on test example j (higher is better),
        finite.
      in_mask: bool [K, n_train]: True where run k trained on training example i.

    Returns:
      ``InfluenceResult``: value[i, j] = mean of test score j over runs with i minus over
      runs without i, its stderr (as ``memorisation``), and the counts per training example.
    """
    s = np.asarray(test_scores, np.float64)
    m = np.asarray(in_mask, bool)
    if s.ndim != 2 or m.ndim != 2 or s.shape[0] != m.shape[0]:
        raise ValueError(f"need test_scores [K, n_test] and in_mask [K, n_train], got {s.shape} and {m.shape}")
    s = s - s.mean(0)  # shift per test example: the one-pass sums below stay accurate
    stats = []
    for group in (m, ~m):
        g = group.astype(np.float64)
        n = group.sum(0)  # [n_train]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (g.T @ s) / n[:, None]
            var = ((g.T @ s**2) - n[:, None] * mean**2) / (n[:, None] - 1)
        mean = np.where(n[:, None] > 0, mean, np.nan)
        var = np.where(n[:, None] > 1, np.maximum(var, 0.0), np.nan)
        stats.append((n[:, None], mean, var))
    (n_in, mean_in, var_in), (n_out, mean_out, var_out) = stats
    value, stderr = _difference(n_in, mean_in, var_in, n_out, mean_out, var_out)
    return InfluenceResult(value, stderr, n_in[:, 0], n_out[:, 0])


def leave_one_out(loo_scores, full_scores) -> np.ndarray:
    """Exact leave-one-out differences: ``full_scores[j] - loo_scores[i, j]`` ([n, M]).

    ``loo_scores[i]``: the scores of the run that dropped training row i (run i of
    ``subset_fraction="loo"``); ``full_scores``: those of the full-data run (the subset
    value n). With the training rows as columns, ``np.diagonal`` of the result is each
    row's leave-one-out memorisation; other columns (a test set) give its influence."""
    loo = np.asarray(loo_scores, np.float64)
    full = np.asarray(full_scores, np.float64)
    if loo.ndim != 2 or full.shape != loo.shape[1:]:
        raise ValueError(f"need loo_scores [n, M] and full_scores [M], got {loo.shape} and {full.shape}")
    return full[None, :] - loo


def evaluate_scores(score: Callable, test: Callable | None = None) -> Callable:
    """A ``run_grid`` ``evaluate`` hook returning per-example scores at the end of training:
    ``{"train_score": score(params, batch, hp)}`` on every row of the run's data (those
    outside its subset too), and with ``aux``, ``"test_score": score(params, test(aux), hp)``
    (``test`` defaults to ``aux`` itself). ``score(params, batch, hp) -> [N]``, higher is
    better."""

    def evaluate(params, batch, weights, hp, aux):
        out = {"train_score": score(params, batch, hp)}
        if aux is not None:
            out["test_score"] = score(params, aux if test is None else test(aux), hp)
        return out

    return evaluate


class _CallableModule(types.ModuleType):
    """``jaxmem.memorisation`` is this module (the import system puts a loaded submodule on
    its package); calling it calls ``memorisation``."""

    def __call__(self, scores, in_mask, axis: int = -2, valid=None) -> MemResult:
        return memorisation(scores, in_mask, axis, valid)


sys.modules[__name__].__class__ = _CallableModule
