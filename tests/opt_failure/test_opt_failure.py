import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmem
from jaxmem import cli, data, store, studies, train
from jaxmem.studies.opt_failure import construct
from jaxmem.models import relu_output
from jaxmem.studies.opt_failure import analysis as identity
from jaxmem.studies.opt_failure import opt_failure

#: one tiny run: two n (two parts to resume between), both optimisers and two inits, the
#: escape grid and the float64 symmetric-state test at the smallest n it takes (6)
TINY = opt_failure.OptFailureConfig(ns=(4, 6), seeds=4, steps=100, inits=("xavier", "normal"), lrs=(1e-2,),
                                    no_bias_seeds=2, escape_n=6, escape_steps=50, escape_bias=(-0.1, 0.0),
                                    escape_weight=(0.0, 1.0), sym_radii=(1e-3, 1e-2), sym_perturbations=2,
                                    sym_gd_steps=1000, sym_directions=4, sym_adam_steps=100)
#: the run's ``--set``: recorded in the summary, and part of the config that ``--resume`` checks
OVERRIDES = {"sym_gd_lr": "0.3"}


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


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One uninterrupted tiny run (with ``--set sym_gd_lr=0.3``): its folder and summary."""
    out = tmp_path_factory.mktemp("opt_failure")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(opt_failure.PRESETS, "tiny", TINY)
        studies.reproduce("opt-failure", "tiny", out, overrides=OVERRIDES, progress=False)
    return out, json.loads((out / "summary.json").read_text())


def test_tiny_run_end_to_end(tiny_run):
    """Headline numbers against the saved arrays; named dims; every figure."""
    out, summary = tiny_run
    assert summary["config"]["overrides"] == OVERRIDES and summary["config"]["sym_gd_lr"] == 0.3
    assert list(summary["parts"]) == ["n4", "n6", "escape", "symmetric"] and summary["n_runs"] == 2 * 16
    _, parts = store.open_parts(out)
    res = summary["results"]
    by_n = res["by_n"]
    optimizers, inits = ("adamw", "adam"), ("xavier", "normal")
    assert [(r["n"], r["optimizer"], r["init"]) for r in by_n] == [
        (n, o, i) for n in (4, 6) for o in optimizers for i in inits]
    for r in by_n:
        part = parts[f"n{r['n']}"]
        cell = (optimizers.index(r["optimizer"]), inits.index(r["init"]), 0)
        cls = part["cls"][cell]
        assert r["n_seeds"] == 4 and r["failure_rate"] == pytest.approx(np.mean(cls != 0))
        assert r["symmetric_failure_rate"] == pytest.approx(np.mean(cls == 1))
        assert r["perfect_rate"] + r["failure_rate"] == pytest.approx(1.0)
        lo, hi = r["failure_wilson"]
        assert lo - 1e-12 <= r["failure_rate"] <= hi + 1e-12
    for n in (4, 6):  # the saved classes are those of the saved final params
        part = parts[f"n{n}"]
        np.testing.assert_array_equal(identity.classify(part["W"], part["b"])["cls"], part["cls"])
        counts = part["no_bias"]["reconstructed"]
        row = next(r for r in res["no_bias"] if r["n"] == n)
        assert row["max_reconstructed"] == counts.max() <= 4 and row["cross_construction_reconstructed"] == 4
    table = res["failure_table"]
    assert len(table) == 4 and table[0]["ns"] == [4, 6]
    assert table[0]["failures"] == [round(r["failure_rate"] * 4) for r in by_n if r["optimizer"] == "adamw"
                                    and r["init"] == "xavier"]
    # AdamW and plain Adam: both rows present, trained from identical step-0 params (as run_grid kept them)
    adam = res["adam_vs_adamw"]
    assert adam["same_init"] is True and adam["weight_decay"] == {"adamw": 1e-2, "adam": 0.0}
    assert [(r["init"], r["lr"]) for r in adam["rows"]] == [(i, 1e-2) for i in inits]
    for n in (4, 6):
        part = parts[f"n{n}"]
        W0 = np.asarray(opt_failure.initial_W(TINY, n))  # [init, seed, 2, n]
        # bit for bit the same start under both optimisers, and that start is initial_W (to the last
        # float32 bit: run_grid's traced init may fuse the xavier scale differently), b = 0
        np.testing.assert_array_equal(part["W0"][0], part["W0"][1])
        np.testing.assert_array_equal(part["b0"][0], part["b0"][1])
        for o in range(2):
            np.testing.assert_allclose(part["W0"][o, :, 0], W0, rtol=1e-6, atol=1e-7)
            assert not part["b0"][o].any()
        assert not np.array_equal(part["W"][0], part["W"][1])  # the optimisers did train differently
    for r in adam["rows"]:
        ii = inits.index(r["init"])
        for key, o in (("adamw_failures", 0), ("adam_failures", 1)):
            assert r[key] == [int((parts[f"n{n}"]["cls"][o, ii, 0] != 0).sum()) for n in (4, 6)]
        fw = np.stack([parts[f"n{n}"]["cls"][0, ii, 0] != 0 for n in (4, 6)])
        fa = np.stack([parts[f"n{n}"]["cls"][1, ii, 0] != 0 for n in (4, 6)])
        assert r["both"] == (fw & fa).sum(-1).tolist() and r["only_adam"] == (fa & ~fw).sum(-1).tolist()
        assert [a + b for a, b in zip(r["both"], r["only_adamw"])] == r["adamw_failures"]
    assert adam["total"]["runs_each"] == 2 * 2 * 4
    assert summary["config"]["setting_sources"]["schedule"].startswith("ours")
    escape = res["escape"]
    assert escape["recovered"] == parts["escape"]["recovered"].tolist() and escape["unperturbed_stays_failed"]
    assert escape["unperturbed_final_dead_bias"] == pytest.approx(1 / 6, abs=0.02)
    sym = res["symmetric_state"]
    assert sym["answer"] == "saddle" and sym["loss"] == pytest.approx(5 / 36, abs=1e-15)
    pert = parts["symmetric"]["perturbation"]
    assert sym["perturbation"]["gd_lr"] == 0.3 and sym["perturbation"]["runs"] == 4
    assert sym["perturbation"]["escaped"] == int((pert["escape_step"] >= 0).sum())
    assert [r["runs"] for r in sym["perturbation"]["by_radius"]] == [2, 2]
    # the xavier grid starts from relu_output.init's W for the same keys (the old runs' init)
    W0 = opt_failure.initial_W(TINY, 4)
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(TINY.seed), 4), 3)
    np.testing.assert_array_equal(W0[0, 3], relu_output.init(key, 4, 2)["W"])
    np.testing.assert_allclose(W0[1, 3], W0[0, 3] / np.sqrt(2 / 6), rtol=1e-6)  # normal = xavier / its std
    ds = jaxmem.load(out)
    assert not [d for d in ds.dims if "_dim" in str(d)]
    assert ds["n4/W"].dims == ("optimizer", "init", "lr", "seed", "neuron", "feature")
    assert ds["n6/W"].dims[-1] == "n6/feature" and ds["n4/no_bias/reconstructed"].dims == ("no_bias_seed",)
    assert list(ds["init"].values) == list(inits) and list(ds["optimizer"].values) == list(optimizers)
    assert ds["escape/recovered"].dims == ("escape_bias", "escape_weight")
    assert ds["symmetric/perturbation/escape_step"].dims == ("radius", "draw")
    assert ds["symmetric/adam/history"].dims == ("dtype", "adam_optimizer", "adam_step")
    for name in ("columns_by_class", "failure_rate", "dead_bias", "escape", "no_bias", "symmetric_state",
                 "adam_vs_adamw"):
        assert (out / f"{name}.png").stat().st_size > 10_000


@pytest.mark.slow
def test_resume_after_the_first_n_trains_only_the_rest(tiny_run, monkeypatch, tmp_path):
    """Killed after part ``n4``: ``--resume`` with another ``--set`` is refused naming the
    field; with the same one it trains only ``n6`` on, and equals the uninterrupted run."""
    monkeypatch.setitem(opt_failure.PRESETS, "tiny", TINY)
    real, calls = opt_failure.train_grid, []

    def killed_at_the_second(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(opt_failure, "train_grid", killed_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        studies.reproduce("opt-failure", "tiny", tmp_path, overrides=OVERRIDES, progress=False, draw=False)
    assert calls == [4, 6] and list(store.open_parts(tmp_path)[1]) == ["n4"]
    with pytest.raises(ValueError, match="sym_gd_lr"):
        studies.reproduce("opt-failure", "tiny", tmp_path, resume=True, overrides={"sym_gd_lr": "0.2"})
    monkeypatch.setattr(opt_failure, "train_grid", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    resumed = studies.reproduce("opt-failure", "tiny", tmp_path, resume=True, overrides=OVERRIDES, progress=False,
                                draw=False)
    assert calls == [4, 6, 6] and resumed["resumed_parts"] == ["n4"]
    assert json.loads((tmp_path / "summary.json").read_text())["results"] == tiny_run[1]["results"]


@pytest.mark.slow
def test_plot_redraws_a_saved_run(tiny_run):
    out, _ = tiny_run
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    assert cli.main(["plot", str(out)]) == 0
    assert len(before) == 7 and all(p.stat().st_mtime_ns > before[p.name] for p in out.glob("*.png"))


@pytest.mark.parametrize("name, n, std, bound", [
    ("xavier", 7, np.sqrt(2 / 9), None),  # torch xavier_normal_ on [2, 7]: sqrt(2 / (fan_in + fan_out))
    ("torch_linear", 16, 0.25 / np.sqrt(3), 0.25),  # nn.Linear(16, 2): U(-1/4, 1/4)
    ("normal", 5, 1.0, None)])
def test_inits_match_their_closed_forms(name, n, std, bound):
    moments = opt_failure.init_moments(name, n)
    assert moments["std"] == pytest.approx(std, rel=1e-12) and moments["bound"] == bound
    keys = jax.random.split(jax.random.key(1), 4000)
    W = np.asarray(jax.vmap(lambda k: opt_failure.init_W(name, k, n))(keys))
    assert W.shape == (4000, 2, n)
    assert abs(W.mean()) < 4 * std / np.sqrt(W.size)
    assert W.std() == pytest.approx(std, rel=0.01)  # 8e4+ draws: ~0.3% standard error
    if bound is None:  # Gaussian: kurtosis 3
        assert np.mean(W**4) / np.mean(W**2) ** 2 == pytest.approx(3.0, rel=0.03)
    else:  # uniform on [-bound, bound]: kurtosis 9/5, support inside the bound
        assert np.abs(W).max() <= bound and np.abs(W).max() > 0.999 * bound
        assert np.mean(W**4) / np.mean(W**2) ** 2 == pytest.approx(1.8, rel=0.02)
    with pytest.raises(ValueError, match="init must be one of"):
        opt_failure.init_moments("kaiming", n)
    with pytest.raises(ValueError, match="inits must be"):
        opt_failure.OptFailureConfig(inits=("xavier", "he"))
    with pytest.raises(ValueError, match="escape_n must be an integer >= 6 .*got 5"):
        opt_failure.OptFailureConfig(escape_n=5)
    with pytest.raises(ValueError, match="sym_adam_steps must be a positive integer, got 0"):
        opt_failure.OptFailureConfig(sym_adam_steps=0)
    with pytest.raises(ValueError, match="lrs must be positive"):
        opt_failure.OptFailureConfig(lrs=(1e-3, 0.0))
    with pytest.raises(ValueError, match="ns must be"):
        opt_failure.OptFailureConfig(ns=(2, 4))


def test_symmetric_failure_constrained_optimum_in_float64():
    n = 6
    with jax.enable_x64(True):
        v0 = np.asarray(opt_failure.symmetric_point(n)[0])
        loss, grad = jax.jit(opt_failure.flat_loss(n)), jax.jit(jax.grad(opt_failure.flat_loss(n)))
        dead = np.asarray(opt_failure.dead_index(n))
        assert float(loss(v0)) == pytest.approx((n - 1) / n**2, abs=1e-15)  # (1/n) [(1 - 1/n)^2 + (n-1)/n^2]
        assert np.linalg.norm(grad(v0)) < 1e-12  # a critical point of the full loss
        # from a symmetric start (biases moved) gradient descent with W_dead = 0 finds it again
        start = v0.copy()
        start[2 * n:] += 0.05
        start[3 * n - 1] = 0.5
        v, steps, g = jax.device_get(opt_failure.constrained_descent(n, start, 0.4, 100_000))
        assert g < 1e-10 and steps > 10 and np.abs(v[dead]).max() == 0
        assert v[3 * n - 1] == pytest.approx(1 / n, abs=1e-12)
        assert float(loss(v)) == pytest.approx((n - 1) / n**2, abs=1e-14)
        assert np.linalg.norm(grad(v)) < 1e-10
        # from a random start the constrained optimum is not a critical point: dL/dW_dead = (2/n^2) sum W_live
        rnd = v0 + 1e-3 * np.random.default_rng(0).standard_normal(v0.size)
        rnd[dead] = 0.0
        v, _, g = jax.device_get(opt_failure.constrained_descent(n, rnd, 0.4, 100_000))
        assert g < 1e-10
        live_sum = v[: 2 * n].reshape(2, n)[:, :-1].sum(1)
        np.testing.assert_allclose(np.asarray(grad(v))[dead], 2 / n**2 * live_sum, rtol=1e-6, atol=1e-15)
        assert np.linalg.norm(live_sum) > 1e-5


@pytest.mark.parametrize("n", [6, 7])
def test_symmetric_failure_one_sided_derivatives_against_closed_forms(n):
    with jax.enable_x64(True):
        v0, k = opt_failure.symmetric_point(n)
        loss = jax.jit(opt_failure.flat_loss(n))
        r2 = 1 / (1 - np.cos(2 * np.pi / (n - 1)))  # the live circle's squared radius
        assert k["r2"] == pytest.approx(r2) and k["A"] == pytest.approx(r2 / 2 - 2 / n)
        v0 = np.asarray(v0)
        tilt = np.zeros(v0.size)
        tilt[[n - 1, 2 * n - 1]] = 0.6, 0.8
        for d in (tilt, -tilt):  # the post's tilt, live columns held: no first-order term, c = (n-1) A / n
            a, c = opt_failure.one_sided_fit(loss, v0, d)
            assert abs(float(a)) < 1e-9 and float(c) == pytest.approx((n - 1) * k["A"] / n, rel=1e-4)
        d, pred = opt_failure.descent_ray(n)
        a, c = opt_failure.one_sided_fit(loss, v0, np.asarray(d))
        assert abs(float(a)) < 1e-9 and float(c) < 0 and float(c) == pytest.approx(pred, rel=1e-3)
        if n == 7:
            assert pred == pytest.approx(-6 / (343 * 5 / 7))  # -(n-1) / (n^3 A), A = 1 - 2/7
        # one_sided_curvature (kinks as a hinge) against finite differences along random directions
        Z = np.asarray(opt_failure.preactivations(v0, n))
        kinks = (np.abs(Z) < 1e-12) & ~np.eye(n, dtype=bool)
        assert kinks.sum() == 2 * (n - 1)  # each live output is exactly 0 for its two neighbours
        ki, kj = np.nonzero(kinks)
        J = jax.jit(jax.jacobian(lambda v: opt_failure.preactivations(v, n)[ki, kj]))(v0)
        H_s = jax.jit(jax.hessian(opt_failure.flat_loss(n, skip=jnp.asarray(kinks))))(v0)
        curvature = jax.jit(lambda d: opt_failure.one_sided_curvature(H_s, J, n, d))
        for d in np.random.default_rng(0).standard_normal((3, v0.size)):
            q = float(curvature(d))
            assert float(opt_failure.one_sided_fit(loss, v0, d)[1]) == pytest.approx(q / 2, rel=1e-3)


def test_perturbation_test_escapes_a_saddle_but_not_a_minimum():
    n = 6
    with jax.enable_x64(True):
        v0, _ = opt_failure.symmetric_point(n)
        out = opt_failure.perturbation_test(n, v0, (1e-2,), 6, 0.4, 40_000, seed=0)
        assert (out["escape_step"] > 0).all() and (out["final_excess"] < -1e-6).all()
        assert out["max_rise"].max() < 1e-14  # gradient descent was monotone
        assert (out["final_dead_norm"] > 1e-3).all()  # left through W_dead
        # control: around the exact circle (loss 0, a minimum) nothing can fall 1e-6 below
        c = construct.circle(n, np.float64)
        v_circle = jnp.asarray(np.concatenate([c["W"].ravel(), c["b"]]))
        ctrl = opt_failure.perturbation_test(n, v_circle, (1e-2,), 6, 0.4, 2_000, seed=0)
        assert (ctrl["escape_step"] < 0).all() and (np.abs(ctrl["final_excess"]) < 1e-3).all()
