"""``grokking-lr``: the fairness of its comparisons (per-step decay), its grid logic and,
slow, a tiny run end to end through the protocol."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmem import studies
from jaxmem.store import open_parts
from jaxmem.studies.grokking import grok
from jaxmem.studies.grokking import lr as glr
from jaxmem.studies.grokking.modular_addition import ModularConfig
from jaxmem.train import optim


def _one_zero_gradient_step(grid: glr.LrGrid, cfg: glr.GrokLrConfig, lr: float) -> np.ndarray:
    """The factor each weight is multiplied by in one step with a zero gradient, per
    decay of ``grid`` at ``lr``, through the optimiser the runs train with."""
    axes = glr.lr_axes(cfg, grid, lr)
    factors = []
    for wd in axes["weight_decay"]:
        hp = {"lr": jnp.float32(lr), "weight_decay": jnp.float32(wd)}
        hp["momentum" if grid.optimizer == "sgd" else "b1"] = jnp.float32(axes["b1"][0])
        tx = optim.build(optim.Optim(grid.optimizer, "constant", 0.0, b1=0.9, b2=0.98), hp, 100)
        w = {"w": jnp.full((3,), 2.0)}
        updates, _ = tx.update(jax.tree.map(jnp.zeros_like, w), tx.init(w), w)
        factors.append(float((w["w"] + updates["w"])[0] / 2.0))
    return np.asarray(factors)


@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_matched_grids_decay_the_weights_equally_per_step_across_optimizers(preset):
    """Every run of an optimiser-comparison grid multiplies its weights by 1 - lr x wd per
    step; at a matched per-step decay that factor is the same for AdamW and SGD at every lr,
    and no run's factor is <= 0 (SGD at lr 1 with wd 1 zeroed the weights every step)."""
    cfg = glr.PRESETS[preset]
    factors = {}
    for grid in cfg.grids:
        runs = glr.runs_of(grid, cfg.seeds)
        np.testing.assert_allclose(runs["step_decay"], runs["lr"] * runs["weight_decay"])
        for lr in grid.lrs:
            f = _one_zero_gradient_step(grid, cfg, lr)
            assert (f > 0).all(), (grid.name, lr, f)
            want = [1 - lr * wd for wd in grid.coefficients(lr)]
            np.testing.assert_allclose(f, want, rtol=1e-6, err_msg=f"{grid.name} lr {lr}")
            if grid.role == "optimizer":
                for d, fd in zip(grid.decays, f):
                    factors.setdefault((grid.p, d), {}).setdefault(grid.optimizer, set()).add(round(fd, 6))
    matched = {k: v for k, v in factors.items() if k[1] > 0}
    assert matched, "the preset compares optimisers at no matched per-step decay"
    for (p, d), by_opt in factors.items():
        assert set(by_opt) == {"adamw", "sgd"}, (p, d, by_opt)
        assert by_opt["adamw"] == by_opt["sgd"] == {round(1 - d, 6)}, (p, d, by_opt)


def test_a_per_step_decay_of_one_is_refused():
    with pytest.raises(ValueError, match=r"lr 1.0 x weight decay 1.0 = 1 per step multiplies the weights by 0"):
        glr.LrGrid("sgd", (0.1, 1.0), optimizer="sgd")  # the old grid: wd 1.0 at lr 1.0
    with pytest.raises(ValueError, match="per step"):
        glr.LrGrid("g", (3.0,), step_decays=(3.0,))
    g = glr.LrGrid("sgd", (0.1, 1.0), optimizer="sgd", step_decays=(1e-3, 0.0))
    assert g.coefficients(1.0) == [1e-3, 0.0] and g.coefficients(0.1) == pytest.approx([1e-2, 0.0])
    assert g.decay_axis == "step_decay" and glr.LrGrid("h", (1e-3,)).decay_axis == "weight_decay"


@pytest.mark.parametrize("make, match", [
    (lambda: glr.LrGrid("g", (1e-3,), weight_decays=(0.5,), step_decays=(1e-3,)), "not both"),
    (lambda: glr.LrGrid("g", (1e-3,), step_decays=(-1e-3,)), ">= 0"),
    (lambda: glr.LrGrid("g", (3e-3,), lr_steps=10.0), "whole number of steps"),
    (lambda: glr.LrGrid("g", (1e-3,), steps=10, lr_steps=1.0), "not both"),
    (lambda: glr.LrGrid("g", (1e-3,), role="speed"), "role"),
    (lambda: glr.LrGrid("claims", (1e-3,)), "name"),
    (lambda: glr.GrokLrConfig(model=ModularConfig(n_history=7), grids=(glr.LrGrid("g", (1e-2,), lr_steps=1.0),)),
     "not a multiple of n_history"),
])
def test_bad_grids_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_lr_steps_holds_lr_times_steps_and_total_decay():
    g = glr.LrGrid("s", (0.025, 0.01, 0.0025), lr_steps=25.0)
    steps = [g.steps_at(lr, 7) for lr in g.lrs]
    assert steps == [1000, 2500, 10000]
    assert [lr * s for lr, s in zip(g.lrs, steps)] == pytest.approx([25.0] * 3)
    # a fixed coefficient: the total decay lr x wd x steps is the same at every lr
    assert [lr * g.coefficients(lr)[0] * s for lr, s in zip(g.lrs, steps)] == pytest.approx([25.0] * 3)
    cfg = glr.GrokLrConfig(model=ModularConfig(n_history=50, steps=300), grids=(g,))
    dim, time = cfg.history_index(g)
    assert dim == "time" and time[0] == pytest.approx(0.5) and time[-1] == pytest.approx(25.0) and len(time) == 50
    assert [cfg.grid_model(g, lr).grok_config.history_steps[-1] for lr in g.lrs] == steps
    assert glr.LrGrid("t", (1e-3,), steps=40).steps_at(1e-3, 7) == 40
    assert glr.LrGrid("u", (1e-3,)).steps_at(1e-3, 7) == 7


def _synthetic(lrs, seeds, gen, mem, steps):
    n = len(lrs) * seeds
    return {"lr": np.repeat(lrs, seeds).astype(float), "weight_decay": np.ones(n), "init_scale": np.ones(n),
            "memorise_step": np.asarray(mem, float), "generalise_step": np.asarray(gen, float),
            "plateau_steps": np.zeros(n), "outcome": np.zeros(n, int), "steps_trained": np.full(n, steps)}


def test_best_lr_is_most_seeds_then_fastest():
    nan = np.nan
    a = _synthetic([1e-3, 1e-2, 0.1], 2, gen=[nan, 900, 500, 700, 300, nan], mem=[50] * 6, steps=1000)
    cells = glr.cells(a)
    assert [c["generalised"] for c in cells] == [1, 2, 1]
    assert [c["median_generalise_step"] for c in cells] == [900, 600, 300]
    best = min(cells, key=glr.best_key)
    assert best["lr"] == 1e-2  # 2 of 2 beats the faster 1 of 2
    # none generalised: the highest final test accuracy
    c0, c1 = (dict(c, generalised=0, median_generalise_step=None) for c in cells[:2])
    c0["final_test_accuracy"], c1["final_test_accuracy"] = 0.4, 0.2
    assert min([c1, c0], key=glr.best_key)["lr"] == 1e-3
    # a uniform output (chance test accuracy 1/p, train accuracy 1/p) ranks after a run that
    # fit its training set, though a memorising run's test accuracy is below chance
    uniform = dict(c0, lr=0.1, final_train_accuracy=1 / 67, final_test_accuracy=1 / 67)
    memorised = dict(c0, lr=1e-2, final_train_accuracy=1.0, final_test_accuracy=0.005)
    assert min([uniform, memorised], key=glr.best_key)["lr"] == 1e-2


def test_first_steps_per_run_match_a_loop():
    rng = np.random.default_rng(0)
    acc = rng.uniform(size=(5, 8))
    steps = np.arange(1, 9)[None, :] * np.array([1, 2, 3, 4, 5])[:, None]
    got = glr._first_steps(acc, steps, 0.7)
    for r in range(5):
        want = next((steps[r, i] for i in range(8) if acc[r, i] >= 0.7), np.nan)
        assert got[r] == want or (np.isnan(got[r]) and np.isnan(want))
    np.testing.assert_array_equal(glr._first_steps(acc, np.broadcast_to(steps[0], acc.shape), 0.7),
                                  grok.first_step(acc, steps[0], 0.7))


def test_quick_preset_cuts_are_stated_and_paper_is_at_source_precision():
    quick, paper = glr.PRESETS["quick"], glr.PRESETS["paper"]
    assert quick.model.precision == "float32" and paper.model.precision == "source"
    assert paper.model.steps == 50_000 and paper.model == ModularConfig(seeds=4)
    assert {g.role for g in quick.grids} == {g.role for g in paper.grids} == set(glr.ROLES) - {""}
    for cfg in (quick, paper):
        ps = {g.p for g in cfg.grids if g.role in ("optimizer", "lr_p") and g.optimizer == "adamw"}
        assert len(ps) >= 3, ps


#: a tiny setting with every role: one run per lr call (1 seed, one decay), so few programs
TINY = glr.GrokLrConfig(
    model=ModularConfig(p=7, n_embed=6, n_hidden=8, seeds=1, steps=20, n_history=4, precision="float32"),
    grids=(glr.LrGrid("adamw", (1e-2, 0.1), p=7, step_decays=(1e-2,), role="optimizer"),
           glr.LrGrid("sgd", (0.3, 1.0), p=7, optimizer="sgd", step_decays=(1e-2,), role="optimizer"),
           glr.LrGrid("adamw_p11", (1e-2, 0.1), p=11, step_decays=(1e-2,), role="lr_p"),
           glr.LrGrid("scaled", (0.02, 0.01), p=7, lr_steps=0.4, role="scaled"),
           glr.LrGrid("mse", (1e-2,), p=7, loss="mse", step_decays=(1e-2,), role="loss"),
           glr.LrGrid("init", (1e-2,), p=7, step_decays=(0.0,), init_scales=(0.3, 1.0), role="init_scale")))


@pytest.mark.slow
def test_tiny_run_answers_every_claim_from_its_saved_arrays(monkeypatch, tmp_path):
    monkeypatch.setitem(glr.PRESETS, "tiny", TINY)
    out = tmp_path / "glr"
    summary = studies.reproduce("grokking-lr", "tiny", out)
    r = summary["results"]
    assert summary["n_runs"] == 2 + 2 + 2 + 2 + 1 + 2 and not summary.get("error")
    for name in ("lr_phase", "lr_optimizers", "lr_vs_p", "lr_loss", "lr_large", "lr_scaled", "lr_init"):
        assert (out / f"{name}.png").exists(), name
    parts = open_parts(out)[1]
    c = r["claims"]
    # Adam vs SGD: each optimiser's best lr at the same per-step decay, recomputed from the arrays
    assert {row["optimizer"] for row in c["optimizer"]} == {"adamw", "sgd"}
    for row in c["optimizer"]:
        grid = next(g for g in TINY.grids if g.name == row["grid"])
        a = glr.flat(parts[grid.name], grid, TINY.seeds)
        np.testing.assert_allclose(a["step_decay"], 1e-2)
        steps = parts[grid.name].coords["step"]
        np.testing.assert_array_equal(a["generalise_step"], grok.first_step(a["test_accuracy"], steps))
        by_lr = []
        for lr in grid.lrs:
            gen = a["generalise_step"][a["lr"] == lr]
            fastest = np.nanmedian(gen) if np.isfinite(gen).any() else np.inf
            learned = np.median(a["train_accuracy"][a["lr"] == lr][:, -1]) >= glr.LEARNED
            by_lr.append((-np.isfinite(gen).sum(), fastest, not learned,
                          -np.median(a["test_accuracy"][a["lr"] == lr][:, -1]), lr))
        assert row["best_lr"] == min(by_lr)[-1] and row["decay"] == pytest.approx(1e-2)
    assert [row["p"] for row in c["optimum_lr_vs_p"]["step_decay=0.01"]] == [7, 11]
    # large lr: the cells at lr >= 0.1, with their gaps from the curves
    assert sorted((x["grid"], x["lr"]) for x in c["large_lr"]) == [("adamw", 0.1), ("adamw_p11", 0.1), ("sgd", 0.3),
                                                                  ("sgd", 1.0)]
    a = glr.flat(parts["sgd"], TINY.grids[1], 1)
    gap = next(x for x in c["large_lr"] if x["grid"] == "sgd" and x["lr"] == 1.0)["median_max_gap"]
    assert gap == pytest.approx(float((a["train_accuracy"] - a["test_accuracy"])[a["lr"] == 1.0].max()))
    # lr x steps: the same history times, each lr its own step count
    scaled = parts["scaled"]
    assert scaled.coords["time"].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert scaled["steps_trained"].reshape(2).tolist() == [20, 40]
    assert [x["steps"] for x in c["scaled"][0]["cells"]] == [40, 20]  # cells sorted by lr
    # MSE vs CE: the pair at the same decay, each with loss and accuracy curves
    (pair,) = c["loss"]
    assert [x["loss"] for x in pair] == ["mse", "ce"] and len({x["decay"] for x in pair}) == 1
    for x in pair:
        assert set(x["curves"]) == {"at", "train_loss", "test_loss", "train_accuracy", "test_accuracy"}
    assert [x["init_scale"] for x in c["init_scale"][0]["cells"]] == [0.3, 1.0]
    assert json.loads(json.dumps(r)) == r


def check_quick_results(r: dict) -> None:
    """The quick preset's numbers that docs/grokking-lr.md states (float32, 2,500 steps,
    seeds 0 and 1)."""
    cell = lambda grid, lr, d: next(c for c in r[grid]["cells"] if c["lr"] == lr and
                                    c["step_decay"] == pytest.approx(d, abs=1e-12))
    uniform = float(np.log(67) / 67)
    # the decay, not the optimiser: SGD at per-step decay 1e-2 sits at the uniform output
    for lr in (0.3, 1.0, 3.0):
        assert cell("sgd", lr, 1e-2)["final_train_loss"] == pytest.approx(uniform, rel=1e-3)
    # at per-step decay 1e-3 SGD lr 1 learns (train accuracy well above chance)
    assert cell("sgd", 1.0, 1e-3)["final_train_accuracy"] > 0.5
    # AdamW generalises at 1e-2 (1 of 2 seeds at lr 3e-3 .. 3e-2), lr 0.1 is uniform at every decay
    assert [cell("adamw", lr, 1e-2)["generalised"] for lr in (1e-3, 3e-3, 1e-2, 3e-2)] == [0, 1, 1, 1]
    for d in (1e-2, 1e-3, 0.0):
        assert cell("adamw", 0.1, d)["final_train_loss"] == pytest.approx(uniform, rel=1e-3)
    assert r["claims"]["headline"]["lr_vs_p"]["p113@d=0.01"] == "lr=0.01,gen=2/2"
    scaled = {c["lr"]: c["generalised"] for c in r["adamw_scaled"]["cells"]}
    assert scaled == {0.0025: 1, 0.01: 1, 0.025: 2}
    assert all(c["generalised"] == 0 for c in r["mse"]["cells"]) and \
        max(c["final_test_accuracy"] for c in r["mse"]["cells"]) > 0.3


@pytest.mark.slow
def test_quick_preset_numbers_in_the_docs(tmp_path):
    """The quick preset end to end (about 4 minutes quiet, 25 under load) against the
    numbers docs/grokking-lr.md states."""
    check_quick_results(studies.reproduce("grokking-lr", "quick", tmp_path)["results"])
