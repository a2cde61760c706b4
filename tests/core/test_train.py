import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmem import data, train
from jaxmem.studies.smdd.sweep import Sweep, holdout_key, init_key, run_sweep, training_set
from jaxmem.train import optim, relu


def test_schedule_endpoints_exact():
    cfg = train.TrainConfig(n_features=4, steps=1000, warmup_frac=0.05)
    s = optim.unit_schedule(relu.optim_config(cfg), cfg.steps)
    assert float(s(0)) == 0.0
    assert float(s(cfg.warmup_steps)) == 1.0
    assert float(s(cfg.steps)) == 0.0
    assert 0.0 < float(s(cfg.warmup_steps // 2)) < 1.0
    np.testing.assert_allclose(float(s((cfg.warmup_steps + cfg.steps) / 2)), 0.5, atol=1e-6)


def test_constant_schedule_starts_at_the_peak_without_warmup():
    """The old constant schedule gave lr 0 at step 0 when there was no warm-up."""
    for warmup, first in ((0.0, 1.0), (0.1, 0.0)):
        cfg = train.TrainConfig(n_features=4, steps=100, warmup_frac=warmup, schedule="constant")
        s = optim.unit_schedule(relu.optim_config(cfg), cfg.steps)
        assert float(s(0)) == first and float(s(10)) == 1.0 and float(s(99)) == 1.0


@pytest.mark.slow  # over 20 s on the 2-core CPU: kept out of the default run
def test_traced_lr_optimiser_equals_plain_optax_adamw(key):
    cfg = train.TrainConfig(n_features=20, n_hidden=2, steps=60, n_history=60)
    x = data.sparse_features(key, 16, 20, 0.8)
    lr, wd = 3e-2, 0.1
    plain = optax.adamw(optax.warmup_cosine_decay_schedule(0.0, lr, cfg.warmup_steps, cfg.steps, 0.0),
                        weight_decay=wd)
    params = train.init_state(cfg, train.Hyper(lr, wd), key).params
    loss = train.loss_fn(cfg)
    w = jnp.ones(16)
    state = plain.init(params)
    for _ in range(cfg.steps):
        grads = jax.grad(loss)(params, x, w)
        updates, state = plain.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    # the traced version, vmapped over two lrs so that lr really is a traced value
    hyper = train.Hyper(jnp.array([lr, 1e-3]), jnp.array([wd, wd]), jnp.array([1.0, 1.0]))
    result = jax.jit(jax.vmap(lambda h: train.train(cfg, h, key, x)))(hyper)
    for name in ("W", "b"):
        np.testing.assert_allclose(np.asarray(result.params[name][0]), np.asarray(params[name]), rtol=2e-5, atol=2e-6)
    assert not np.allclose(np.asarray(result.params["W"][1]), np.asarray(params["W"]))


def test_history_is_the_loss_after_every_log_every_steps(key):
    """history[k] is the train loss after (k + 1) * log_every updates; the last is the final loss."""
    flat = dict(schedule="constant", warmup_frac=0.0)  # the same lr at every step, whatever the length
    cfg = train.TrainConfig(n_features=10, steps=30, n_history=10, **flat)
    assert cfg.log_every == 3 and cfg.n_records == 10
    x = data.sparse_features(key, 8, 10, 0.5)
    result = train.train(cfg, train.Hyper(1e-2), key, x)
    for k in (0, 4):
        short = train.TrainConfig(n_features=10, steps=3 * (k + 1), n_history=k + 1, **flat)
        after = train.train(short, train.Hyper(1e-2), key, x)
        np.testing.assert_allclose(float(result.history[k]), float(after.train_loss), rtol=1e-6)
    np.testing.assert_allclose(float(result.history[-1]), float(result.train_loss), rtol=1e-6)
    assert result.history[-1] < result.history[0]


def test_sweep_equals_loop_of_single_runs_with_best_of_init():
    cfg = train.TrainConfig(n_features=40, n_hidden=2, steps=40, n_history=8)
    sweep = Sweep(T=(3, 7, 20), sparsity=0.9, data_seeds=2, init_seeds=2, weight_decay=(1e-2, 0.5), n_test=64)
    out = run_sweep(cfg, sweep, progress=False, runs_batch=2)
    a = out.arrays
    assert a["train_loss"].shape == (3, 1, 2, 1, 2)
    k = data.max_nonzeros(40, 0.9)
    test = data.to_dense(data.sparse_rows(holdout_key(sweep), 64, 40, 0.9, k=k), 40)
    single = jax.jit(lambda h, key, x: train.train(cfg, h, key, x))
    for iT, T in enumerate(sweep.T):
        for iw, wd in enumerate(sweep.weight_decay):
            for s in range(2):
                x = training_set(sweep, 40, T, s)
                losses, results = [], []
                for init in range(2):
                    key = init_key(sweep, init)
                    r = single(train.Hyper(1e-3, wd, 1.0), key, x)
                    losses.append(float(r.train_loss))
                    results.append(r)
                best = int(np.argmin(losses))
                cell = (iT, 0, iw, 0, s)
                assert a["best_init"][cell] == best
                np.testing.assert_allclose(a["init_train_loss"][cell], losses, rtol=1e-4)
                np.testing.assert_allclose(a["W"][cell], np.asarray(results[best].params["W"]), rtol=1e-4, atol=1e-6)
                np.testing.assert_allclose(a["history"][cell], np.asarray(results[best].history), rtol=1e-4)
                test_loss = float(train.loss_fn(cfg)(results[best].params, test, jnp.ones(64)))
                np.testing.assert_allclose(a["test_loss"][cell], test_loss, rtol=1e-4)
                assert np.all(np.isnan(a["data_dim"][cell][T:])) and np.all(np.isfinite(a["data_dim"][cell][:T]))
                assert np.all(a["hidden"][cell][T:] == 0)
                h = np.asarray(x) @ np.asarray(results[best].params["W"]).T
                np.testing.assert_allclose(a["hidden"][cell][:T], h, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_a_diverging_run_is_flagged_and_the_others_keep_their_results():
    cfg = train.TrainConfig(n_features=30, n_hidden=2, steps=20, n_history=4)
    good = Sweep(T=(5, 9), sparsity=0.8, data_seeds=1, lr=(1e-2,), n_test=16)
    both = Sweep(T=(5, 9), sparsity=0.8, data_seeds=1, lr=(1e-2, 1e38), n_test=16)
    a_good = run_sweep(cfg, good, progress=False).arrays
    a_both = run_sweep(cfg, both, progress=False).arrays
    assert not a_both["diverged"][:, 0].any() and a_both["diverged"][:, 1].all()
    np.testing.assert_allclose(a_both["test_loss"][:, :1], a_good["test_loss"], rtol=1e-5)


@pytest.mark.parametrize("kwargs, bad", [({"T": (3, 0)}, "T must be a positive integer, got 0"),
                                         ({"sparsity": 1.0}, "sparsity.*1.0"),
                                         ({"sparsity": -0.5}, "sparsity.*-0.5"),
                                         ({"lr": (-1e-3,)}, "lr.*-0.001")])
def test_bad_sweep_input(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        Sweep(**{"T": (3,), "sparsity": 0.9, **kwargs})


def test_bad_config():
    with pytest.raises(ValueError, match="n_hidden must be a positive integer, got 0"):
        train.TrainConfig(n_features=10, n_hidden=0)
    with pytest.raises(ValueError, match="steps.*-5"):
        train.TrainConfig(n_features=10, steps=-5)


@pytest.mark.slow
def test_same_seed_and_settings_give_identical_numbers():
    cfg = train.TrainConfig(n_features=30, n_hidden=2, steps=20, n_history=4)
    sweep = Sweep(T=(4, 9), sparsity=0.8, data_seeds=2, n_test=16)
    first, second = (run_sweep(cfg, sweep, progress=False).arrays for _ in range(2))
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
    other = run_sweep(cfg, Sweep(T=(4, 9), sparsity=0.8, data_seeds=2, n_test=16, seed=1), progress=False).arrays
    assert not np.allclose(other["W"], first["W"])


class _Killed(Exception):
    pass


@pytest.mark.slow
def test_resume_after_a_kill_equals_the_uninterrupted_sweep(tmp_path):
    from jaxmem.progress import Progress

    cfg = train.TrainConfig(n_features=30, n_hidden=2, steps=20, n_history=4)
    sweep = Sweep(T=(3, 4, 40, 60), sparsity=0.8, data_seeds=2, n_test=16)
    whole = run_sweep(cfg, sweep, progress=False).arrays

    class KillInSecondBucket(Progress):
        def update(self, work, label):
            if label.startswith("bucket 2/"):
                raise _Killed(label)

    with pytest.raises(_Killed):
        run_sweep(cfg, sweep, progress=KillInSecondBucket(1.0, enabled=False), checkpoint_dir=tmp_path)
    assert len(list(tmp_path.glob("grid-*.done.npz"))) == 1  # the first bucket was saved

    seen = []

    class Record(Progress):
        def update(self, work, label):
            seen.append(label)

    resumed = run_sweep(cfg, sweep, progress=Record(1.0, enabled=False), checkpoint_dir=tmp_path).arrays
    assert "loaded from" in seen[0] and not any("loaded" in s for s in seen[1:])
    for name in whole:
        np.testing.assert_array_equal(resumed[name], whole[name])


@pytest.mark.parametrize("elements", [1e3, 3e5, 2e7, 1e9])
def test_memory_planner_respects_the_budget(elements):
    from jaxmem.studies.smdd.sweep import BYTES_PER_ELEMENT, runs_per_batch

    budget = 64 * 2**30
    for n_runs in (1, 7, 500):
        batch = runs_per_batch(n_runs, elements, backend="gpu", memory_bytes=budget)
        assert 1 <= batch <= n_runs
        assert batch * BYTES_PER_ELEMENT * elements <= 0.5 * budget
        assert batch == n_runs or (batch + 1) * BYTES_PER_ELEMENT * elements > 0.5 * budget


def test_memory_planner_refuses_a_run_that_cannot_fit():
    from jaxmem.studies.smdd.sweep import runs_per_batch

    with pytest.raises(ValueError, match=r"T=1e5 needs about 2235\.2 GiB, more than the 12\.0 GiB"):
        runs_per_batch(4, 1e5 * 1e6, backend="gpu", memory_bytes=24 * 2**30, label="T=1e5")


@pytest.mark.slow
def test_repeated_points_in_a_sweep_match_repeat_points():
    cfg = train.TrainConfig(n_features=30, n_hidden=2, steps=20, n_history=4)
    sweep = Sweep(T=(9, 12), sparsity=0.8, data_seeds=1, n_test=16, repeat=(2, 3))
    a = run_sweep(cfg, sweep, progress=False, runs_batch=1).arrays
    for iT, T in enumerate(sweep.T):
        x = training_set(sweep, 30, T, 0)
        np.testing.assert_array_equal(x[:6], np.tile(x[:2], (3, 1)))  # 2 points, 3 times each
        key = init_key(sweep, 0)
        r = train.train(cfg, train.Hyper(), key, x)
        np.testing.assert_allclose(a["W"][iT, 0, 0, 0, 0], np.asarray(r.params["W"]), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match=r"repeat=\(4, 3\): cannot repeat 4 points 3 times in a set of T = 9"):
        Sweep(T=(9, 12), sparsity=0.8, repeat=(4, 3))
