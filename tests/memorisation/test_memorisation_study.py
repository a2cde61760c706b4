"""The ``memorisation`` experiment end to end on a tiny config (one run shared by the
tests): summary against the saved arrays, shapes, D* against ``dstar.exact``, and that
the SMDD autoencoder at T = 4 (subsets of 2 points, which it memorises) shows memorisation
several standard errors above 0."""
from __future__ import annotations

import dataclasses

import jax
import jaxmem
import numpy as np
import pytest

from jaxmem import dstar, studies
from jaxmem.store import open_parts
from jaxmem.studies.memorisation import memorisation as study

#: T = 4 and 5 share one padded bucket: one program for the subset models, one for the full ones
TINY = study.Preset(n_features=40, sparsity=0.9, T=(4, 5), regimes=("memorising", "memorising"), steps=300,
                    subsets=12, mnist_n=60, mnist_hidden=8, mnist_epochs=2, mnist_batch=30, mnist_lr=1e-2,
                    mnist_subsets=4, fraction=0.5, parts=("smdd",))


def _reproduce(out, preset, draw=True):
    study.PRESETS["tiny"] = preset
    try:
        return studies.reproduce("memorisation", "tiny", out, draw=draw)
    finally:
        study.PRESETS.pop("tiny", None)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The SMDD part alone, no figures (the default suite)."""
    out = tmp_path_factory.mktemp("memorisation") / "run"
    return out, _reproduce(out, TINY, draw=False)


@pytest.fixture(scope="module")
def both_parts(tmp_path_factory):
    out = tmp_path_factory.mktemp("memorisation") / "both"
    return out, _reproduce(out, dataclasses.replace(TINY, parts=("smdd", "mnist")))


def test_summary_and_arrays(tiny_run):
    out, summary = tiny_run
    res = summary["results"]
    assert set(res) == {"smdd"}
    for key in ("K", "fraction", "se", "by_T"):
        assert key in res["smdd"]
    assert res["smdd"]["K"] == 12 and res["smdd"]["fraction"] == 0.5
    assert [r["T"] for r in res["smdd"]["by_T"]] == [4, 5]
    _, parts = open_parts(out)
    smdd = parts["smdd"]
    assert smdd["loss"].shape == (2, 12, 5) and smdd["hidden"].shape == (2, 12, 5, 2)
    assert smdd["in_subset"].shape == (2, 12, 5) and smdd["full/hidden"].shape == (2, 5, 2)
    assert smdd.dims["loss"] == ("T", "subset", "example")
    # each subset model trains on round(0.5 T) of its T rows, none past T
    assert np.array_equal(smdd["in_subset"][0].sum(-1), np.full(12, 2))
    assert np.array_equal(smdd["in_subset"][1].sum(-1), np.full(12, 3))
    assert not smdd["in_subset"][0][:, 4:].any()
    ds = jaxmem.load(out)
    assert not [d for d in ds.dims if "_dim" in d]


def test_summary_matches_a_looped_estimate(tiny_run):
    """The summary's mean memorisation per T against a per-example loop over the saved
    losses: mean loss of the models without the example minus of those with it."""
    out, summary = tiny_run
    _, parts = open_parts(out)
    smdd = parts["smdd"]
    for i, row in enumerate(summary["results"]["smdd"]["by_T"]):
        T = row["T"]
        values = []
        for n in range(T):
            loss, inside = smdd["loss"][i][:, n].astype(np.float64), smdd["in_subset"][i][:, n]
            if inside.any() and (~inside).any():
                values.append(loss[~inside].mean() - loss[inside].mean())
        assert row["mem_mean"] == pytest.approx(np.mean(values), rel=1e-6, abs=1e-9)


def test_smdd_memorises_at_small_T(tiny_run):
    """Subsets of 2 of 4 points: the model reconstructs the 2 it trained on and not the
    others, so memorisation is positive by several standard errors."""
    _, summary = tiny_run
    row = summary["results"]["smdd"]["by_T"][0]
    assert row["regime"] == "memorising" and row["subset_rows"] == 2
    assert row["loss_in_mean"] < 0.5 * row["loss_out_mean"]
    assert row["mem_mean"] > 4 * row["mem_mean_se"]
    assert row["mem_min"] > 0


def test_smdd_dstar_is_leverage_of_the_saved_hidden_vectors(tiny_run):
    out, summary = tiny_run
    _, parts = open_parts(out)
    smdd = parts["smdd"]
    for i, row in enumerate(summary["results"]["smdd"]["by_T"]):
        h = smdd["full/hidden"][i][: row["T"]]
        d = np.asarray(dstar.exact(h))
        assert row["dstar_max"] == pytest.approx(float(d.max()), rel=1e-5)
        assert row["dstar_sum"] == pytest.approx(int(dstar.rank(h)), rel=1e-4)


@pytest.mark.slow
def test_mnist_part(both_parts):
    """Both parts: the MNIST arrays, its summary against the saved scores, and its D*
    against ``dstar.exact`` of the saved hidden vectors (float64, sum = rank)."""
    out, summary = both_parts
    res = summary["results"]["mnist"]
    for key in ("se", "spearman", "by_class", "misclassified", "K", "fraction"):
        assert key in res
    _, parts = open_parts(out)
    mnist = parts["mnist"]
    assert mnist["prob"].shape == (4, 60) and mnist["images"].shape == (60, 28, 28)
    assert mnist["full/hidden"].shape == (60, 8) and mnist["dstar"].shape == (4, 60)
    assert np.array_equal(mnist["in_subset"].sum(-1), np.full(4, 30))
    # a subset model's D* is 0 off its subset, and sums over its rows to a rank (an integer <= 8 neurons)
    assert not mnist["dstar"][~mnist["in_subset"]].any()
    totals = mnist["dstar"].sum(-1)
    np.testing.assert_allclose(totals, np.round(totals), atol=1e-2)
    assert ((totals >= 1) & (totals <= 8.01)).all()
    prob, inside = mnist["prob"].astype(np.float64), mnist["in_subset"]
    loop = [prob[inside[:, n], n].mean() - prob[~inside[:, n], n].mean() for n in range(60)
            if inside[:, n].any() and (~inside[:, n]).any()]
    assert res["mem_mean"] == pytest.approx(np.mean(loop), rel=1e-6, abs=1e-9)
    with jax.enable_x64(True):
        expected = np.asarray(dstar.exact(np.asarray(mnist["full/hidden"], np.float64)))
        rank = int(dstar.rank(np.asarray(mnist["full/hidden"], np.float64)))
    np.testing.assert_allclose(mnist["full/dstar"], expected, atol=1e-10)
    assert mnist["full/dstar"].sum() == pytest.approx(rank, rel=1e-6)
    for name in ("memorisation_smdd_scatter.png", "memorisation_smdd_hidden.png", "memorisation_mnist_scatter.png",
                 "memorisation_mnist_images.png"):
        assert (out / name).stat().st_size > 0
