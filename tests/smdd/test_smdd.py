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
from jaxmem.studies.smdd import smdd
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
