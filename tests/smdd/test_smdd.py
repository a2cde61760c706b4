"""SMDD presets and the infinite-data (fresh batch every step) option of the engine."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmem import data, studies, train
from jaxmem.store import open_parts
from jaxmem.models import relu_output
from jaxmem.studies.smdd import settings as smdd_settings
from jaxmem.studies.smdd import figures, smdd
from jaxmem.studies.smdd.sweep import Sweep, data_key, fresh_batch, fresh_rows, init_key, repeat_points, run_sweep


def test_fresh_batches_differ_per_step_and_repeat_per_key(key):
    a, b = fresh_batch(key, 0, 64, 50, 0.9), fresh_batch(key, 1, 64, 50, 0.9)
    assert a.shape == (64, 50) and not np.allclose(a, b)
    np.testing.assert_array_equal(a, fresh_batch(key, 0, 64, 50, 0.9))
    assert not np.allclose(a, fresh_batch(jax.random.fold_in(key, 1), 0, 64, 50, 0.9))

    # the same distribution as a training set's rows (drawn another way)
    fresh, fixed = (np.asarray(x) for x in (fresh_batch(key, 2, 4000, 200, 0.95), data.sparse_features(key, 4000, 200, 0.95)))
    for x in (fresh, fixed):
        norms = np.linalg.norm(x, axis=-1)
        np.testing.assert_allclose(norms[norms > 0], 1.0, rtol=1e-5)
        count, per_feature = (x != 0).sum(-1), (x != 0).mean(0)
        assert abs(count.mean() - 10.0) < 0.25 and abs(count.std() - np.sqrt(200 * 0.05 * 0.95)) < 0.25
        assert np.all(np.abs(per_feature - 0.05) < 0.018)  # no feature favoured, the first and last included
    np.testing.assert_allclose(fresh.max(-1).mean(), fixed.max(-1).mean(), rtol=0.03)


@pytest.mark.slow
def test_fresh_sweep_equals_a_hand_built_loop():
    """A fresh run (split over 3 chunks of steps) trains on ``fresh_batch(key, step)`` at
    every step, as a plain optax loop does; train.train(fresh=...) does the same."""
    n, T, S = 12, 6, 0.7
    cfg = train.TrainConfig(n_features=n, n_hidden=2, steps=12, n_history=3)
    sweep = Sweep(T=(T,), sparsity=S, data_seeds=1, n_test=16, fresh=True, lr=(3e-2,))
    a = run_sweep(cfg, sweep, progress=False, chunks=3).arrays
    key = data_key(sweep, 0)
    hyper = train.Hyper(3e-2, 1e-2, 1.0)
    params = relu_output.init(init_key(sweep, 0), n, 2)
    opt = optax.adamw(optax.warmup_cosine_decay_schedule(0.0, 3e-2, cfg.warmup_steps, cfg.steps, 0.0),
                      weight_decay=1e-2)
    state, loss, w, history = opt.init(params), train.loss_fn(cfg), jnp.ones(T), []
    for step in range(cfg.steps):
        value, grads = jax.value_and_grad(loss)(params, fresh_batch(key, step, T, n, S), w)
        if step > 0 and step % cfg.log_every == 0:  # the loss after `step` updates, on that step's batch
            history.append(float(value))
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    cell = (0, 0, 0, 0, 0)
    np.testing.assert_allclose(a["W"][cell], np.asarray(params["W"]), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(a["b"][cell], np.asarray(params["b"]), rtol=1e-4, atol=1e-6)
    # train_loss (and the last history point) is measured on the data seed's own set, which no step trained on
    x = fresh_rows(key, T, n, S)
    history.append(float(loss(params, x, w)))
    np.testing.assert_allclose(a["history"][cell], history, rtol=1e-4)
    np.testing.assert_allclose(a["train_loss"][cell], history[-1], rtol=1e-4)
    one = train.train(cfg, hyper, init_key(sweep, 0), x, fresh=lambda step: fresh_batch(key, step, T, n, S))
    np.testing.assert_allclose(np.asarray(one.params["W"]), np.asarray(params["W"]), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(one.history), history, rtol=1e-4)


def test_fresh_refuses_repeated_points():
    with pytest.raises(ValueError, match=r"repeat=\(1, 3\) needs a fixed training set"):
        Sweep(T=(9,), sparsity=0.8, repeat=(1, 3), fresh=True)


def test_reduced_preset_is_hobbhahns_setting_with_the_papers_training():
    cfg, sweep, batch = smdd.PRESETS["reduced"]
    assert (cfg.n_features, cfg.n_hidden, sweep.sparsity) == (1000, 2, 0.99)
    assert (cfg.steps, cfg.warmup_steps, cfg.schedule) == (50_000, 2500, "cosine")
    assert (sweep.lr, sweep.weight_decay, sweep.data_seeds, sweep.init_seeds) == ((1e-3,), (1e-2,), 4, 1)
    assert (cfg.b1, cfg.b2, cfg.eps, cfg.reduction, cfg.hidden_relu) == (0.9, 0.999, 1e-8, "sum", False)
    assert len(sweep.T) >= 17 and (sweep.T[0], sweep.T[-1]) == (3, 3000) and sweep.n_test == 10_000
    infinite = smdd.infinite_sweep(sweep, batch)
    assert infinite.fresh and infinite.T == (1000,) and infinite.data_seeds == 4
    assert smdd.infinite_sweep(sweep, 0) is None
    with pytest.raises(ValueError, match="infinite_batch must be a whole number >= 0"):
        smdd.infinite_sweep(sweep, -5)


@pytest.mark.parametrize("name", ["smdd-wd", "smdd-steps"])
def test_appendix_presets_run_at_m_4(name):
    paper_cfg, _, _ = smdd_settings.SETTINGS[name].presets["paper"]
    quick_cfg, _, _ = smdd_settings.SETTINGS[name].presets["quick"]
    assert (paper_cfg.n_hidden, paper_cfg.n_features, quick_cfg.n_hidden) == (4, 10_000, 2)


def test_smdd_run_adds_the_infinite_data_line(tiny_smdd, tmp_path):
    summary = studies.reproduce("smdd", "tiny", tmp_path, draw=False)
    parts = open_parts(tmp_path)[1]
    assert parts["infinite"]["test_loss"].shape == (1, 1, 1, 1, 2) and parts[""]["test_loss"].shape == (2, 1, 1, 1, 2)
    inf = summary["results"]["infinite"]
    np.testing.assert_allclose(inf["test_loss"], parts["infinite"]["test_loss"].mean(), rtol=1e-6)
    assert summary["config"]["infinite_batch"] == 50 and summary["n_runs"] == 6
    assert parts["infinite"].coords["T"].tolist() == [50]
    no_line = studies.reproduce("smdd", "tiny", tmp_path / "none", overrides={"infinite_batch": "0"}, draw=False)
    assert no_line["results"]["infinite"] is None and no_line["n_runs"] == 4
    assert no_line["results"]["by_T"] == summary["results"]["by_T"]
    _check_new_summaries(summary, tmp_path)


def test_repeat_points(key):
    x = data.sparse_features(key, 20, 30, 0.8)
    r = np.asarray(repeat_points(x, 2, 4))
    for i in range(2):
        assert sum(np.array_equal(row, r[i]) for row in r) == 4
    np.testing.assert_array_equal(r[8:], np.asarray(x[8:]))  # the rest unchanged
    np.testing.assert_array_equal(r[:12], np.asarray(repeat_points(x[:12], 2, 4)))  # sets nest
    rows = repeat_points(data.sparse_rows(key, 20, 30, 0.8), 2, 4)
    np.testing.assert_allclose(np.asarray(data.to_dense(rows, 30)), r, rtol=1e-6)
    with pytest.raises(ValueError, match="repeat 5 points 5 times in 20 rows"):
        repeat_points(x, 5, 5)


def test_hidden_norm_stats_trend_and_the_feature_dim_after_generalising():
    h = np.array([[[3.0, 4.0], [0.0, 1.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 2.0], [2.0, 0.0]]])  # [seeds, T, m]
    got = smdd.hidden_norm_stats(h)
    assert got["hidden_norm_mean"] == pytest.approx(11 / 6) and got["hidden_norm_max"] == pytest.approx(3.5)
    assert got["hidden_norm_median"] == pytest.approx(1.5)
    assert got["hidden_norm_std"] == pytest.approx((np.std([5, 1, 0]) + np.std([1, 2, 2])) / 2)
    assert got["hidden_norm_q10"] == pytest.approx(np.quantile([5, 1, 0, 1, 2, 2], 0.1))
    T = [1, 2, 3, 4, 5]
    rising = np.array([[2.0, 2.0], [3.0, 3.0], [4.0, 4.0], [5.0, 5.0], [9.0, 9.0]])
    assert smdd.trend(T, rising, 2, 4)["label"] == "rise" and smdd.trend(T, rising, 2, 4)["T"] == [2, 3, 4]
    assert smdd.trend(T, rising, 2, 4)["last_over_first"] == pytest.approx(5 / 3)
    assert smdd.trend(T, rising[::-1], 1, 5)["label"] == "fall"
    assert smdd.trend(T, np.array([[1.0]] * 2 + [[1.2]] + [[1.0]] * 2), 1, 5)["label"] == "plateau"
    assert smdd.trend(T, np.array([[1.0], [2.0], [1.1], [1.0], [1.0]]), 1, 5)["label"] == "mixed"
    assert smdd.trend(T, rising, 2.5, 3.5) is None  # one T in the range
    # largest feature dimensionality per seed: a jump at T = 3, a peak at 4, a fall by more than the seeds' spread
    top = np.array([[0.05, 0.05], [0.06, 0.06], [0.30, 0.32], [0.35, 0.34], [0.25, 0.26]])
    fdim = np.concatenate([top[..., None], np.full(top.shape + (5,), 0.01)], -1)  # [T, seeds, 6]
    got = smdd.after_generalising(T, fdim)
    assert (got["generalising_T"], got["peak_T"], got["largest_T"]) == (3, 4, 5)
    assert got["drop_from_peak"] == pytest.approx(0.345 - 0.255) and got["falls"]
    assert got["top5_mean_after"] == pytest.approx([(0.31 + 4 * 0.01) / 5, (0.345 + 0.04) / 5, (0.255 + 0.04) / 5])
    noisy = top.copy()
    noisy[-1] = [0.15, 0.36]  # the same mean drop, within the seeds' spread at the largest T
    assert not smdd.after_generalising(T, np.concatenate([noisy[..., None], fdim[..., 1:]], -1))["falls"]


def _check_new_summaries(summary, tmp_path):
    """The hidden-vector norms, the data dimensionality's deviation from m / T, Jermyn's
    norm comparison and the feature dimensionality after generalising, against loops
    over the saved runs; their figures."""
    res, main = summary["results"], open_parts(tmp_path)[1][""]
    h, dd = main["hidden"][:, 0, 0, 0], main["data_dim"][:, 0, 0, 0]  # [T, seeds, T_max, ...]
    for i, row in enumerate(res["by_T"]):
        T = row["T"]
        norms = [[float(np.sqrt(sum(float(v) ** 2 for v in h[i, s, t]))) for t in range(T)] for s in range(2)]
        assert row["hidden_norm_mean"] == pytest.approx(sum(sum(n) / T for n in norms) / 2, rel=1e-5)
        assert row["hidden_norm_max"] == pytest.approx((max(norms[0]) + max(norms[1])) / 2, rel=1e-5)
        dev = [sum(float(v) for v in dd[i, s, :T]) / T * T / 2 - 1 for s in range(2)]
        assert row["data_dim_mean_rel_dev"] == pytest.approx(sum(dev) / 2, abs=1e-5)
        assert row["data_dim_mean_rel_dev_max_abs"] == pytest.approx(max(abs(d) for d in dev), abs=1e-5)
    assert res["data_dim_mean_rel_dev_max_abs"] == max(r["data_dim_mean_rel_dev_max_abs"] for r in res["by_T"])
    j = int(np.argmax([r["hidden_norm_mean"] for r in res["by_T"]]))
    assert res["hidden_norm_mean_peak_T"] == res["by_T"][j]["T"]
    jermyn = res["jermyn_norms"]
    assert jermyn["T_scale"] == pytest.approx(40 / 10_000) and jermyn["W_norm"] is None  # no T in 0.4-4 but one
    assert jermyn["b_norm_peak"] == pytest.approx(max(r["b_norm"] for r in res["by_T"]), rel=1e-6)
    after = res["feature_dim_after_generalising"]
    assert after["generalising_T"] == 8
    assert after["feature_dim_max_after"] == pytest.approx([res["by_T"][1]["feature_dim_max"]])
    T = [r["T"] for r in res["by_T"]]
    W_norm = np.sqrt((main["W"][:, 0, 0, 0] ** 2).sum((-2, -1)))
    figures.hidden_norms(T, main["hidden"][:, 0, 0, 0], tmp_path / "h.png")
    figures.norms_vs_jermyn(T, W_norm, W_norm, (3, 8), smdd.trend(T, W_norm, 3, 8), tmp_path / "n.png")
    figures.feature_dim_after(T, main["feature_dim"][:, 0, 0, 0], 8, np.array([0.3, 0.2]), tmp_path / "f.png")
    for name in ("h", "n", "f"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
