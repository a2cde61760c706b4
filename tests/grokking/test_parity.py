"""``parity-pruning``'s measures against hand computations, the L1/L2 decay steps against
a looped Adam, and a tiny end-to-end run (slow)."""
import dataclasses

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmem.studies.grokking import parity_grid, parity_pruning as pp
from jaxmem.train import optim


def hand_matrix():
    """``W_in`` of 4 digits (2 relevant) + bias, 3 neurons."""
    return np.array([[1.0, 0.0, 2.0],    # relevant
                     [0.0, -2.0, 0.0],   # relevant
                     [0.5, 0.0, 0.0],    # distracting
                     [0.0, 0.04, -1.0],  # distracting
                     [9.0, 9.0, 9.0]])   # bias: left out


def test_relevant_share_and_distractor_norm_by_hand():
    w = hand_matrix()
    relevant, distract = 1 + 4 + 4, 0.25 + 0.0016 + 1
    assert pp.relevant_share(w, 2) == pytest.approx(relevant / (relevant + distract))
    assert pp.distractor_norm(w, 2) == pytest.approx(np.sqrt(distract))
    assert pp.n_alive(w, 2, 0.05) == 2  # 0.5 and -1.0; 0.04 counts as pruned
    assert pp.n_alive(w, 2, 0.01) == 3
    # the jax version parity-grid records agrees, and leading axes broadcast
    rng = np.random.default_rng(0)
    many = rng.normal(size=(3, 4, 31, 8))
    want = float(parity_grid.relevant_share(jnp.asarray(many[1, 2]), 3))
    np.testing.assert_allclose(pp.relevant_share(many, 3)[1, 2], want, rtol=1e-5)


def test_neuron_stats_counts_copies():
    # 2 relevant digits; neurons: A, 2 x A (a copy at twice the scale), B, a weak one, a dead one
    a, b = np.array([1.0, 1.0]), np.array([1.0, -1.0])
    cols = [(a, -0.5, 1.0), (2 * a, -1.0, 2.0), (b, 0.0, -1.0), (0.01 * b, 0.0, 0.01), (np.zeros(2), 0.3, 0.0)]
    w_in = np.zeros((2 + 3 + 1, len(cols)))
    w_out = np.zeros(len(cols))
    for i, (rel, bias, out) in enumerate(cols):
        w_in[:2, i], w_in[-1, i], w_out[i] = rel, bias, out
    w_in[2:5] = 0.3  # distracting weights do not enter the measures
    s = pp.neuron_stats(w_in, w_out, 2, active=0.1, same=0.9)
    c = np.array([np.sqrt(2), 4 * np.sqrt(2), np.sqrt(2), 1e-4 * np.sqrt(2), 0.0])
    assert s["n_active"] == 3 and s["n_distinct"] == 2 and s["redundancy"] == pytest.approx(1.5)
    assert s["effective"] == pytest.approx(c.sum() ** 2 / np.square(c).sum())
    # max cosine: the two copies see each other (1.0); B's best is A (cos of [1,-1,0,-1] and [1,1,-.5,1])
    cos_b = (1 - 1 + 0 - 1) / (np.sqrt(3) * np.sqrt(3.25))
    assert s["max_cosine"] == pytest.approx((1 + 1 + cos_b) / 3)
    orthogonal = np.zeros((3 + 1 + 1, 3))
    orthogonal[[0, 1, 2], [0, 1, 2]] = 1.0  # each neuron on its own relevant digit
    equal = pp.neuron_stats(orthogonal, np.ones(3), 3, 0.1, 0.9)
    assert equal["effective"] == pytest.approx(3.0) and equal["n_distinct"] == 3


def test_loss_rise_and_steps_by_hand():
    steps = np.arange(1, 9) * 10
    loss = np.array([1.0, 0.5, 0.1, 0.2, 0.15, 0.05, 0.3, 0.01])
    r = pp.loss_rise(loss, steps, 20, 60)  # 0.5, 0.1, 0.2, 0.15, 0.05: the rise 0.1 -> 0.2
    assert (r["factor"], r["min_step"], r["peak_step"]) == (pytest.approx(2.0), 30, 40)
    r = pp.loss_rise(loss, steps, 10, 80)  # 0.05 -> 0.3 is the larger rise
    assert (r["factor"], r["min_step"], r["peak_step"]) == (pytest.approx(6.0), 60, 70)
    r = pp.loss_rise(np.array([3.0, 2.0, 1.0]), np.array([1, 2, 3]), 1, 3)
    assert r["factor"] == 1.0
    assert np.isnan(pp.loss_rise(loss, steps, np.nan, 50)["factor"])
    mask = np.array([[0, 1, 0, 1, 1], [0, 0, 0, 0, 0]], bool)
    st = np.array([10, 20, 30, 40, 50])
    np.testing.assert_array_equal(pp.first_at_or_after(mask, st, np.array([25.0, 0.0])), [40.0, np.nan])
    np.testing.assert_array_equal(pp.first_at_or_after(mask, st), [20.0, np.nan])
    np.testing.assert_array_equal(pp.at_step(np.arange(10).reshape(2, 5), st, np.array([30.0, np.nan])), [2.0, np.nan])


def test_analyse_on_built_histories():
    cfg = dataclasses.replace(pp.PRESETS["quick"], seeds=1, steps=100, n_history=10, n_bits=4, n_relevant=2, hidden=3)
    assert list(cfg.history_steps) == list(range(10, 101, 10))
    train_acc = np.array([[0.5, 0.7, 1, 1, 1, 1, 1, 1, 1, 1]])      # memorised at 30
    test_acc = np.array([[0.5, 0.5, 0.5, 0.5, 0.6, 0.8, 1, 1, 1, 1]])  # generalised at 70
    train_loss = np.array([[0.7, 0.3, 0.01, 0.005, 0.006, 0.008, 0.007, 0.004, 0.004, 0.004]])
    test_loss = np.array([[0.7, 0.7, 0.7, 0.6, 0.5, 0.2, 0.02, 0.005, 0.004, 0.004]])
    alive = np.array([[5, 6, 6, 6, 4, 2, 1, 0, 0, 0]])
    dn = np.array([[1.0, 2, 4, 3, 2.5, 1.5, 0.8, 0.2, 0.1, 0.1]])
    share = np.linspace(0.2, 0.9, 10)[None]
    w = hand_matrix()
    a = {"train_accuracy": train_acc, "test_accuracy": test_acc, "train_loss": train_loss, "test_loss": test_loss,
         "n_alive": alive, "distractor_norm": dn, "relevant_share": share, "w_in_init": w[None], "w_out_init":
         np.ones((1, 3)), "w_in": w[None], "w_out": np.ones((1, 3))}
    r = pp.analyse(a, cfg)[0]
    assert (r["memorise_step"], r["generalise_step"], r["test_loss_matches_step"]) == (30, 70, 80)
    assert r["train_loss_rise"]["factor"] == pytest.approx(0.008 / 0.005)
    assert (r["train_loss_rise"]["min_step"], r["train_loss_rise"]["peak_step"]) == (40, 60)
    assert r["rise_peak_minus_generalise"] == -10
    # from generalising (70) to all pruned (80): 0.007 -> 0.004, no rise
    assert r["train_loss_rise_after"]["factor"] == 1.0 and r["train_loss_rise_after"]["min_step"] == 70
    assert (r["distractor_norm_peak"], r["distractor_norm_peak_step"]) == (4.0, 30)
    assert r["distractor_norm_at_generalise_over_peak"] == pytest.approx(0.2)
    assert (r["alive_at_generalise"], r["all_pruned_step"], r["all_pruned_minus_generalise"]) == (1, 80, 10)
    assert r["relevant_share_at_generalise"] == pytest.approx(share[0, 6])
    assert r["relevant_share_start"] == pytest.approx(pp.relevant_share(w, 2))
    # log test loss falls fastest from 60 to 70 (0.2 -> 0.02: log 10 in 10 steps)
    assert (r["test_drop_step"], r["alive_at_drop"], r["all_pruned_minus_drop"]) == (70, 1, 10)


def _adam_reference(w, grads, lr, wd, b1, b2, eps, decay):
    """Adam by hand, with L1 (``wd sign(w)`` into the gradient) or decoupled L2 decay."""
    w = np.array(w, np.float64)
    m = v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        g = g + wd * np.sign(w) if decay == "l1" else g
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        step = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        w = w - lr * step - (lr * wd * w if decay == "l2" else 0.0)
    return w


@pytest.mark.parametrize("decay", ["l1", "l2"])
def test_decay_steps_match_a_looped_adam(decay):
    w0 = np.array([2.0, -3.0, 0.0, 0.5])
    grads = [np.array([0.1, 0.1, 0.2, -0.3]), np.array([-0.2, 0.05, 0.0, 0.1]), np.array([0.0, 0.3, -0.1, 0.2])]
    hp = {"lr": 0.01, "weight_decay": 0.5, "b1": 0.99, "b2": 0.98}
    tx = optim.build(optim.Optim("adamw", "constant", 0.0, 0.99, 0.98, 1e-8, decay), hp, 100)
    w = jnp.asarray(w0, jnp.float32)
    state = tx.init(w)
    for g in grads:
        updates, state = tx.update(jnp.asarray(g, jnp.float32), state, w)
        w = optax.apply_updates(w, updates)
    want = _adam_reference(w0, grads, 0.01, 0.5, 0.99, 0.98, 1e-8, decay)
    np.testing.assert_allclose(np.asarray(w), want, rtol=1e-5, atol=1e-6)
    # the L1 subgradient pushes against the weight's sign: with no loss gradient at all
    # the first step moves every nonzero weight by lr towards 0 (Adam normalises wd sign(w))
    if decay == "l1":
        first = _adam_reference(w0, [np.zeros(4)], 0.01, 0.5, 0.99, 0.98, 1e-8, "l1")
        np.testing.assert_allclose(first, w0 - 0.01 * np.sign(w0), atol=1e-9)


def test_config_checks():
    for bad, field in ((dict(decays=("l1",)), "pair up"),
                       (dict(weight_decays=(1e-4, 1e-4, 0.3), decays=("l1",) * 3), "distinct"),
                       (dict(decays=("l1", "l3", "l2")), "decays"),
                       (dict(weight_decays=(1e-4, 1e-5, -1.0)), "weight_decays"),
                       (dict(n_relevant=30), "n_relevant"), (dict(active=1.5), "active")):
        with pytest.raises(ValueError, match=field):
            pp.PruningConfig(**bad)
    assert pp.PRESETS["paper"] is pp.PRESETS["article"]
    art = pp.PRESETS["article"]
    assert (art.n_train, art.seeds, art.decays[0], art.lr, art.b1, art.b2) == (1200, 9, "l1", 3e-3, 0.99, 0.98)
    assert art.arms == ("l1-0.0001", "l1-3e-06", "l2-0.3")


@pytest.mark.slow
def test_tiny_run_records_consistent_measures(tmp_path, monkeypatch):
    from jaxmem import studies

    tiny = pp.PruningConfig(decays=("l1", "l2"), weight_decays=(1e-3, 0.1), n_train=64, hidden=6, seeds=2, steps=40,
                            n_history=4, n_bits=6, n_relevant=2, n_test=32, n_saved=4)
    monkeypatch.setitem(pp.PRESETS, "tiny", tiny)
    summary = studies.reproduce("parity-pruning", "tiny", tmp_path / "pp")
    from jaxmem import store
    ds = store.load(tmp_path / "pp")
    res = summary["results"]["by_arm"]
    assert tiny.arms == ("l1-0.001", "l2-0.1")
    for arm in tiny.arms:
        w_hist = np.asarray(ds[f"{arm}/w_in_history"])
        share = np.asarray(ds[f"{arm}/relevant_share"])
        np.testing.assert_allclose(share[0], pp.relevant_share(w_hist, 2), rtol=1e-6)
        np.testing.assert_allclose(w_hist[-1], np.asarray(ds[f"{arm}/w_in"])[0], rtol=1e-6)
        assert res[arm]["n_seeds"] == 2 and len(res[arm]["runs"]) == 2
    for name in ("pruning_dynamics.png", "neuron_maps.png", "redundant_neurons.png"):
        assert (tmp_path / "pp" / name).stat().st_size > 0


def test_parity_grid_share_by_outcome_by_hand():
    share = np.array([0.9, 0.5, 0.1, 0.7, np.nan])
    code = np.array([0, 0, 2, 1, 4])
    out = parity_grid.share_by_outcome(share, code)
    assert out["memorise then generalise"] == {"n": 2, "median": pytest.approx(0.7), "min": 0.5, "max": 0.9}
    assert out["memorise only"]["median"] == pytest.approx(0.1) and out["generalise directly"]["n"] == 1
    assert out["learn nothing"] == {"n": 0, "median": None, "min": None, "max": None}
    assert out["diverged"]["n"] == 1 and out["diverged"]["median"] is None
