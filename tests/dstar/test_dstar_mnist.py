import dataclasses
import hashlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats

import jaxmem
from jaxmem import cli, mnist, store, studies
from jaxmem.models import mlp
from jaxmem.store import strict_json
from jaxmem.studies.dstar import classifier
from jaxmem.studies.dstar import mnist as dstar_mnist
from jaxmem.train import grid as grid_mod

N_IN, N_HIDDEN, N_OUT = 12, 16, 3


def _problem(key, n=48, n_in=N_IN):
    """A small separable 3-class problem."""
    kx, kw = jax.random.split(key)
    x = jax.random.normal(kx, (n, n_in))
    labels = jnp.argmax(x @ jax.random.normal(kw, (n_in, N_OUT)), axis=-1)
    return {"x": x, "labels": labels}


def _fit(data, grid, steps=24, **kw):
    return classifier.fit(data, grid, steps, **{"n_hidden": N_HIDDEN, "n_out": N_OUT, "n_history": 4, **kw})


def _run(tree, r):
    """Run ``r`` of a tree with a leading run axis."""
    return jax.tree.map(lambda a: a[r], tree)


def _close(a, b, rtol=1e-5, atol=1e-6):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=rtol, atol=atol), a, b)


def test_mlp_against_numpy(key):
    params = mlp.init(key, N_IN, N_HIDDEN, N_OUT)
    for name, shape, fan_in in (("W1", (N_IN, N_HIDDEN), N_IN), ("b1", (N_HIDDEN,), N_IN),
                                ("W2", (N_HIDDEN, N_OUT), N_HIDDEN), ("b2", (N_OUT,), N_HIDDEN)):
        assert params[name].shape == shape
        assert float(jnp.abs(params[name]).max()) <= 1 / np.sqrt(fan_in)
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x = np.random.default_rng(0).standard_normal((2, 5, N_IN))  # any batch shape
    h = np.maximum(x @ p["W1"] + p["b1"], 0)
    logits = h @ p["W2"] + p["b2"]
    np.testing.assert_allclose(mlp.hidden(params, x), h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mlp.apply(params, x), logits, rtol=1e-5, atol=1e-5)
    labels = np.array([[0, 1, 2, 0, 1], [2, 2, 1, 0, 0]])
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    ce = -np.take_along_axis(logp, labels[..., None], -1)[..., 0]
    np.testing.assert_allclose(mlp.example_losses(params, x, labels), ce, rtol=1e-5)
    w = np.array([1.0, 0.0, 2.0, 1.0, 0.0])
    np.testing.assert_allclose(mlp.loss(params, x[0], labels[0], w), (w * ce[0]).sum() / w.sum(), rtol=1e-5)
    with pytest.raises(ValueError, match="n_hidden must be a positive integer, got 0"):
        mlp.init(key, N_IN, 0, N_OUT)


def test_full_batch_fit_equals_a_looped_optax_adamw(key):
    """``classifier.fit`` (run_grid) against a plain optax loop from the grid's init key."""
    data = _problem(key)
    steps, lr, wd = 24, 3e-2, 0.1
    params = mlp.init(grid_mod.init_key(0, 3), N_IN, N_HIDDEN, N_OUT)
    opt = optax.adamw(optax.cosine_decay_schedule(lr, steps), weight_decay=wd)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        grads = jax.grad(mlp.loss)(params, data["x"], data["labels"])
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(steps):
        params, state = step(params, state)
    got = _fit(data, {"seed": [3]}, steps, lr=lr, weight_decay=wd)
    _close(_run(got.params, 0), params, rtol=2e-5, atol=2e-6)
    assert got.history.step.tolist() == [6, 12, 18, 24]
    assert got.history.loss.shape == (1, 4) and got.history.loss[0, -1] < got.history.loss[0, 0]
    np.testing.assert_allclose(got.loss[0], mlp.loss(params, data["x"], data["labels"]), rtol=1e-5)
    np.testing.assert_allclose(got.history.loss[0, -1], got.loss[0], rtol=1e-6)
    np.testing.assert_allclose(got.accuracy[0], mlp.accuracy(params, data["x"], data["labels"]))
    with pytest.raises(ValueError, match="schedule must be one of"):
        _fit(data, {"seed": [0]}, schedule="linear")
    with pytest.raises(ValueError, match="keep_params_at must be sorted distinct"):
        _fit(data, {"seed": [0]}, checkpoints=(3, 1))


@pytest.mark.parametrize("n_pad", [0, 9])
def test_minibatches_cover_the_real_rows_once_per_epoch(key, n_pad):
    """run_grid's minibatches (the rule the classifier had): each epoch a new shuffle of the real rows."""
    weights = jnp.concatenate([jnp.ones(23), jnp.zeros(n_pad)])
    batch = {"x": jnp.arange(23.0 + n_pad)}
    for epoch in range(2):  # 23 real rows: 5 batches an epoch, the last one holds 3
        seen = []
        for step in range(5 * epoch, 5 * epoch + 5):
            rows, w = grid_mod._minibatch(5, key, batch, weights, step)
            seen += np.asarray(rows["x"])[np.asarray(w) > 0].astype(int).tolist()
        assert sorted(seen) == list(range(23))
    first = grid_mod._minibatch(5, key, batch, weights, 0)[0]["x"]
    assert not np.array_equal(first, grid_mod._minibatch(5, key, batch, weights, 5)[0]["x"])  # reshuffled


@pytest.mark.slow
def test_padded_minibatch_run_equals_unpadded(key):
    """``n_train`` 40 of 53 rows (the rest junk) trains as the 40 rows alone."""
    data = _problem(key, n=40)
    pad = 13
    junk = jax.random.normal(jax.random.key(9), (pad, N_IN)) * 100
    padded = {"x": jnp.concatenate([data["x"], junk]), "labels": jnp.concatenate([data["labels"], jnp.zeros(pad, int)])}
    kw = {"steps": 20, "lr": 1e-2, "batch_size": 12}  # 4 batches an epoch, the last one holds 4 rows
    a, b = _fit(data, {"seed": [0]}, **kw), _fit(padded, {"seed": [0], "n_train": [40]}, **kw)
    _close(a.params, b.params)
    np.testing.assert_allclose(a.history.loss, b.history.loss, rtol=1e-5)
    np.testing.assert_allclose(a.accuracy, b.accuracy)
    assert a.history.loss[0, -1] < a.history.loss[0, 0]


@pytest.mark.slow
def test_seed_and_weight_decay_grid_equals_single_runs_and_keeps_checkpoints(key):
    data = _problem(key)
    kw = {"lr": 1e-2, "batch_size": 16, "checkpoints": (0, 5, 24)}
    seeds, wds = [0, 1, 2], [0.0, 1.0]
    grid = _fit(data, {"seed": seeds, "weight_decay": wds}, **kw)
    assert grid.loss.shape == (6,) and grid.checkpoints["W1"].shape == (6, 3, N_IN, N_HIDDEN)
    for r, (s, wd) in enumerate((s, w) for s in seeds for w in wds):
        one = _fit(data, {"seed": [s]}, weight_decay=wd, **kw)
        _close(_run(grid.params, r), _run(one.params, 0))
        _close(_run(grid.checkpoints, r), _run(one.checkpoints, 0))
        np.testing.assert_allclose(grid.accuracy[r], one.accuracy[0])
        init = mlp.init(grid_mod.init_key(0, s), N_IN, N_HIDDEN, N_OUT)
        np.testing.assert_array_equal(one.checkpoints["W1"][0, 0], init["W1"])  # checkpoint 0: the init
        np.testing.assert_array_equal(one.checkpoints["W1"][0, -1], one.params["W1"][0])  # last: the final params
    assert not np.allclose(grid.params["W1"][0], grid.params["W1"][1])  # weight decay acts
    # the params after 5 updates: a 5-update run whose schedule spans 24 (a traced horizon)
    five = _fit(data, {"seed": [0], "horizon": [24]}, steps=5, lr=1e-2, batch_size=16, weight_decay=0.0)
    _close(_run(_run(grid.checkpoints, 0), 1), _run(five.params, 0))


@pytest.mark.slow
def test_traced_horizon_equals_a_shorter_run(key):
    data = _problem(key)
    kw = {"lr": 1e-2, "weight_decay": 0.1, "batch_size": 16}
    inside = _fit(data, {"seed": [0], "horizon": [10, 24]}, 24, **kw)
    alone = _fit(data, {"seed": [0]}, 10, **kw)
    _close(_run(inside.params, 0), _run(alone.params, 0))
    assert not np.allclose(inside.params["W1"][1], alone.params["W1"][0])


@pytest.mark.slow
def test_input_variants_train_as_separate_data(key):
    """``x [N, V, n_in]`` with an ``input`` axis: run v trains on variant v alone."""
    data = _problem(key)
    other = 2.0 * data["x"][::-1]
    both = {"x": jnp.stack([data["x"], other], axis=1), "labels": data["labels"]}
    kw = {"lr": 1e-2, "batch_size": 16}
    grid = _fit(both, {"seed": [0], "input": [0, 1]}, **kw)
    for v, x in enumerate([data["x"], other]):
        one = _fit({"x": x, "labels": data["labels"]}, {"seed": [0]}, **kw)
        _close(_run(grid.params, v), _run(one.params, 0))
        np.testing.assert_allclose(grid.history.accuracy[v], one.history.accuracy[0])


def test_decile_errors_and_curve_position():
    d = np.arange(20.0)[::-1]  # point i has the (i + 1)-th highest D*
    wrong = np.zeros(20, bool)
    wrong[[0, 1, 19]] = True
    out = dstar_mnist.decile_errors(d, wrong)
    assert out["count"] == [2, 0, 0, 0, 0, 0, 0, 0, 0, 1] and out["size"] == [2] * 10
    assert out["fraction"][0] == 1.0 and out["share"][9] == pytest.approx(1 / 3)
    assert dstar_mnist.decile_errors(d, np.zeros(20, bool))["share"] == [0.0] * 10
    np.testing.assert_allclose(dstar_mnist.curve_position(d), np.arange(20) / 19)


TINY = dstar_mnist.Preset(
    n_train=240, n_test=60, n_hidden=16, batch_size=60, epochs=3, lr=1e-2, n_history=2, hidden_sizes=(8, 16),
    seeds=2, dataset_sizes=(120, 240), weight_decays=(0.0, 0.5), checkpoint_epochs=(0, 3), first_batches=2,
    horizons=(1, 4), ae_hidden=(4,), ae_steps=10, ae_lr=1e-2, solve_steps=30, target_n=300, target_epochs=(1, 3),
    target_seeds=2, target_error_rate=0.05)
#: two parts of one shape: one compiled program
TWO_PARTS = dataclasses.replace(TINY, parts=("seeds", "weight_decay"))


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(dstar_mnist.PRESETS, "tiny", TINY)


def _no_seconds(results: dict) -> dict:
    """``results`` as JSON, without the parts' timings."""
    return {k: {n: x for n, x in v.items() if n != "seconds"} if isinstance(v, dict) else v
            for k, v in json.loads(json.dumps(strict_json(results))).items()}


@pytest.mark.slow  # over 20 s on the 2-core CPU: kept out of the default run
def test_two_parts_end_to_end_and_resume_after_a_kill(monkeypatch, tmp_path):
    """Headline numbers against the saved arrays; a run killed after its first part
    resumes only with the same config and trains only the missing part."""
    monkeypatch.setitem(dstar_mnist.PRESETS, "tiny", TWO_PARTS)
    full = studies.reproduce("dstar-mnist", "tiny", tmp_path / "full", progress=False)
    res = full["results"]
    assert list(res) == ["seeds", "weight_decay", "data"] and full["n_runs"] == 4
    assert full["config"]["steps"] == 12 and full["config"]["seeds"] == 2
    files = res["data"]["files"]
    folder = mnist.default_dir()
    assert files == {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in mnist.FILES["t10k"]}
    _, parts = store.open_parts(tmp_path / "full")
    rows = np.random.default_rng(0).permutation(10_000)[:240]
    for name, dim, values in (("seeds", "seed", [0, 1]), ("weight_decay", "weight_decay", [0.0, 0.5])):
        part, r = parts[name], res[name]
        d, wrong = part["dstar"], part["wrong"]
        assert part.dims["dstar"] == (dim, "example") and part.dims["spearman"] == (dim, f"vs_{dim}")
        assert part.coords[dim].tolist() == values and part.coords["example"].tolist() == rows.tolist()
        rho = scipy.stats.spearmanr(d.T).statistic
        np.testing.assert_allclose(r["spearman"], [[1, rho], [rho, 1]], atol=1e-6)
        for i, m in enumerate(r["models"]):
            assert m["sum_check"]["total"] == pytest.approx(d[i].sum()) and m["sum_check"]["sum_equals_rank"]
            assert m["n_misclassified"] == int(wrong[i].sum())
            assert m["train_accuracy"] == pytest.approx(float(part["train_accuracy"][i]))
            assert m["error_fraction_per_decile"] == dstar_mnist.decile_errors(d[i], wrong[i])["fraction"]
            assert m["tail"]["q0.1%"] == pytest.approx(np.quantile(d[i], 1e-3))
    ds = jaxmem.load(tmp_path / "full")
    assert ds["seeds/dstar"].dims == ("seed", "example") and not any("_dim" in d for d in ds.dims)
    assert "weight decay \\ weight decay" in "\n".join(cli.show_lines(full, dstar_mnist.table_axes(full)))
    for png in ("seeds.png", "seeds_tail.png", "weight_decay.png"):
        (tmp_path / "full" / png).unlink()
    assert cli.main(["plot", str(tmp_path / "full")]) == 0
    assert all((tmp_path / "full" / png).stat().st_size > 10_000 for png in ("seeds.png", "weight_decay.png"))

    real = dstar_mnist.PART_FNS["weight_decay"]

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setitem(dstar_mnist.PART_FNS, "weight_decay", killed)
    with pytest.raises(KeyboardInterrupt):
        studies.reproduce("dstar-mnist", "tiny", tmp_path / "cut", progress=False)
    monkeypatch.setitem(dstar_mnist.PART_FNS, "weight_decay", real)
    with pytest.raises(ValueError, match="another config; differing fields: ae_steps: 10 -> 3"):
        studies.reproduce("dstar-mnist", "tiny", tmp_path / "cut", resume=True, overrides={"ae_steps": "3"},
                          progress=False)
    monkeypatch.setitem(dstar_mnist.PART_FNS, "seeds", killed)  # saved: must not train again
    again = studies.reproduce("dstar-mnist", "tiny", tmp_path / "cut", resume=True, progress=False)
    assert again["resumed_parts"] == ["seeds"]
    assert _no_seconds(again["results"]) == _no_seconds(res)

    def other_files(p, data_dir=None):
        pool = load_pool(p, data_dir)
        return dataclasses.replace(pool, info={**pool.info, "files": {"t10k-images-idx3-ubyte.gz": "0" * 64}})

    load_pool = dstar_mnist.load_pool
    monkeypatch.setattr(dstar_mnist, "load_pool", other_files)
    with pytest.raises(ValueError, match="part 'seeds' .* was trained on other MNIST files"):
        studies.reproduce("dstar-mnist", "tiny", tmp_path / "full", resume=True, progress=False)


@pytest.mark.slow
def test_tiny_run_end_to_end(tiny, tmp_path):
    # the MNIST test set ships in the package; missing, the run's loader fails with a
    # ValueError naming the file
    summary = studies.reproduce("dstar-mnist", "tiny", tmp_path, progress=False)
    for k in ("experiment", "preset", "backend", "devices", "n_runs", "wall_seconds", "compile_seconds", "config"):
        assert k in summary
    assert summary["experiment"] == "dstar-mnist" and summary["n_runs"] == 2 + 2 + 2 + 2 + 2 + 1 + 2 + 2 + 4
    res = summary["results"]
    assert isinstance(summary["compile_seconds"], float) and res["data"]["kind"] == "t10k"
    assert list(res) == list(dstar_mnist.PARTS) + ["data"]
    models = [res["inputs"]["raw"], res["inputs"]["normalized"], *res["hidden_sizes"]["models"].values(),
              *res["seeds"]["models"], *res["dataset_sizes"]["models"], *res["weight_decay"]["models"],
              *res["training"]["models"], *res["error_rates"]["models"], *res["target_error"]["runs"]]
    for m in models:
        check = m["sum_check"]
        assert check["sum_equals_rank"] and abs(check["total"] - check["rank"]) < 1e-6
        assert len(m["error_fraction_per_decile"]) == 10
        if m["n_misclassified"]:
            assert sum(m["error_share_per_decile"]) == pytest.approx(1.0)
        n = round(m["n_misclassified"] / (1 - m["train_accuracy"])) if m["train_accuracy"] < 1 else None
        if n:  # fraction x decile size sums to the errors
            sizes = [len(b) for b in np.array_split(np.arange(n), 10)]
            assert np.dot(m["error_fraction_per_decile"], sizes) == pytest.approx(m["n_misclassified"])
    assert res["inputs"]["normalized"]["sum_check"]["solve_converged"]
    rho = np.array(res["seeds"]["spearman"])
    assert rho.shape == (2, 2) and np.allclose(np.diag(rho), 1) and np.allclose(rho, rho.T)
    assert np.array(res["training"]["spearman_first_batches"]).shape == (3, 3)
    _, parts = store.open_parts(tmp_path)
    inputs = parts["inputs"]
    assert inputs["dstar"].shape == (2, 240) and inputs.dims["history/loss"] == ("input", "step")
    np.testing.assert_allclose(inputs["dstar"].sum(-1), inputs["rank"], rtol=1e-9)
    assert np.all(parts["dataset_sizes"]["dstar"][0, 120:] == 0)  # padded rows carry no D*
    assert parts["training"].coords["step"].tolist() == res["training"]["checkpoint_updates"]
    for png in ("inputs_curves", "inputs_classes", "misclassified_digits", "hidden_sizes", "seeds",
                "dataset_sizes", "weight_decay", "training_epochs", "training_first_batches", "error_rates",
                "autoencoder", "hidden_sizes_tail", "seeds_tail", "target_error", "target_error_digits"):
        assert (tmp_path / f"{png}.png").stat().st_size > 10_000
    _check_target_error(res["target_error"], parts["target_error"])
    _check_autoencoder(res["autoencoder"], parts["autoencoder"])
    assert res["seeds"]["tail"]["q1%"] == [m["tail"]["q1%"] for m in res["seeds"]["models"]]
    ds = jaxmem.load(tmp_path)
    assert not any("_dim" in d for d in ds.dims)
    assert ds["target_error/dstar"].dims == ("run", "target_error/example")  # another set of rows
    assert ds["autoencoder/dstar"].dims == ("variant", "autoencoder/n_hidden", "example")
    again = studies.reproduce("dstar-mnist", "tiny", tmp_path, resume=True, progress=False)
    assert again["results"] == json.loads(json.dumps(strict_json(res)))
    with pytest.raises(ValueError, match="differing fields: seeds: 2 -> 3"):
        studies.reproduce("dstar-mnist", "tiny", tmp_path, seeds=3, resume=True, progress=False)
    with pytest.raises(ValueError, match="--seeds must be >= 1, got 0"):
        studies.reproduce("dstar-mnist", "tiny", tmp_path / "x", seeds=0)


def _check_target_error(res, arrays):
    """The selection and the error places, recomputed from the saved part."""
    assert res["n_train"] == 300 and res["n_held_out"] == 9700 and res["updates_per_epoch"] == 5
    assert res["target_errors"] == pytest.approx(0.05 * 300)
    _, file_labels = mnist.load(None, "t10k")  # the training rows: the permutation's first 300
    file_index = arrays.coords["example"]
    assert file_index.tolist() == np.random.default_rng(0).permutation(10_000)[:300].tolist()
    assert np.array_equal(arrays["labels"], file_labels[file_index])
    assert arrays.coords["error"].tolist() == file_index[arrays["error_rows"]].tolist()
    d, wrong = arrays["dstar"], arrays["wrong"]
    assert d.shape == (4, 300) and arrays["epochs"].tolist() == [1, 3, 1, 3] and arrays["seed"].tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(d.sum(-1), [r["sum_check"]["rank"] for r in res["runs"]], rtol=1e-9)
    assert res["errors"] == [[int(wrong[0].sum()), int(wrong[1].sum())], [int(wrong[2].sum()), int(wrong[3].sum())]]
    for s, sel in enumerate(res["selected"]):
        pair = [2 * s, 2 * s + 1]
        gap = [abs(wrong[r].sum() - 15) for r in pair]
        assert sel["run"] == pair[int(np.argmin(gap))] and sel["seed"] == s  # argmin keeps the first (fewer epochs)
        r = sel["run"]
        order = np.argsort(-d[r])
        rank = np.empty(300)
        rank[order] = np.arange(300)
        np.testing.assert_allclose(sel["position"], rank[wrong[r]] / 299, atol=1e-6)
        assert sel["n"] == sel["n_misclassified"] == int(wrong[r].sum())
        assert sel["labels"] == arrays["labels"][wrong[r]].tolist()
        assert sel["file_index"] == file_index[wrong[r]].tolist()
        assert 0 <= res["runs"][r]["test_accuracy"] <= 1
    pooled = res["pooled_selected"]
    assert pooled["n"] == sum(sel["n"] for sel in res["selected"]) == sum(pooled["count_per_decile"])
    assert pooled["n_distinct_points"] == len({i for sel in res["selected"] for i in sel["file_index"]})


def _check_autoencoder(res, arrays):
    assert res["variants"] == ["linear", "relu"] and arrays["dstar"].shape == (2, 1, 240)
    assert arrays.coords["variant"].tolist() == ["linear", "relu"] and arrays.coords["n_hidden"].tolist() == [4]
    assert arrays.dims["spearman"] == ("model", "vs_model") and arrays.coords["model"].tolist() == ["linear 4", "relu 4"]
    assert arrays.dims["dstar"] == ("variant", "n_hidden", "example")
    for variant in ("linear", "relu"):
        check = res["models"][variant]["4"]["sum_check"]
        assert check["sum_equals_rank"] and check["rank"] <= 4
    assert np.array(res["spearman"]).shape == (2, 2) and len(res["spearman_linear_vs_relu"]) == 1
    assert set(res["spearman_vs_classifier"]) == {"linear", "relu"}
    assert not np.allclose(arrays["dstar"][0], arrays["dstar"][1])  # the ReLU changes the hidden vectors


def test_tail_by_hand():
    d = np.array([0.0, 5e-5, 5e-4, 5e-3, 0.02, 0.1, 0.1, 0.2, 0.5, 1.0])  # mean 0.192555
    t = dstar_mnist.tail(d)
    assert t["min"] == 0.0 and t["n_zero"] == 1
    assert t["q1%"] == pytest.approx(0.09 * 5e-5)  # 1% of the way: 0.09 of the first gap
    assert t["q0.1%"] == pytest.approx(0.009 * 5e-5)
    assert t["fraction_below"] == {"0.01": 0.4, "0.001": 0.3, "0.0001": 0.2}
    assert t["fraction_below_mean"] == {"0.5": 0.5, "0.25": 0.5, "0.1": 0.4}  # below 0.0963, 0.0481, 0.0193
    assert t["q1%_over_median"] == pytest.approx(0.09 * 5e-5 / 0.06)
    table = dstar_mnist.tail_table([{"tail": t}, {"tail": dstar_mnist.tail(d * 0 + 0.5)}])
    assert table["fraction_below 0.01"] == [0.4, 0.0] and table["fraction_below_mean 0.1"] == [0.4, 0.0]
    assert table["q1%_over_median"] == [t["q1%_over_median"], 1.0]


def test_closest_run_and_error_positions():
    assert dstar_mnist.closest_run([25, 10, 4, 0], [20, 22, 25, 28], 4.2) == 2
    assert dstar_mnist.closest_run([6, 2], [20, 25], 4.0) == 0  # a tie goes to fewer epochs
    d = np.arange(11.0)  # point i has D* i: point 10 is at place 0, point 0 at place 1
    wrong = np.zeros(11, bool)
    wrong[[10, 9, 0]] = True
    out = dstar_mnist.error_positions(d, wrong)
    assert out["n"] == 3 and sorted(out["position"]) == pytest.approx([0.0, 0.1, 1.0])
    assert out["mean_position"] == pytest.approx(1.1 / 3) and out["share_high_half"] == pytest.approx(2 / 3)
    assert out["binomial_p"] == pytest.approx(1.0)  # 2 of 3 against 1/2: P = (1 + 3 + 3 + 1) / 8
    assert out["ks_p"] == pytest.approx(scipy_ks([0.0, 0.1, 1.0]))
    assert dstar_mnist.error_positions(d, np.zeros(11, bool))["mean_position"] is None


def scipy_ks(x):
    import scipy.stats
    return scipy.stats.kstest(x, "uniform").pvalue


def test_ae_hidden_against_numpy(key):
    from jaxmem.models import relu_output
    params = relu_output.init(key, 20, 5)
    x = np.random.default_rng(1).standard_normal((7, 20)).astype(np.float32)
    wx = x @ np.asarray(params["W"]).T
    np.testing.assert_allclose(dstar_mnist.ae_hidden(params, x, "linear"), wx, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dstar_mnist.ae_hidden(params, x, "relu"), np.maximum(wx, 0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="variant must be one of .*got 'tanh'"):
        dstar_mnist.ae_hidden(params, x, "tanh")


def test_presets_and_bad_values():
    quick, full = dstar_mnist.PRESETS["quick"], dstar_mnist.PRESETS["seed-errors"]
    assert "target_error" in quick.parts and quick.target_epochs == (25,) and quick.target_seeds == 1
    assert full.parts == ("target_error",) and full.target_n is None and full.n_hidden == 512
    assert full.target_error_rate == 21 / 50_000 and full.batch_size == 500
    for bad, match in ((dict(parts=("inputs", "nope")), "parts must be one of .*got 'nope'"),
                       (dict(parts=("inputs", "inputs")), "parts must be distinct names"),
                       (dict(ae_variants=("tanh",)), "ae_variants must be one of .*got 'tanh'"),
                       (dict(target_n=0), "target_n must be a positive integer, got 0"),
                       (dict(target_error_rate=1.5), "target_error_rate must lie in .*1.5"),
                       (dict(tail_thresholds=(0.0,)), "tail_thresholds must be .*0.0"),
                       (dict(target_epochs=()), "target_epochs must be a non-empty"),
                       (dict(hidden_sizes=(8, 0)), "hidden_sizes must be a positive integer, got 0"),
                       (dict(weight_decays=(-1.0,)), "weight_decays must be .*-1.0"),
                       (dict(checkpoint_epochs=(0, 200)), r"checkpoint_epochs .*must lie in \[0, 100\], got 200"),
                       (dict(schedule="linear"), "schedule must be one of .*'linear'")):
        with pytest.raises(ValueError, match=match):
            dstar_mnist.Preset(**bad)


@pytest.mark.slow
def test_parts_subset_runs_only_those(monkeypatch, tmp_path):
    monkeypatch.setitem(dstar_mnist.PRESETS, "tiny-target",
                        dataclasses.replace(TINY, parts=("target_error",), target_n=200, target_seeds=1,
                                            target_epochs=(2,)))
    summary = studies.reproduce("dstar-mnist", "tiny-target", tmp_path, progress=False)
    assert list(summary["parts"]) == ["target_error"] and summary["n_runs"] == 1
    sel = summary["results"]["target_error"]["selected"][0]
    assert sel["epochs"] == 2 and summary["results"]["target_error"]["n_train"] == 200


def test_load_pool_refuses_more_rows_than_the_file():
    with pytest.raises(ValueError, match="target_n=20000 exceeds the 10000 images"):
        dstar_mnist.load_pool(dataclasses.replace(TINY, target_n=20_000))
    with pytest.raises(ValueError, match="fewer than the 9990 training"):
        dstar_mnist.load_pool(dataclasses.replace(TINY, n_train=9990))
