import jax.numpy as jnp
import numpy as np
import pytest

from jaxmem import construct, data, identity, train


@pytest.mark.parametrize("n", [3, 4, 7, 12, 50, 100])
def test_circle_construction_reconstructs_identity_to_float_precision(n):
    p64 = construct.circle(n, np.float64)
    np.testing.assert_allclose(identity.reconstruction(p64["W"], p64["b"]), np.eye(n), atol=1e-9)
    p32 = construct.circle(n)
    np.testing.assert_allclose(identity.reconstruction(p32["W"], p32["b"]), np.eye(n), atol=2e-4)


def test_classification_of_planted_solutions():
    n = 7
    circle, failed = construct.circle(n), construct.symmetric_failure(n)
    rotated = construct.circle(n)
    c, s = np.cos(0.3), np.sin(0.3)
    rotated["W"] = np.array([[c, -s], [s, c]]) @ rotated["W"]
    W = np.stack([circle["W"], failed["W"], rotated["W"]])
    b = np.stack([circle["b"], failed["b"], rotated["b"]])
    out = identity.classify(W, b)
    assert out["cls"].tolist() == [0, 1, 0]
    assert out["n_learned"].tolist() == [7, 6, 7]
    assert out["n_dead"].tolist() == [0, 1, 0]
    np.testing.assert_allclose(out["dead_bias"][1], 1 / n, rtol=1e-6)
    # a dead column whose bias is not at 1/n is not the symmetric failure
    wrong = {k: v.copy() for k, v in failed.items()}
    wrong["b"][-1] = -0.5
    assert identity.classify(wrong["W"], wrong["b"])["cls"] == 2
    np.testing.assert_allclose(identity.angle_gaps(circle["W"]), 360 / n, atol=1e-4)


def test_dead_feature_bias_converges_to_one_over_n():
    n = 7
    start = construct.symmetric_failure(n)
    start["b"][-1] = 0.6  # dead column, bias away from the mean of its target
    cfg = train.TrainConfig(n_features=n, steps=400, warmup_frac=0.0, schedule="constant", n_history=4)
    result = train.fit(cfg, train.Hyper(1e-2, 0.0, 1.0), {k: jnp.asarray(v) for k, v in start.items()},
                       data.identity(n))
    assert abs(float(result.params["b"][-1]) - 1 / n) < 0.01
    assert float(jnp.linalg.norm(result.params["W"][:, -1])) < 0.05


def test_no_bias_bound_and_cross_construction():
    for n in (4, 6, 9):
        W = construct.cross(n)["W"]
        assert identity.reconstructed(W, None).sum() == 4
    rng = np.random.default_rng(0)
    for _ in range(200):  # random no-bias models never beat 2m
        W = rng.normal(size=(2, 8)) * rng.uniform(0.1, 3)
        assert identity.reconstructed(W, None).sum() <= 4


def test_wilson_interval_brackets_the_rate():
    lo, hi = identity.wilson_interval(np.array([0, 5, 10]), np.array([10, 10, 10]))
    assert lo[0] <= 1e-12 and 0 < hi[0] < 0.35
    assert lo[1] < 0.5 < hi[1] and lo[2] > 0.65 and hi[2] >= 1 - 1e-12


def test_bad_construction_input():
    with pytest.raises(ValueError, match="n_features >= 3, got 2"):
        construct.circle(2)
    with pytest.raises(ValueError, match="n_dead"):
        construct.symmetric_failure(5, n_dead=3)


def test_opt_failure_experiment_end_to_end(monkeypatch, tmp_path):
    from jaxmem import results
    from jaxmem.experiments import opt_failure

    tiny = opt_failure.OptFailureConfig(ns=(4, 7), seeds=6, steps=300, init_scales=(1.0,), no_bias_seeds=2,
                                        escape_steps=50, escape_bias=(-0.1, 0.0), escape_weight=(0.0, 1.0))
    monkeypatch.setitem(opt_failure.PRESETS, "tiny", tiny)
    summary = opt_failure.run("tiny", tmp_path, progress=False)
    by_n = summary["results"]["by_n"]
    assert [(r["n"], r["optimizer"]) for r in by_n] == [(4, "adamw"), (4, "adam"), (7, "adamw"), (7, "adam")]
    saved = results.load_arrays(tmp_path / "runs.npz")
    for r, (n, io) in zip(by_n, [(4, 0), (4, 1), (7, 0), (7, 1)]):
        cls = saved[f"n{n}_cls"][io, 0]
        assert r["n_seeds"] == 6 and r["failure_rate"] == pytest.approx(np.mean(cls != 0))
        assert r["perfect_rate"] + r["failure_rate"] == pytest.approx(1.0)
    assert summary["results"]["escape"]["unperturbed_stays_failed"]
    for name in ("columns_by_class", "failure_rate", "dead_bias", "escape", "no_bias"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    again = opt_failure.run("tiny", tmp_path, resume=True, progress=False)
    assert again["results"]["by_n"] == by_n
