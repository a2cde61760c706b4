"""Grokking suite: models, optimizer steps, outcome classes, Fourier analysis, construction."""
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmem import construct, fourier, grok, tasks
from jaxmem.experiments import grokking_lr, modular_addition, parity_grid
from jaxmem.models import modular, parity


@pytest.mark.parametrize("p", [7, 31, 67, 113])
def test_square_construction_is_exact_for_more_than_four_neurons(p):
    a, b = np.divmod(np.arange(p * p), p)
    for n in (5, 6, 8, 24):
        logits = modular.apply(construct.modular_circle(p, n), a, b, "square")
        assert np.all(np.asarray(jnp.argmax(logits, -1)) == (a + b) % p), (p, n)
    # N = 4: the 4θ terms no longer cancel, and the answer is lost
    logits = modular.apply(construct.modular_circle(p, 4), a, b, "square")
    assert np.mean(np.asarray(jnp.argmax(logits, -1)) == (a + b) % p) < 0.5


def test_square_construction_matches_its_closed_form():
    p, n = 67, 7
    a, b = np.divmod(np.arange(p * p), p)
    w = 2 * np.pi / p
    c = np.arange(p)
    closed = n * np.cos((a - b) * w / 2)[:, None] ** 2 * np.cos((a + b)[:, None] * w - c[None] * w)
    got = np.asarray(modular.apply(construct.modular_circle(p, n, np.float64), a, b, "square"))
    np.testing.assert_allclose(got, closed, atol=1e-4)


def test_relu_construction_is_close_but_not_always_exact():
    cfg = dataclasses.replace(modular_addition.ModularConfig(), construct_p=(67,), construct_n=(5, 6, 8))
    out = modular_addition.constructed(cfg)
    assert out["square_accuracy"] == [[1.0, 1.0, 1.0]]
    assert out["relu_accuracy"][0][0] == 1.0 and min(out["relu_accuracy"][0]) < 1.0


def test_factored_model_equals_one_hot_formula():
    p, d, h = 11, 5, 4
    params = modular.init(jax.random.key(0), p, d, h, tied=False)
    a, b = jnp.array([0, 3, 10]), jnp.array([5, 3, 1])
    one_hot = jax.nn.one_hot
    w_input = params["embed"] @ params["in_proj"]
    expected = jax.nn.relu((one_hot(a, p) + one_hot(b, p)) @ w_input) @ params["out_proj"] @ params["unembed"].T
    np.testing.assert_allclose(modular.apply(params, a, b), expected, rtol=1e-5, atol=1e-5)
    tied = modular.init(jax.random.key(0), p, d, h)
    assert "unembed" not in tied and modular.output_weights(tied).shape == (h, p)
    flat = modular.init(jax.random.key(0), p, d, h, factored=False)
    assert set(flat) == {"W_in", "W_out"} and modular.apply(flat, a, b, "square").shape == (3, p)


def test_planted_frequency_is_recovered():
    p, k, h = 67, 7, 6
    rng = np.random.default_rng(0)
    i = np.arange(p)[:, None]
    amp, phase = rng.uniform(1, 3, h), rng.uniform(0, 2 * np.pi, h)
    w = amp * np.cos(2 * np.pi * k * i / p + phase) + 0.01 * rng.normal(size=(p, h))
    coef = np.asarray(fourier.coefficients(jnp.asarray(w.T, jnp.float32)))
    np.testing.assert_allclose(coef[:, k - 1, 0], amp * np.cos(phase), atol=0.01)
    np.testing.assert_allclose(coef[:, k - 1, 1], -amp * np.sin(phase), atol=0.01)
    found = fourier.neuron_frequencies(w)
    assert np.all(found["dominant"] == k) and found["key_frequencies"].tolist() == [k]
    assert found["key_share"] > 0.99
    # a second frequency on half the neurons becomes a second key frequency
    w[:, :3] = np.cos(2 * np.pi * 20 * i / p)
    assert fourier.neuron_frequencies(w)["key_frequencies"].tolist() == [k, 20]


def test_group_logits_add_up_and_mode_loss_finds_the_mode():
    p = 31
    params = modular.init(jax.random.key(1), p, 8, 10)
    a, b, labels = modular_addition.all_pairs(p)
    h = modular.hidden(params, a, b)
    groups = jnp.arange(10) % 3
    parts = fourier.group_logits(h, modular.output_weights(params), groups, jnp.arange(3))
    np.testing.assert_allclose(parts.sum(0), modular.apply(params, a, b), rtol=1e-4, atol=1e-4)
    c = jnp.arange(p)
    planted = 5.0 * jnp.cos(2 * jnp.pi * 4 * ((a + b)[:, None] - c[None]) / p)
    losses = np.asarray(fourier.mode_losses(planted, labels))
    assert np.argmin(losses) == 3 and losses[3] < 0.6 * np.delete(losses, 3).min()


def _quadratic_step(decay, optimizer="adamw"):
    cfg = grok.GrokConfig(steps=1, optimizer=optimizer, decay=decay)
    hyper = grok.GrokHyper(lr=0.1, weight_decay=0.5, b1=0.9, b2=0.98)
    w0 = jnp.array([1.5, -2.0, 0.25])
    g = 2 * (w0 - jnp.array([1.0, 1.0, 1.0]))  # gradient of |w - 1|^2
    opt = grok.direction(cfg, hyper)
    step_dir, _ = opt.update({"w": g}, opt.init({"w": w0}))
    return np.asarray(grok.decayed(cfg, hyper, {"w": w0}, step_dir)["w"]), np.asarray(w0), np.asarray(g)


def test_one_l2_decay_step_matches_hand_computation():
    w1, w0, g = _quadratic_step("l2")
    # Adam's first step: bias-corrected m / sqrt(v) = g / (|g| + eps)
    np.testing.assert_allclose(w1, w0 - 0.1 * (g / (np.abs(g) + 1e-8) + 0.5 * w0), rtol=1e-6)


def test_one_l1_decay_step_matches_hand_computation():
    w1, w0, g = _quadratic_step("l1")
    np.testing.assert_allclose(w1, w0 - 0.1 * (g / (np.abs(g) + 1e-8) + 0.5 * np.sign(w0)), rtol=1e-6)


def test_one_sgd_momentum_step_matches_hand_computation():
    w1, w0, g = _quadratic_step("l2", "sgd")
    np.testing.assert_allclose(w1, w0 - 0.1 * (g + 0.5 * w0), rtol=1e-6)


def test_losses_match_hand_computation():
    logits = jnp.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    labels = jnp.array([0, 2])
    ce = np.asarray(grok.example_losses(logits, labels, "ce"))
    expected = [-np.log(np.exp(2) / (np.exp(2) + 1 + np.exp(-1))), -np.log(1 / (2 * np.exp(0.5) + 1))]
    np.testing.assert_allclose(ce, expected, rtol=1e-6)
    np.testing.assert_allclose(grok.example_losses(logits, labels, "mse"), [1 + 0 + 1, 0.25 + 0.25 + 1])
    loss, acc = grok.evaluate(logits, labels, "ce", jnp.array([1.0, 0.0]))
    assert float(acc) == 1.0 and np.isclose(float(loss), expected[0])


@pytest.mark.parametrize("batch", [0, 1])
def test_grid_program_equals_looped_unpadded_runs(batch):
    """The one-program grid (vmapped, or lax.map) gives the numbers of each run trained
    alone at its own train size, with L1 decay."""
    cfg = parity_grid.ParityConfig(train_sizes=(30, 50), hidden_sizes=(4, 8), weight_decays=(0.0, 0.3), seeds=2,
                                   steps=40, n_history=4, n_bits=8, n_relevant=2, n_test=64, decay="l1")
    runs = parity_grid.grid(cfg)
    res, _, _ = parity_grid.train_grid(cfg, runs, batch)
    gcfg = cfg.grok_config
    alone = jax.jit(lambda p, d, h: grok.train(gcfg, parity.apply, h, p, d))
    for i in range(0, len(runs["seed"]), 3):
        n, hid, wd, seed = (runs[k][i].item() for k in ("train_size", "hidden", "weight_decay", "seed"))
        k_data, k_init = jax.random.split(jax.random.fold_in(jax.random.key(cfg.seed), seed))
        full = tasks.sparse_parity(k_data, n, max(cfg.train_sizes), cfg.n_test, cfg.n_bits, cfg.n_relevant)
        split = full._replace(train_inputs=full.train_inputs[:n], train_labels=full.train_labels[:n],
                              train_weights=full.train_weights[:n])
        out = alone(parity.init(k_init, cfg.n_bits, hid), split, grok.GrokHyper(cfg.lr, wd, cfg.b1, cfg.b2))
        np.testing.assert_allclose(res["history"].train_loss[i], out.history.train_loss, rtol=2e-4, atol=1e-6)
        np.testing.assert_allclose(res["history"].test_accuracy[i], out.history.test_accuracy)
        np.testing.assert_allclose(res["relevant_share"][i], parity_grid.relevant_share(out.params["W_in"], 2),
                                   rtol=2e-4)


def test_outcome_classes_follow_the_documented_thresholds():
    steps = np.arange(1, 11) * 100
    acc = lambda first: np.where(np.arange(10) >= first, 1.0, 0.5)
    train = np.stack([acc(1), acc(1), acc(1), np.full(10, 0.5), acc(1)])
    test = np.stack([acc(5), acc(2), np.full(10, 0.5), np.full(10, 0.5), acc(5)])
    loss = np.ones((5, 10))
    loss[4, -1] = np.nan
    h = grok.History(loss, loss * 2, train, test)
    out = grok.outcomes(h, steps)
    assert out["outcome"].tolist() == [0, 1, 2, 3, 4]
    assert out["memorise_step"][0] == 200 and out["generalise_step"][0] == 600
    assert np.isnan(out["generalise_step"][2]) and np.allclose(out["max_loss_ratio"][:4], 2.0)
    counts = grok.outcome_counts(out["outcome"])
    assert sum(counts.values()) == 5 and all(v == 1 for v in counts.values())


def test_modular_split_covers_all_pairs_once():
    split = tasks.modular_addition(jax.random.key(0), 11, 0.4)
    a = np.concatenate([split.train_inputs["a"], split.test_inputs["a"]])
    b = np.concatenate([split.train_inputs["b"], split.test_inputs["b"]])
    assert len(split.train_labels) == 48 and sorted(a * 11 + b) == list(range(121))
    assert np.all(np.concatenate([split.train_labels, split.test_labels]) == (a + b) % 11)


@pytest.mark.parametrize("make, match", [
    (lambda: tasks.modular_addition(jax.random.key(0), 11, 1.5), "train_frac"),
    (lambda: tasks.modular_addition(jax.random.key(0), 1, 0.4), "p must"),
    (lambda: tasks.sparse_parity(jax.random.key(0), 10, -5), "n_train_max"),
    (lambda: tasks.sparse_parity(jax.random.key(0), 10, 20, n_bits=3, n_relevant=4), "n_relevant"),
    (lambda: grok.GrokConfig(optimizer="lion"), "optimizer"),
    (lambda: grok.GrokConfig(decay="l3"), "decay"),
    (lambda: grok.GrokConfig(steps=-1), "steps"),
    (lambda: parity_grid.ParityConfig(hidden_sizes=(16, -2)), "hidden_sizes"),
    (lambda: modular_addition.ModularConfig(activation="gelu"), "activation"),
])
def test_bad_input_names_the_value(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_experiments_end_to_end(tmp_path, monkeypatch):
    """Tiny presets of the three experiments: files written, counts add up, resume reuses."""
    monkeypatch.setitem(parity_grid.PRESETS, "quick", parity_grid.ParityConfig(
        train_sizes=(40, 60), hidden_sizes=(4, 8), weight_decays=(0.0, 1.0), seeds=2, steps=60, n_history=6,
        n_bits=8, n_relevant=2, n_test=64))
    summary = parity_grid.run("quick", tmp_path / "pg", progress=False)
    assert summary["n_runs"] == 16 and sum(summary["results"]["outcomes"].values()) == 16
    assert len(summary["results"]["runs"]) == 16 and "min_test_loss" in summary["results"]["runs"][0]
    assert {"outcome_maps.png", "outcome_examples.png", "runs.npz"} <= {f.name for f in (tmp_path / "pg").iterdir()}

    small = modular_addition.ModularConfig(p=11, n_embed=6, n_hidden=8, seeds=2, steps=60, n_history=6,
                                           construct_p=(11,), construct_n=(4, 5))
    monkeypatch.setitem(modular_addition.PRESETS, "quick", small)
    summary = modular_addition.run("quick", tmp_path / "ma", progress=False)
    assert summary["results"]["constructed"]["square_accuracy"] == [[pytest.approx(summary["results"]["constructed"]
                                                                                   ["square_accuracy"][0][0]), 1.0]]
    assert sum(summary["results"]["factored"]["outcomes"].values()) == 2
    assert len(list((tmp_path / "ma").glob("*.png"))) == 7
    again = modular_addition.run("quick", tmp_path / "ma", resume=True, progress=False)
    assert again["results"]["factored"] == json.loads(json.dumps(summary["results"]["factored"]))

    monkeypatch.setitem(grokking_lr.PRESETS, "quick", grokking_lr.GrokLrConfig(
        model=dataclasses.replace(small, seeds=1), adam_lrs=(1e-3, 1e-2), sgd_lrs=(0.1,), weight_decays=(0.0, 1.0),
        init_scales=(0.5,)))
    summary = grokking_lr.run("quick", tmp_path / "glr", progress=False)
    assert summary["n_runs"] == 4 + 2 + 1 and (tmp_path / "glr" / "lr_phase.png").exists()


def test_resume_after_a_kill_reuses_arrays_and_refuses_another_config(tmp_path):
    from jaxmem import results

    config = {"steps": 10, "lr": [0.1]}
    assert results.resume_arrays(tmp_path, config, resume=True) == {}
    results.save_arrays(tmp_path / "runs.npz", {"a": np.arange(3)})  # killed before summary.json
    assert results.resume_arrays(tmp_path, config, resume=True)["a"].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="another config"):
        results.resume_arrays(tmp_path, {"steps": 11, "lr": [0.1]}, resume=True)
    assert results.resume_arrays(tmp_path, {"steps": 11}, resume=False) == {}
