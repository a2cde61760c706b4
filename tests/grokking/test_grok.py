"""Grokking suite: models, optimizer steps on run_grid, outcome classes, Fourier analysis,
construction, and the three experiments end to end on tiny presets (``conftest.py``)."""
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmem
from jaxmem import cli, studies, tasks
from jaxmem.studies.grokking import construct
from jaxmem.models import modular, parity
from jaxmem.store import flatten, open_parts
from jaxmem.studies import protocol
from jaxmem.studies.grokking import fourier, grok, modular_addition, parity_grid
from jaxmem.studies.grokking import lr as grokking_lr


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


W0 = np.array([1.5, -2.0, 0.25])


def _quadratic(decay, optimizer="adamw", steps=1, lr=0.1, weight_decay=0.5):
    """``grok.fit`` on ``|w - 1|^2`` (one "example"): the study's optimizer settings."""
    cfg = grok.GrokConfig(steps=steps, optimizer=optimizer, decay=decay, n_history=1)
    model = grok.GridModel(lambda key, hp: {"w": jnp.asarray(W0, jnp.float32)},
                           lambda p, batch, hp: jnp.sum(jnp.square(p["w"] - 1.0)) + 0.0 * batch["x"],
                           lambda *args: {}, None)
    res = grok.fit(cfg, model, {"x": jnp.zeros(1)}, None,
                   {"lr": [lr], "weight_decay": [weight_decay], "b1": [0.9], "b2": [0.98]})
    return np.asarray(res.params["w"]).reshape(-1), 2 * (W0 - 1.0)


def test_one_l2_decay_step_matches_hand_computation():
    w1, g = _quadratic("l2")
    # Adam's first step: bias-corrected m / sqrt(v) = g / (|g| + eps); decoupled decay
    np.testing.assert_allclose(w1, W0 - 0.1 * (g / (np.abs(g) + 1e-8) + 0.5 * W0), rtol=1e-6)


def test_one_l1_decay_step_matches_hand_computation():
    """L1 as the explorable's code: wd * sign(w) joins the gradient before Adam."""
    w1, g = _quadratic("l1")
    g_l1 = g + 0.5 * np.sign(W0)
    np.testing.assert_allclose(w1, W0 - 0.1 * g_l1 / (np.abs(g_l1) + 1e-8), rtol=1e-6)
    # three steps against optax.chain(l1, adam), the source's optimiser
    l1 = optax.GradientTransformation(lambda p: optax.EmptyState(),
                                      lambda u, s, p: (jax.tree.map(lambda g_, w: g_ + 0.5 * jnp.sign(w), u, p), s))
    opt = optax.chain(l1, optax.adam(0.1, b1=0.9, b2=0.98))
    loss = lambda p: jnp.sum(jnp.square(p["w"] - 1.0))
    p = {"w": jnp.asarray(W0, jnp.float32)}
    state = opt.init(p)
    for _ in range(3):
        updates, state = opt.update(jax.grad(loss)(p), state, p)
        p = optax.apply_updates(p, updates)
    np.testing.assert_allclose(_quadratic("l1", steps=3)[0], p["w"], rtol=1e-6)


def test_one_sgd_momentum_step_matches_hand_computation():
    w1, g = _quadratic("l2", "sgd")
    np.testing.assert_allclose(w1, W0 - 0.1 * (g + 0.5 * W0), rtol=1e-6)
    # the second step carries momentum b1 = 0.9: d_2 = g_2 + 0.9 g_1
    w2 = _quadratic("l2", "sgd", steps=2)[0]
    g2 = 2 * (w1 - 1.0)
    np.testing.assert_allclose(w2, w1 - 0.1 * (g2 + 0.9 * g + 0.5 * w1), rtol=1e-5)


def test_objective_apart_is_the_weighted_mean_and_its_gradient():
    """``grok.apart``: the value and gradient of ``sum(w * loss) / sum(w)``, computed apart."""
    loss = lambda p, b, hp: (b["x"] @ p["w"] - b["y"]) ** 2
    batch = {"x": jnp.array([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]]), "y": jnp.array([1.0, 0.0, 2.0])}
    weights, params = jnp.array([1.0, 1.0, 0.0]), {"w": jnp.array([0.3, -0.2])}
    value, grads = jax.jit(jax.value_and_grad(grok.apart(loss)))(params, batch, weights, {})
    mean = lambda p: jnp.sum(weights * loss(p, batch, {})) / jnp.sum(weights)
    np.testing.assert_allclose(value, mean(params), rtol=1e-6)
    np.testing.assert_allclose(grads["w"], jax.grad(mean)(params)["w"], rtol=1e-6)


def test_losses_match_hand_computation():
    logits = jnp.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    labels = jnp.array([0, 2])
    ce = np.asarray(grok.example_losses(logits, labels, "ce"))
    expected = [-np.log(np.exp(2) / (np.exp(2) + 1 + np.exp(-1))), -np.log(1 / (2 * np.exp(0.5) + 1))]
    np.testing.assert_allclose(ce, expected, rtol=1e-6)
    np.testing.assert_allclose(grok.example_losses(logits, labels, "mse"), [1 + 0 + 1, 0.25 + 0.25 + 1])
    cfg = grok.GrokConfig()
    loss, acc = grok.evaluate(cfg, logits, labels, jnp.array([1.0, 0.0]))
    assert float(acc) == 1.0 and np.isclose(float(loss), expected[0])
    # the explorable's -mean(onehot * log_softmax): cross-entropy / classes
    np.testing.assert_allclose(grok.example_losses(logits, labels, "ce", class_mean=True), np.array(expected) / 3,
                               rtol=1e-6)
    # a recorded loss floored per example at float32's -log(1 - eps) = 2^-23 (to first order)
    assert np.isclose(grok.FLOAT32_LOSS_FLOOR, 2.0 ** -23, rtol=1e-6)
    sure = jnp.array([[40.0, 0.0, 0.0], [0.0, 0.0, 40.0]])  # cross-entropy about 8e-18
    floored, _ = grok.evaluate(dataclasses.replace(cfg, loss_floor=grok.FLOAT32_LOSS_FLOOR), sure, labels)
    assert float(grok.evaluate(cfg, sure, labels)[0]) < 1e-16 and np.isclose(float(floored), 2.0 ** -23, rtol=1e-6)


def test_faithful_init_has_the_sources_shapes_scales_and_dtypes():
    """haiku's VarianceScaling(2.0) embedding and TruncatedNormal(1 / sqrt(fan_in))
    projections; embedding float32 and projections float64 as the source runs."""
    p, d, h = 67, 500, 24
    with jax.enable_x64(True):
        params = modular.init(jax.random.key(0), p, d, h, precision="source")
        assert {k: v.shape for k, v in params.items()} == {"embed": (p, d), "in_proj": (d, h), "out_proj": (h, d)}
        assert params["embed"].dtype == jnp.float32 and params["in_proj"].dtype == jnp.float64
        assert modular.apply(params, jnp.array([1]), jnp.array([2])).dtype == jnp.float64
        cut = modular.TRUNCATED_STD
        for name, std, bound in (("embed", np.sqrt(2 / p), 2 * np.sqrt(2 / p) / cut),
                                 ("in_proj", cut / np.sqrt(d), 2 / np.sqrt(d)), ("out_proj", cut / np.sqrt(h), 2 / np.sqrt(h))):
            w = np.asarray(params[name], np.float64)
            assert abs(w.std() / std - 1) < 0.03 and np.abs(w).max() <= bound * (1 + 1e-6), name
            assert abs(w.mean()) < 0.05 * std, name
        flat = modular.init(jax.random.key(0), p, d, h, factored=False, precision="source")
        np.testing.assert_allclose(flat["W_in"], modular.input_weights(params), rtol=1e-12)
        np.testing.assert_allclose(flat["W_out"], modular.output_weights(params), rtol=1e-12)
    with pytest.raises(ValueError, match="enable_x64"):
        modular.init(jax.random.key(0), p, 8, 4, precision="float64")


def test_faithful_loss_matches_a_float64_hand_computation():
    p = 13
    with jax.enable_x64(True):
        split = tasks.modular_addition(jax.random.key(3), p)
        params = modular.init(jax.random.key(4), p, 20, 6, precision="source")
        a, b, y = (np.asarray(v) for v in (split.train_inputs["a"], split.train_inputs["b"], split.train_labels))
        E, Wh, Wo = (np.asarray(params[k], np.float64) for k in ("embed", "in_proj", "out_proj"))
        one_hot = np.eye(p)
        logits = np.maximum((one_hot[a] @ E) @ Wh + (one_hot[b] @ E) @ Wh, 0) @ Wo @ E.T
        logp = logits - logits.max(1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(1, keepdims=True))
        hand = -np.mean(one_hot[y] * logp)
        ours = grok.example_losses(modular.apply(params, split.train_inputs["a"], split.train_inputs["b"]),
                                   split.train_labels, "ce", class_mean=True).mean()
        np.testing.assert_allclose(float(ours), hand, rtol=1e-12)


def _plain_optax_run(cfg, n, hid, wd, seed):
    """One parity run by hand: its own unpadded train set, ``optax.chain(l1, adam)`` at a
    constant lr, a history point every ``log_every`` steps."""
    k_data, k_init = jax.random.split(jax.random.fold_in(jax.random.key(cfg.seed), seed))
    full = tasks.sparse_parity(k_data, n, max(cfg.train_sizes), cfg.n_test, cfg.n_bits, cfg.n_relevant)
    x, y = full.train_inputs[:n], full.train_labels[:n]
    l1 = optax.GradientTransformation(lambda p: optax.EmptyState(),
                                      lambda u, s, p: (jax.tree.map(lambda g_, w: g_ + wd * jnp.sign(w), u, p), s))
    opt = optax.chain(l1, optax.adam(cfg.lr, b1=cfg.b1, b2=cfg.b2))
    gcfg = cfg.grok_config
    params = parity.init(k_init, cfg.n_bits, hid, cfg.init_scale)
    state = opt.init(params)

    @jax.jit
    def block(params, state):
        def step(carry, _):
            p, s = carry
            g = jax.grad(lambda q: jnp.mean(grok.example_losses(parity.apply(q, x), y, "ce")))(p)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        (params, state), _ = jax.lax.scan(step, (params, state), length=gcfg.log_every)
        return params, state, grok.evaluate(gcfg, parity.apply(params, x), y)[0], \
            grok.evaluate(gcfg, parity.apply(params, full.test_inputs), full.test_labels)[1]

    train_loss, test_accuracy = [], []
    for _ in range(gcfg.n_records):
        params, state, loss, acc = block(params, state)
        train_loss.append(float(loss))
        test_accuracy.append(float(acc))
    return params, np.array(train_loss), np.array(test_accuracy)


@pytest.mark.slow
@pytest.mark.parametrize("batch", [0, 1])
def test_grid_equals_plain_optax_runs_alone(batch):
    """The grid (padded to the largest train set; vmapped, or lax.map) gives the numbers
    of each run trained alone by a plain optax loop at its own train size, with L1 decay;
    a run alone on ``run_grid`` (``train_grid`` of one run: no padding) too."""
    cfg = parity_grid.ParityConfig(train_sizes=(30, 50), hidden_sizes=(4, 8), weight_decays=(0.0, 0.3), seeds=2,
                                   steps=40, n_history=4, n_bits=8, n_relevant=2, n_test=64, decay="l1")
    runs = parity_grid.grid(cfg)
    res, _, _ = parity_grid.train_grid(cfg, runs, batch)
    assert res["history"].train_loss.shape == (16, 4)
    for i in range(0, len(runs["seed"]), 3):
        n, hid, wd, seed = (runs[k][i].item() for k in ("train_size", "hidden", "weight_decay", "seed"))
        params, train_loss, test_accuracy = _plain_optax_run(cfg, n, hid, wd, seed)
        np.testing.assert_allclose(res["history"].train_loss[i], train_loss, rtol=2e-4, atol=1e-6)
        np.testing.assert_allclose(res["history"].test_accuracy[i], test_accuracy)
        np.testing.assert_allclose(res["relevant_share"][i], parity_grid.relevant_share(params["W_in"], 2), rtol=2e-4)
        alone, _, _ = parity_grid.train_grid(cfg, {k: v[i:i + 1] for k, v in runs.items()})
        np.testing.assert_allclose(alone["history"].train_loss[0], train_loss, rtol=2e-4, atol=1e-6)


@pytest.mark.slow
def test_buckets_change_only_round_off_and_seeds_are_their_own():
    """Train sizes in buckets (``max_pad_ratio=1.3``) or one padded set: the same runs up
    to round-off; a seed's numbers do not depend on the other seeds in its grid."""
    cfg = parity_grid.ParityConfig(train_sizes=(20, 60), hidden_sizes=(4,), weight_decays=(0.1,), seeds=3, steps=30,
                                   n_history=3, n_bits=8, n_relevant=2, n_test=64)
    runs = parity_grid.grid(cfg)
    padded, _, _ = parity_grid.train_grid(cfg, runs)
    buckets, _, _ = parity_grid.train_grid(cfg, runs, max_pad_ratio=1.3)
    np.testing.assert_allclose(buckets["history"].train_loss, padded["history"].train_loss, rtol=1e-4, atol=1e-6)
    last = {k: v[runs["seed"] == 2] for k, v in runs.items()}
    alone, _, _ = parity_grid.train_grid(cfg, last)
    np.testing.assert_array_equal(alone["history"].test_loss, padded["history"].test_loss[runs["seed"] == 2])


@pytest.mark.slow
def test_modular_seeds_and_axes_are_laid_out_in_order():
    """``train_seeds`` over an lr axis: runs in (lr, seed) order, each the run trained alone."""
    cfg = modular_addition.ModularConfig(p=11, n_embed=6, n_hidden=8, seeds=2, steps=20, n_history=2,
                                         precision="float32")
    res, _, _ = modular_addition.train_seeds(cfg, "factored", {"lr": [1e-3, 1e-2]}, snapshot=True)
    assert res.history.train_loss.shape == (4, 2) and res.params["embed"].shape == (4, 11, 6)
    assert res.history.params["W_in"].shape == (4, 2, 11, 8)
    alone, _, _ = modular_addition.train_seeds(dataclasses.replace(cfg, lr=1e-2), "factored", seeds=[1])
    np.testing.assert_array_equal(alone.history.test_loss[0], res.history.test_loss[3])
    np.testing.assert_array_equal(alone.params["in_proj"][0], res.params["in_proj"][3])


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


def _pairs(inputs):
    return set(zip(np.asarray(inputs["a"]).tolist(), np.asarray(inputs["b"]).tolist()))


def test_modular_split_covers_all_pairs_once():
    split = tasks.modular_addition(jax.random.key(0), 11, 0.4, symmetric=False)
    a = np.concatenate([split.train_inputs["a"], split.test_inputs["a"]])
    b = np.concatenate([split.train_inputs["b"], split.test_inputs["b"]])
    assert len(split.train_labels) == 48 and sorted(a * 11 + b) == list(range(121))
    assert np.all(np.concatenate([split.train_labels, split.test_labels]) == (a + b) % 11)


def test_symmetric_split_has_no_mirrored_test_pair():
    """The explorable's split: 911 of the 2,278 pairs a <= b train, and no test pair's
    mirror is in the training set; the ordered split leaks about train_frac of them."""
    split = tasks.modular_addition(jax.random.key(0), 67)
    train, test = _pairs(split.train_inputs), _pairs(split.test_inputs)
    assert len(train) == 911 and len(test) == 2278 - 911 and not train & test
    assert all(a <= b for a, b in train | test)
    assert not {(b, a) for a, b in test} & train
    assert np.all(split.test_labels == (np.asarray(split.test_inputs["a"]) + np.asarray(split.test_inputs["b"])) % 67)
    leaky = tasks.modular_addition(jax.random.key(0), 67, symmetric=False)
    train, test = _pairs(leaky.train_inputs), _pairs(leaky.test_inputs)
    assert 0.35 < np.mean([(b, a) in train for a, b in test]) < 0.45


def test_loss_classes_follow_the_articles_rule_at_each_threshold():
    """Hand-made loss curves on each side of each threshold of the figure code."""
    steps = np.arange(1, 6) * 100
    t, r = grok.LOSS_THRESHOLD, grok.RATIO_THRESHOLD
    curves = {  # name: (train loss curve, test loss curve, expected class)
        "learn nothing": ([1.0, 0.5, 0.1, 2 * t, 1.5 * t], [1.0] * 5, 3),
        "memorise only": ([1.0, 0.1, 0.5 * t, 0.5 * t, 0.5 * t], [1.0, 1.0, 1.0, 0.5, 2 * t], 2),
        "generalise directly": ([1.0, 0.1, 1e-6, 1e-7, 1e-7], [1.0, 0.2, 0.99 * r * 1e-6, 1e-6, 1e-6], 1),
        "grok": ([1.0, 0.1, 1e-7, 1e-7, 1e-7], [1.0, 0.9, 1.01 * r * 1e-7, 1e-3, 0.5 * t], 0),
    }
    train = np.array([c[0] for c in curves.values()])
    test = np.array([c[1] for c in curves.values()])
    ones = np.ones_like(train)
    out = grok.outcomes(grok.History(train, test, ones, ones), steps)
    assert out["loss_outcome"].tolist() == [c[2] for c in curves.values()]
    np.testing.assert_allclose(out["min_train_loss"], train.min(1))
    # the thresholds are settings
    loose = grok.outcomes(grok.History(train, test, ones, ones), steps, loss_threshold=3 * t, ratio_threshold=2 * r)
    assert loose["loss_outcome"].tolist() == [2, 0, 1, 1]  # memorise-only train loss now counts; its ratio is 2e5


def test_plateau_is_the_longest_memorised_stretch_below_half_test_accuracy():
    steps = np.arange(1, 11) * 250
    train = np.array([[0.5, 1, 1, 1, 1, 1, 1, 1, 1, 1]], float)
    test = np.array([[0.0, 0.1, 0.2, 0.6, 0.1, 0.1, 0.1, 0.1, 0.3, 1.0]])
    out = grok.outcomes(grok.History(train, train, train, test), steps)
    assert out["plateau_steps"].tolist() == [5 * 250]  # points 4-8
    assert [v.tolist() for v in grok.longest_run(np.array([[0, 1, 1, 0, 1, 1, 1]]))] == [[4], [3]]


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
    (lambda: modular_addition.ModularConfig(precision="float16"), "precision"),
    (lambda: modular_addition.ModularConfig(variants=("tied",)), "variants"),
    (lambda: modular_addition.ModularConfig(variants=("factored", "factored")), "variants"),
    (lambda: modular_addition.ModularConfig(seeds=0), "seeds must be a positive integer, got 0"),
    (lambda: modular_addition.ModularConfig(steps=2.5), "steps must be a positive integer"),
    (lambda: parity_grid.ParityConfig(weight_decays=(0.1, float("nan"))), "weight_decays"),
    (lambda: parity_grid.ParityConfig(n_relevant=31), "n_relevant"),
    (lambda: parity_grid.ParityConfig(decay="l3"), "decay"),
    (lambda: grokking_lr.LrGrid("g", (1e-3, 0.0)), "grid 'g': lrs must be positive"),
    (lambda: grokking_lr.LrGrid("g", (1e-3,), optimizer="lion"), "grid 'g': optimizer must be one of"),
    (lambda: grokking_lr.LrGrid("a/b", (1e-3,)), "name"),
    (lambda: grokking_lr.GrokLrConfig(grids=(grokking_lr.LrGrid("a", (1e-3,)), grokking_lr.LrGrid("a", (1e-2,)))),
     "distinct names"),
    (lambda: grokking_lr.GrokLrConfig(grids=(grokking_lr.LrGrid("a", (1e-3,), p=1),)), "p must"),
    (lambda: grokking_lr.GrokLrConfig(sgd_momentum=1.0), "sgd_momentum"),
])
def test_bad_input_names_the_value(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def _no_unnamed_dims(ds):
    assert not [d for d in ds.dims if "_dim" in d], list(ds.dims)


def _saved_results(out) -> dict:
    return json.loads((out / "summary.json").read_text())["results"]


@pytest.mark.slow
def test_parity_grid_tiny_run_matches_its_saved_arrays(tiny_parity, tmp_path):
    """Headline numbers from the saved grid; an override is recorded, and --resume with
    another refused naming the field."""
    cfg, out = tiny_parity, tmp_path / "pg"
    summary = studies.reproduce("parity-grid", "tiny", out, overrides={"weight_decays": "0.0,1.0"})
    r = summary["results"]
    assert summary["n_runs"] == r["n_runs"] == 16 and sum(r["outcomes"].values()) == 16
    assert summary["config"]["overrides"] == {"weight_decays": "0.0,1.0"} and summary["config"]["optimizer"] == "adamw"
    ds = jaxmem.load(out)
    _no_unnamed_dims(ds)
    assert ds.train_loss.dims == ("train_size", "hidden", "weight_decay", "seed", "step")
    assert ds.hidden.values.tolist() == [4, 6] and ds.step.values.tolist() == [5, 10, 15, 20]
    # the outcomes saved are those of the saved histories, and the summary counts them
    h = grok.History(*(ds[k].values for k in ("train_loss", "test_loss", "train_accuracy", "test_accuracy")))
    for k, v in cfg.outcomes(h).items():
        np.testing.assert_array_equal(ds[k].values, v, err_msg=k)
    assert r["outcome_grid"] == grok.count_classes(ds.loss_outcome.values).tolist()
    assert sum(r["outcomes_by"]["weight_decay"]["1.0"].values()) == 8
    run = r["runs"][-1]  # runs in the grid's order: the last is the last cell
    assert (run["train_size"], run["hidden"], run["weight_decay"], run["seed"]) == (30, 6, 1.0, 1)
    last = ds.isel(train_size=-1, hidden=-1, weight_decay=-1, seed=-1)
    assert run["min_train_loss"] == pytest.approx(float(last.train_loss.min()), rel=1e-6)
    assert run["outcome"] == grok.OUTCOMES[int(last.loss_outcome)]
    assert run["relevant_share"] == pytest.approx(float(last.relevant_share), rel=1e-6)
    pngs = {"outcome_maps.png", "outcome_maps_accuracy.png", "outcome_examples.png"}
    assert pngs <= {f.name for f in out.iterdir()}
    for f in pngs:
        (out / f).unlink()
    assert cli.main(["plot", str(out)]) == 0 and pngs <= {f.name for f in out.iterdir()}
    with pytest.raises(ValueError, match=r"weight_decays: \[0.0, 1.0\] -> \[0.1\]"):
        studies.reproduce("parity-grid", "tiny", out, resume=True, overrides={"weight_decays": "0.1"})
    again = studies.reproduce("parity-grid", "tiny", out, resume=True, draw=False)  # same config: nothing trains
    assert again["resumed_parts"] == [""] and again["results"] == _saved_results(out)


@pytest.mark.slow  # over 20 s on the 2-core CPU: kept out of the default run
def test_modular_addition_tiny_run_matches_its_saved_arrays(tiny_modular, tmp_path):
    cfg, out = tiny_modular, tmp_path / "ma"
    summary = studies.reproduce("modular-addition", "tiny", out, overrides={"steps": "20"})
    r = summary["results"]
    assert summary["n_runs"] == 4 and summary["config"]["overrides"] == {"steps": "20"}
    assert set(summary["parts"]) == {"factored", "unfactored", "constructed"}
    assert r["constructed"] == {"p": [7], "n_neurons": [4, 5], **{k: modular_addition.constructed(cfg)[k]
                                                                   for k in ("relu_accuracy", "square_accuracy")}}
    assert r["constructed"]["square_accuracy"][0][1] == 1.0
    assert len(list(out.glob("*.png"))) == 9
    ds = jaxmem.load(out)
    _no_unnamed_dims(ds)
    assert ds["factored/w_input"].dims == ("seed", "input", "neuron")
    assert ds["factored/mode_loss"].dims == ("seed", "snapshot_step", "mode") and ds.mode.values.tolist() == [1, 2, 3]
    assert ds["factored/w_input"].dtype == np.float64  # the source's precision: float64 outside the embedding
    for variant in cfg.variants:
        part = r[variant]
        assert sum(part["outcomes"].values()) == len(part["runs"]) == 2
        for s, run in enumerate(part["runs"]):
            assert run["final_test_accuracy"] == ds[f"{variant}/test_accuracy"].values[s, -1]
            freq = fourier.neuron_frequencies(ds[f"{variant}/w_input"].values[s])
            assert run["key_frequencies"] == freq["key_frequencies"].tolist()
            assert run["live_neurons"] == int(freq["live"].sum())
    with pytest.raises(ValueError, match="steps: 20 -> 7"):
        studies.reproduce("modular-addition", "tiny", out, resume=True, overrides={"steps": "7"})


@pytest.mark.slow  # over 20 s on the 2-core CPU; run_grid's and smdd's kill-resume tests stay in the default run
def test_modular_addition_resumes_after_a_kill(tiny_modular, tmp_path, monkeypatch):
    """Killed while training its second part: --resume trains only that part, and the
    run equals one never interrupted."""
    whole = studies.reproduce("modular-addition", "tiny", tmp_path / "whole", draw=False)
    real, calls = modular_addition.train_seeds, []

    def killed_at_the_second(cfg, variant, *args, **kwargs):
        calls.append(variant)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(cfg, variant, *args, **kwargs)

    monkeypatch.setattr(modular_addition, "train_seeds", killed_at_the_second)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        studies.reproduce("modular-addition", "tiny", out, draw=False)
    manifest, parts = open_parts(out)
    assert manifest["status"] == "running" and list(parts) == ["factored"]
    with pytest.raises(ValueError, match="unfinished"):
        studies.reproduce("modular-addition", "tiny", out, draw=False)
    calls.clear()
    resumed = studies.reproduce("modular-addition", "tiny", out, resume=True, draw=False)
    assert calls == ["unfactored"] and resumed["resumed_parts"] == ["factored"]
    assert _saved_results(out) == _saved_results(tmp_path / "whole") and resumed["results"] == whole["results"]
    a, b = open_parts(out)[1], open_parts(tmp_path / "whole")[1]
    for name in b:
        for key, value in flatten(b[name].arrays).items():
            np.testing.assert_array_equal(flatten(a[name].arrays)[key], value, err_msg=f"{name}/{key}")


@pytest.mark.slow
def test_grokking_lr_tiny_run_matches_its_saved_arrays(tiny_lr, tmp_path):
    out = tmp_path / "glr"
    summary = studies.reproduce("grokking-lr", "tiny", out, overrides={"model.steps": "20"})
    r = summary["results"]
    assert summary["n_runs"] == 4 + 4 and list(r) == ["adam", "scale", "claims"] and (out / "lr_phase.png").exists()
    assert summary["config"]["overrides"] == {"model.steps": "20"} and summary["config"]["model"]["steps"] == 20
    assert (r["scale"]["p"], r["scale"]["loss"], r["adam"]["optimizer"]) == (7, "ce", "adamw")
    ds = jaxmem.load(out)
    _no_unnamed_dims(ds)
    assert ds["adam/test_accuracy"].dims == ("lr", "weight_decay", "init_scale", "seed", "step")
    assert ds["adam/test_accuracy"].dtype == np.float32  # the model's precision="float32"
    adam = jaxmem.load(out, part="adam")
    assert adam.lr.values.tolist() == [1e-3, 1e-2] and adam.weight_decay.values.tolist() == [0.0, 1.0]
    assert len(r["adam"]["cells"]) == 4 and sum(r["adam"]["outcomes"].values()) == 4
    for cell in r["adam"]["cells"]:
        at = adam.sel(lr=cell["lr"], weight_decay=cell["weight_decay"], init_scale=cell["init_scale"])
        assert cell["memorised"] == int(np.isfinite(at.memorise_step).sum())
        assert cell["median_plateau_steps"] == float(np.median(at.plateau_steps))
        assert cell["outcomes"] == grok.outcome_counts(at.outcome.values)
    np.testing.assert_array_equal(adam.memorise_step.values,
                                  grok.first_step(adam.train_accuracy.values, adam.step.values))
    assert [c["init_scale"] for c in r["scale"]["cells"]] == [0.1, 0.3, 1.0, 3.0]
    assert ds["scale/test_accuracy"].dims[:3] == ("scale/lr", "scale/weight_decay", "scale/init_scale")
    with pytest.raises(ValueError, match="model.steps: 20 -> 7"):
        studies.reproduce("grokking-lr", "tiny", out, resume=True, overrides={"model.steps": "7"})


@pytest.mark.parametrize("name, field", [
    ("modular-addition", "seeds"), ("parity-grid", "seeds"),
    ("grokking-lr", "model.seeds"),
])
def test_seeds_sets_the_seed_count(name, field):
    module = studies.get(name)
    cfg = protocol.configure(module, "quick", seeds=3)
    assert (cfg.model.seeds if field == "model.seeds" else cfg.seeds) == 3


def test_quick_float32_is_the_quick_preset_in_float32():
    quick, f32 = (protocol.configure(modular_addition, p) for p in ("quick", "quick-float32"))
    assert f32 == dataclasses.replace(quick, precision="float32") and f32.hp_dtype == jnp.float32
    with quick.precision_context():
        assert jax.config.jax_enable_x64
    with f32.precision_context():
        assert not jax.config.jax_enable_x64
