"""Counterfactual memorisation: ``run_grid``'s ``subset`` axis (random subsets and
leave-one-out) and the estimators of ``jaxmem.memorisation``, against closed forms.

- leave-one-out through ``run_grid`` on a least-squares linear readout (float64, trained
  to convergence) against e_i^2 (1/(1 - h_ii)^2 - 1), h_ii = D* (``jaxmem.dstar.exact``),
  and the rank-one downdate for the other runs and a test set;
- a lookup model (one parameter per row, can only store) has memorisation 1 on every
  row, with SE 0; a model that ignores the data has 0 within its SE;
- the subset estimator converges to the exact expectation over all subsets, and its SE
  matches the spread of replicated experiments, a bootstrap and the known variance;
- subset grids checkpoint by their subsets and share compiled programs.
"""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmem
from jaxmem import dstar, run_grid
from jaxmem.memorisation import evaluate_scores, influence, leave_one_out, memorisation
from jaxmem.train import grid as grid_mod
from jaxmem.train.grid import subset_masks

N, D, N_TEST = 10, 3, 4
SGD = dict(optimizer="sgd", schedule="constant", warmup_frac=0.0, n_history=2)


def features(n=N, d=D, seed=0):
    """Rows x_i with X^T X = n I (fast, exact convergence of gradient descent), targets
    with noise, and a test set."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, d)))
    x = np.sqrt(n) * q
    y = x @ rng.normal(size=d) + 0.5 * rng.normal(size=n)
    xt = rng.normal(size=(N_TEST, d))
    yt = xt @ rng.normal(size=d)
    return x, y, xt, yt


def test_leave_one_out_through_run_grid_matches_the_leverage_closed_form():
    x, y, xt, yt = features()
    with jax.enable_x64(True):
        init = lambda key, hp: {"w": jnp.zeros(D, jnp.float64)}  # noqa: E731
        loss = lambda p, b, hp: (b["x"] @ p["w"] - b["y"]) ** 2  # noqa: E731
        score = lambda p, b, hp: -((b["x"] @ p["w"] - b["y"]) ** 2)  # noqa: E731
        res = run_grid(init, loss, {"x": jnp.asarray(x), "y": jnp.asarray(y)}, {"subset": range(N + 1), "lr": [0.5]},
                       300, subset_fraction="loo", evaluate=evaluate_scores(score),
                       aux={"x": jnp.asarray(xt), "y": jnp.asarray(yt)}, **SGD)
        h = np.asarray(dstar.exact(jnp.asarray(x)))
    assert res.params["w"].dtype == np.float64
    mask = res.subset_mask[:, 0]
    np.testing.assert_array_equal(mask, ~np.eye(N + 1, N, dtype=bool))  # run k drops row k; run N drops none
    train, test = res.outputs["train_score"][:, 0], res.outputs["test_score"][:, 0]

    xtx_inv = np.linalg.inv(x.T @ x)
    hat = x @ xtx_inv @ x.T
    np.testing.assert_allclose(h, np.diag(hat), rtol=1e-12)  # D* is the leverage
    e = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    mem_exact = e**2 * (1 / (1 - h) ** 2 - 1)
    mem_loo = np.diagonal(leave_one_out(train[:N], train[N]))
    np.testing.assert_allclose(mem_loo, mem_exact, rtol=1e-9, atol=1e-12)
    assert mem_exact.max() > 0.1  # not a trivially small check

    # the difference-of-means estimator on this design: row i is in the full run and in
    # the runs dropping j != i, where its residual is e_i + h_ij e_j / (1 - h_jj)
    r = e[:, None] + hat * (e / (1 - h))[None, :]  # r[i, j]: residual of i without j
    in_mean = (-(e**2) + (-(r**2)).sum(1) - (-(np.diag(r) ** 2))) / N
    m = memorisation(train, mask)
    np.testing.assert_array_equal(m.n_in, np.full(N, N))
    np.testing.assert_array_equal(m.n_out, np.ones(N))
    np.testing.assert_allclose(m.value, in_mean + (e / (1 - h)) ** 2, rtol=1e-9)
    assert np.isnan(m.stderr).all()  # one run without each row: no variance

    # influence on the test set: dropping i moves the prediction at z by -x_z A^-1 x_i e_i / (1 - h_ii)
    w = np.linalg.lstsq(x, y, rcond=None)[0]
    pred_out = (xt @ w)[None, :] - (xt @ xtx_inv @ x.T).T * (e / (1 - h))[:, None]
    infl_exact = -((xt @ w - yt) ** 2)[None, :] + (pred_out - yt[None, :]) ** 2
    np.testing.assert_allclose(leave_one_out(test[:N], test[N]), infl_exact, rtol=1e-9, atol=1e-12)


def lookup_model(n):
    """One parameter per row, trained towards its label: it can only store."""
    init = lambda key, hp: {"t": jnp.zeros(n)}  # noqa: E731
    loss = lambda p, b, hp: (p["t"][b["i"]] - b["y"]) ** 2  # noqa: E731
    accuracy = lambda p, b, hp: (p["t"][b["i"]] * b["y"] > 0).astype(jnp.float32)  # noqa: E731
    return init, loss, accuracy


def test_lookup_model_memorises_every_row_and_masks_follow_the_key_stream():
    n, k = 10, 8
    data = {"i": jnp.arange(n), "y": jnp.where(jnp.arange(n) % 3 == 0, 1.0, -1.0)}
    init, loss, accuracy = lookup_model(n)
    res = run_grid(init, loss, data, {"n_train": [8, 10], "subset": range(k), "seed": [0, 1]}, 20,
                   subset_fraction=0.5, subset_seed=3, evaluate=evaluate_scores(accuracy), **SGD)
    assert res.subset_mask.shape == (2, k, 2, n)
    for a, n_train in enumerate([8, 10]):
        expected = subset_masks(range(k), n_train, n, fraction=0.5, subset_seed=3)
        for s in range(2):  # the same subsets for every seed
            np.testing.assert_array_equal(res.subset_mask[a, :, s], expected)
        assert (expected.sum(1) == round(0.5 * n_train)).all() and not expected[:, n_train:].any()
    assert not np.array_equal(subset_masks(range(k), n, fraction=0.5, subset_seed=3),
                              subset_masks(range(k), n, fraction=0.5, subset_seed=4))
    np.testing.assert_array_equal(res.outputs["train_score"][1], res.subset_mask[1])  # right iff trained on it
    m = memorisation(res.outputs["train_score"][1], res.subset_mask[1], axis=0)  # [seed, row]
    both = (m.n_in > 0) & (m.n_out > 0)
    assert both.sum() >= 2 * (n - 2)
    np.testing.assert_array_equal(m.value[both], 1.0)
    np.testing.assert_array_equal(np.isnan(m.value), ~both)
    np.testing.assert_array_equal(m.stderr[(m.n_in > 1) & (m.n_out > 1)], 0.0)
    # through the package-level callable, with the rows past the smaller n_train left out
    small = jaxmem.memorisation(res.outputs["train_score"][0], res.subset_mask[0], axis=0,
                                valid=np.arange(n) < 8)
    assert (small.n_in[:, 8:] == 0).all() and (small.n_out[:, 8:] == 0).all()
    np.testing.assert_array_equal(small.value[:, :8][(small.n_in[:, :8] > 0) & (small.n_out[:, :8] > 0)], 1.0)


def test_model_that_ignores_the_data_has_zero_memorisation_within_its_stderr():
    n, k = 12, 40
    x = jax.random.normal(jax.random.key(1), (n, D))
    init = lambda key, hp: {"w": jax.random.normal(key, (D,))}  # noqa: E731
    loss = lambda p, b, hp: 0.0 * b["x"][:, 0] + 0.0 * jnp.sum(p["w"])  # noqa: E731
    score = lambda p, b, hp: b["x"] @ p["w"]  # noqa: E731
    own = run_grid(init, loss, {"x": x}, {"subset": range(k)}, 4, subset_fraction=0.5, subset_init="own",
                   evaluate=evaluate_scores(score), **SGD)
    assert len({tuple(w) for w in own.params["w"].tolist()}) == k  # an init of its own per subset
    m = memorisation(own.outputs["train_score"], own.subset_mask)
    assert (m.stderr > 0).all()
    z = m.value / m.stderr
    assert np.abs(z).max() < 4.0 and abs(z.mean()) < 3.0 / np.sqrt(n)
    # "shared" (the default): the init and minibatch keys of a seed, whatever the subset
    settings = {init: grid_mod._subset_setting({"subset": [0]}, 0.5, 0, init) for init in ("shared", "own")}
    for name, setting in settings.items():
        statics = grid_mod._Statics(None, None, None, False, jnp.float32, (), (), setting)
        axes = {"subset": list(range(3)), "seed": [0, 1]}
        runs, _ = grid_mod._runs(statics, axes, [(a, b) for a in range(3) for b in range(2)], jax.random.key(0), N)
        for key in ("init_key", "order_key"):
            distinct = len({tuple(v) for v in runs[key].tolist()})
            assert distinct == (2 if name == "shared" else 6)


def lstsq_scores(x, y, masks):
    """Minus the squared error on every row of the least-squares fit to each mask's rows."""
    a = np.einsum("kn,nd,ne->kde", masks.astype(float), x, x)
    b = np.einsum("kn,nd,n->kd", masks.astype(float), x, y)
    coef = np.linalg.solve(a, b[..., None])[..., 0]
    return -((coef @ x.T - y[None, :]) ** 2)


def test_subset_estimator_converges_to_the_exact_expectation_over_all_subsets():
    n, m = 8, 4
    rng = np.random.default_rng(2)
    x = rng.normal(size=(n, 2))
    y = x @ np.array([1.0, -1.0]) + rng.normal(size=n)
    every = np.zeros((70, n), bool)
    for r, rows in enumerate(itertools.combinations(range(n), m)):
        every[r, list(rows)] = True
    scores = lstsq_scores(x, y, every)
    exact = np.array([scores[every[:, i], i].mean() - scores[~every[:, i], i].mean() for i in range(n)])
    errors, stderrs = [], []
    every_k = subset_masks(range(1600), n, fraction=0.5)  # subset k is row k: the first K are range(K)
    assert (every_k.sum(1) == m).all()
    for k in (100, 400, 1600):
        masks = every_k[:k]
        est = memorisation(lstsq_scores(x, y, masks), masks)
        assert (np.abs(est.value - exact) < 4 * est.stderr).all()
        errors.append(np.sqrt(np.mean((est.value - exact) ** 2)))
        stderrs.append(np.sqrt(np.mean(est.stderr**2)))
    assert 3.0 < stderrs[0] / stderrs[2] < 5.0  # SE ~ 1/sqrt(K)
    assert errors[2] < errors[0] and errors[2] < 2 * stderrs[2]
    freq = every_k.mean(0)  # every row in half the subsets
    assert (np.abs(freq - 0.5) < 4 * np.sqrt(0.25 / 1600)).all()


def test_stderr_matches_replicates_bootstrap_and_known_variance():
    rng = np.random.default_rng(7)
    r, k, n = 400, 60, 30
    delta = rng.normal(size=n)
    sigma_in, sigma_out = 0.5 + rng.random(n), 0.5 + rng.random(n)
    masks = rng.random((r, k, n)) < 0.5
    noise = rng.normal(size=(r, k, n))
    scores = 3.0 + delta * masks + np.where(masks, sigma_in, sigma_out) * noise
    est = memorisation(scores, masks)  # [r, n]: runs on axis -2
    assert est.value.shape == (r, n)
    known = np.sqrt(sigma_in**2 / est.n_in + sigma_out**2 / est.n_out)
    np.testing.assert_allclose(np.sqrt(np.mean(est.stderr**2, 0)), np.sqrt(np.mean(known**2, 0)), rtol=0.1)
    spread = est.value.std(0)
    np.testing.assert_allclose(spread, np.sqrt(np.mean(known**2, 0)), rtol=0.2)
    assert abs(np.std((est.value - delta) / est.stderr) - 1) < 0.05
    assert np.all(np.abs(est.value.mean(0) - delta) < 5 * spread / np.sqrt(r))
    # a bootstrap over the runs of one experiment
    picks = rng.integers(0, k, size=(500, k))
    boot = memorisation(scores[0][picks], masks[0][picks]).value
    ratio = np.nanstd(boot, 0) / est.stderr[0]
    assert 0.85 < np.median(ratio) < 1.15
    # against moveaxis: the runs axis may be anywhere
    moved = memorisation(np.moveaxis(scores, 1, 0), np.moveaxis(masks, 1, 0), axis=0)
    np.testing.assert_array_equal(moved.value, est.value)


def test_influence_matches_a_loop_and_memorisation_on_its_diagonal():
    rng = np.random.default_rng(3)
    k, n, t = 25, 6, 4
    masks = rng.random((k, n)) < 0.5
    masks[:, 5] = True  # never out
    test = 10.0 + rng.normal(size=(k, t))
    res = influence(test, masks)
    for i in range(n - 1):
        for j in range(t):
            a, b = test[masks[:, i], j], test[~masks[:, i], j]
            assert res.value[i, j] == pytest.approx(a.mean() - b.mean(), rel=1e-10, abs=1e-12)
            se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
            assert res.stderr[i, j] == pytest.approx(se, rel=1e-8)
    assert np.isnan(res.value[5]).all() and np.isnan(res.stderr[5]).all() and res.n_out[5] == 0
    train = rng.normal(size=(k, n))
    diag = np.diagonal(influence(train, masks).value)
    np.testing.assert_allclose(diag, memorisation(train, masks).value, rtol=1e-10, equal_nan=True)


def test_subset_options_are_checked():
    data = {"i": jnp.arange(4), "y": jnp.ones(4)}
    init, loss, _ = lookup_model(4)
    with pytest.raises(ValueError, match="subset"):
        run_grid(init, loss, data, {"seed": [0]}, 2, subset_fraction=0.5)
    with pytest.raises(ValueError, match="subset_fraction"):
        run_grid(init, loss, data, {"subset": [0]}, 2, subset_fraction=1.0)
    with pytest.raises(ValueError, match="subset_init"):
        run_grid(init, loss, data, {"subset": [0]}, 2, subset_init="mine")
    with pytest.raises(ValueError, match="integers"):
        run_grid(init, loss, data, {"subset": [-1]}, 2)
    np.testing.assert_array_equal(subset_masks([1, 5], 4, 6, fraction="loo"),
                                  [[1, 0, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0]])
    with pytest.raises(ValueError, match="leaves 0 rows"):
        subset_masks([0], 4, fraction=0.1)


def test_subset_runs_checkpoint_by_their_subsets_and_share_programs(tmp_path):
    """A finished subset grid loads from its checkpoint; another ``subset_seed`` is another
    grid (trained, other masks) on the same compiled programs."""
    n = 6
    data = {"i": jnp.arange(n), "y": jnp.ones(n)}
    init, loss, accuracy = lookup_model(n)
    kw = dict(evaluate=evaluate_scores(accuracy), checkpoint_dir=tmp_path, **SGD)
    first = run_grid(init, loss, data, {"subset": range(4)}, 6, **kw)
    again = run_grid(init, loss, data, {"subset": range(4)}, 6, **kw)
    other = run_grid(init, loss, data, {"subset": range(4)}, 6, subset_seed=1, **kw)
    assert (first.resumed, again.resumed, other.resumed) == ([""], ["loaded"], [""])
    np.testing.assert_array_equal(again.subset_mask, first.subset_mask)
    np.testing.assert_array_equal(again.outputs["train_score"], first.outputs["train_score"])
    np.testing.assert_array_equal(other.subset_mask, subset_masks(range(4), n, subset_seed=1))
    assert not np.array_equal(other.subset_mask, first.subset_mask)
    assert other.compile_seconds < 0.5 * first.compile_seconds  # programs reused
    ds = first.to_xarray()
    assert ds["subset_mask"].dims == ("subset", "example") and ds["subset_mask"].dtype == bool
