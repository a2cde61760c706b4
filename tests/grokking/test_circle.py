"""``modular-circle`` (the five-neuron model on a fixed circular embedding) and the
``no-decay`` preset of ``modular-addition``: measures against closed forms and the
constructed solution, the model against a looped reference, a tiny end-to-end run."""
import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmem.studies import get, reproduce
from jaxmem.studies.grokking import circle, construct, modular_addition


def on_circle(angles, norms=1.0):
    return np.stack([np.cos(angles), np.sin(angles)], axis=1) * np.reshape(norms, (-1, 1))


@pytest.mark.parametrize("n", [5, 7])
def test_constructed_solution_is_perfect_and_exactly_doubled(n):
    """The explorable's construction (Appendix A) in this module's fixed-embedding model:
    every pair right, equal norms, gaps 2 pi / N, out-steps twice the in-gaps, winding 2."""
    c = construct.modular_circle(67, n, np.float64)
    params = {"in_proj": jnp.asarray(c["in_proj"]), "out_proj": jnp.asarray(c["out_proj"])}
    assert circle.accuracy(params, 67) == 1.0
    g = circle.geometry(c["in_proj"], c["out_proj"])
    np.testing.assert_allclose(g["in_gaps"], 2 * np.pi / n, atol=1e-12)
    np.testing.assert_allclose(g["step_ratios"], 2.0, atol=1e-12)
    assert g["winding"] == pytest.approx(2.0, abs=1e-12)
    assert g["mean_step_ratio"] == pytest.approx(2.0, abs=1e-12)
    assert g["max_gap_error"] < 1e-12 and g["doubling_residual"] < 1e-12
    assert g["in_norm_spread"] < 1e-12 and g["out_norm_spread"] < 1e-12
    ref = circle.constructed(67, n)
    assert ref["accuracy"] == 1.0 and ref["winding"] == pytest.approx(2.0)


def test_geometry_of_known_polygons():
    """Permuted neurons, a rotation, unequal norms and other rotation rates: every
    measure against its closed form."""
    rng = np.random.default_rng(0)
    n = 5
    perm = rng.permutation(n)
    phi = 0.3 + 2 * np.pi * perm / n  # evenly spaced, neurons shuffled
    in_norms = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    in_proj = on_circle(phi, in_norms).T
    # out rotates backwards once: ratio -1, winding -1
    g = circle.geometry(in_proj, on_circle(-phi + 1.0))
    np.testing.assert_allclose(g["in_gaps"], 2 * np.pi / n, atol=1e-12)
    np.testing.assert_allclose(g["step_ratios"], -1.0, atol=1e-12)
    assert g["winding"] == pytest.approx(-1.0)
    assert g["in_norm_spread"] == pytest.approx(np.std(in_norms) / np.mean(in_norms))
    assert g["out_norm_spread"] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_array_equal(g["order"], np.argsort(np.mod(phi + np.pi, 2 * np.pi) - np.pi))
    # out at 2 phi + 0.7: ratio 2, offset 0.7, residual 0
    g2 = circle.geometry(in_proj, on_circle(2 * phi + 0.7, 3.0))
    np.testing.assert_allclose(g2["step_ratios"], 2.0, atol=1e-12)
    assert g2["doubling_offset"] == pytest.approx(0.7) and g2["doubling_residual"] < 1e-12
    # uneven in-gaps: max |gap - 2 pi / N| closed form; out = in (ratio 1) has a residual
    phi3 = np.array([0.0, 1.0, 2.5, 4.0, 5.0])
    g3 = circle.geometry(on_circle(phi3).T, on_circle(phi3))
    wrapped = np.sort(np.arctan2(np.sin(phi3), np.cos(phi3)))  # angles as (-pi, pi], sorted
    gaps = np.diff(np.append(wrapped, wrapped[0] + 2 * np.pi))
    np.testing.assert_allclose(np.sort(gaps), np.sort(np.diff(np.append(phi3, 2 * np.pi))), atol=1e-12)
    np.testing.assert_allclose(g3["in_gaps"], gaps, atol=1e-12)
    assert g3["max_gap_error"] == pytest.approx(np.max(np.abs(gaps - 2 * np.pi / 5)))
    np.testing.assert_allclose(g3["step_ratios"], 1.0, atol=1e-12)
    assert g3["winding"] == pytest.approx(1.0) and g3["doubling_residual"] > 0.5


def test_fixed_embedding_and_model_match_a_looped_reference():
    """The published code's ``gen_fixed_embed([1])`` and forward pass, written out."""
    p, h = 11, 5
    e = circle.embedding(p)
    for i in range(p):
        assert e[i, 0] == pytest.approx(math.cos(2 * math.pi * i / p) / math.sqrt(p / 2))
        assert e[i, 1] == pytest.approx(math.sin(2 * math.pi * i / p) / math.sqrt(p / 2))
    with jax.enable_x64(True):
        params = circle.init(jax.random.key(0), h)
        assert params["in_proj"].shape == (2, h) and params["out_proj"].shape == (h, 2)
        assert params["in_proj"].dtype == jnp.float64
        a, b = np.array([0, 3, 10]), np.array([4, 3, 9])
        got = np.asarray(circle.apply(params, jnp.asarray(a), jnp.asarray(b), p))
    w_in, w_out = np.asarray(params["in_proj"]), np.asarray(params["out_proj"])
    for n in range(len(a)):
        hidden = [max(0.0, sum((e[a[n], d] + e[b[n], d]) * w_in[d, j] for d in range(2))) for j in range(h)]
        out = [sum(hidden[j] * w_out[j, d] for j in range(h)) for d in range(2)]
        logits = [sum(out[d] * e[c, d] for d in range(2)) for c in range(p)]
        np.testing.assert_allclose(got[n], logits, rtol=1e-12, atol=1e-12)


def test_init_is_haiku_linear_default():
    """``TruncatedNormal(1 / sqrt(fan_in))``: bounded by 2 / sqrt(fan_in), std 0.88 / sqrt(fan_in)."""
    n = 4000
    with jax.enable_x64(True):
        params = circle.init(jax.random.key(1), n)
    w_in, w_out = np.asarray(params["in_proj"]), np.asarray(params["out_proj"])
    assert np.abs(w_in).max() <= 2 / math.sqrt(2) and np.abs(w_out).max() <= 2 / math.sqrt(n)
    assert w_in.std() == pytest.approx(0.8796 / math.sqrt(2), rel=0.03)
    assert w_out.std() == pytest.approx(0.8796 / math.sqrt(n), rel=0.03)


def test_summary_and_figures_of_a_known_part(tmp_path):
    """``summarize`` and ``draw`` on saved arrays without training: seed 0 holds the
    constructed solution rotated, scaled and with its neurons shuffled (its measures are
    exact), seed 1 two neurons on top of each other (uneven)."""
    cfg = circle.CircleConfig(seeds=2, steps=40, n_history=4)
    c = construct.modular_circle(67, 5, np.float64)
    perm, rot = np.array([3, 0, 4, 1, 2]), 0.4
    in_angles = np.arctan2(c["in_proj"][1], c["in_proj"][0])[perm] + rot
    in0 = on_circle(in_angles, 7.0).T
    out0 = on_circle(2 * in_angles + 0.3, 3.0)
    angles1 = np.array([0.0, 0.01, 1.0, 2.0, 4.0])
    in1, out1 = on_circle(angles1).T, on_circle(angles1)
    t = 4
    stack = lambda a, b: np.stack([np.repeat(a[None], t, 0), np.repeat(b[None], t, 0)])
    hist = np.tile(np.linspace(0.1, 1.0, t), (2, 1))
    part = circle.Part({"train_loss": 1 / hist, "test_loss": 1 / hist, "train_accuracy": hist, "test_accuracy": hist,
                        "in_proj": stack(in0, in1), "out_proj": stack(out0, out1),
                        "all_pairs_accuracy": np.array([1.0, 0.2]), "diverged": np.zeros(2, bool)},
                       {**{k: ("seed", "step") for k in circle.HISTORY},
                        "in_proj": ("seed", "step", "component", "neuron"),
                        "out_proj": ("seed", "step", "neuron", "component"),
                        "all_pairs_accuracy": ("seed",), "diverged": ("seed",)},
                       {"seed": range(2), "step": cfg.grok_config.history_steps, "neuron": range(5)})
    res = circle.summarize({"train": part}, cfg)
    r0, r1 = res["runs"]
    np.testing.assert_allclose(r0["in_gaps_deg"], 72.0, atol=1e-9)
    np.testing.assert_allclose(r0["step_ratios"], 2.0, atol=1e-9)
    assert r0["winding"] == pytest.approx(2.0) and r0["doubling_residual_deg"] < 1e-9
    assert r0["in_norm_spread"] < 1e-12 and r0["doubling_offset_deg"] == pytest.approx(np.degrees(0.3))
    assert r0["first_perfect_step"] == cfg.grok_config.history_steps[-1]
    assert r1["max_gap_error_deg"] == pytest.approx(72.0 - np.degrees(0.01))
    assert r1["winding"] == pytest.approx(1.0) and r1["median_step_ratio"] == pytest.approx(1.0)
    assert res["perfect_all_pairs"] == 1 and res["winding_2"] == 1
    assert res["perfect_seeds"]["mean_step_ratio"] == [pytest.approx(2.0), pytest.approx(2.0)]
    assert res["constructed"]["accuracy"] == 1.0
    circle.draw({"train": part}, {"results": res}, cfg, tmp_path)
    for name in ("circle_neurons.png", "curves.png", "geometry_over_training.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_peak_finds_generalise_then_memorise():
    steps = np.arange(1, 7) * 10
    train = np.array([0.2, 0.6, 0.9, 1.0, 1.0, 1.0])
    up_down = modular_addition.peak(train, [0.1, 0.5, 0.8, 0.6, 0.4, 0.3], steps)
    assert up_down["peak_test_accuracy"] == 0.8 and up_down["peak_test_step"] == 30
    assert up_down["test_drop_after_peak"] == pytest.approx(0.5)
    assert up_down["train_accuracy_at_peak"] == 0.9 and up_down["min_train_accuracy_after_peak"] == 0.9
    assert up_down["generalise_then_memorise"]
    with_loss = modular_addition.peak(train, [0.1, 0.5, 0.8, 0.6, 0.4, 0.3], steps, [4.0, 2.0, 0.5, 1.0, 2.0, 3.0])
    assert with_loss["min_test_loss"] == 0.5 and with_loss["min_test_loss_step"] == 30
    assert with_loss["final_over_min_test_loss"] == pytest.approx(6.0)
    rising = modular_addition.peak(train, [0.1, 0.2, 0.4, 0.6, 0.9, 1.0], steps)
    assert not rising["generalise_then_memorise"] and rising["peak_test_step"] == 60
    # a fall with train accuracy not high at the end is not memorising
    assert not modular_addition.peak([0.2, 0.5, 0.5, 0.5, 0.5, 0.5], [0.1, 0.5, 0.8, 0.6, 0.4, 0.3],
                                     steps)["generalise_then_memorise"]


def test_no_decay_preset_is_the_published_reverse_grokking_config():
    """``MLP_Modular_Addition.ipynb``'s commented "Reverse grokking" hyper (docs/sources.md §3)."""
    cfg = modular_addition.PRESETS["no-decay"]
    code = {"p": 67, "train_frac": 0.4, "n_embed": 5, "n_hidden": 10, "weight_decay": 0.0, "lr": 1e-3,
            "steps": 20_000, "symmetric": True, "b1": 0.9, "b2": 0.98}
    assert {k: getattr(cfg, k) for k in code} == code


def test_circle_preset_is_the_published_fixed_embed_config():
    """``MLP_Modular_Addition_Fixed_Embed.ipynb``'s hyper (docs/sources.md §3)."""
    cfg = circle.PRESETS["quick"]
    code = {"p": 67, "train_frac": 0.3, "symmetric": True, "n_hidden": 5, "weight_decay": 1e-3, "lr": 1e-2,
            "b1": 0.9, "b2": 0.98, "steps": 15_000, "precision": "float64"}
    assert {k: getattr(cfg, k) for k in code} == code
    with pytest.raises(ValueError, match="precision"):
        circle.CircleConfig(precision="float16")


TINY_CIRCLE = circle.CircleConfig(p=11, seeds=2, steps=20, n_history=4)


@pytest.mark.slow  # about 25 s of CPU, mostly compiling
def test_tiny_circle_run_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setitem(circle.PRESETS, "tiny", TINY_CIRCLE)
    assert get("modular-circle") is circle
    reproduce("modular-circle", "tiny", tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    res = summary["results"]
    assert len(res["runs"]) == 2 and res["seeds"] == 2
    for r in res["runs"]:
        assert len(r["in_norms"]) == len(r["out_norms"]) == 5
        assert sum(r["in_gaps_deg"]) == pytest.approx(360.0)
        assert abs(r["winding"] - round(r["winding"])) < 1e-9
        assert 0.0 <= r["all_pairs_accuracy"] <= 1.0
    assert res["constructed"]["accuracy"] == 1.0
    for name in ("circle_neurons.png", "curves.png", "geometry_over_training.png"):
        assert (tmp_path / "run" / name).stat().st_size > 0


@pytest.mark.slow
def test_circle_quick_setting_reaches_perfect_accuracy_on_one_seed():
    """The source's setting, one seed: every pair right after 15,000 steps, and the
    out-projection going round twice (seed 003: "perfect accuracy", "twice as fast")."""
    cfg = dataclasses.replace(circle.PRESETS["quick"], seeds=1, n_history=10)
    with cfg.precision_context():
        res, _, _ = circle.train(cfg)
        final = jax.tree.map(lambda x: jnp.asarray(x)[0, -1], res.history.params)
        assert circle.accuracy(final, cfg.p) == 1.0
    assert circle.geometry(final["in_proj"], final["out_proj"])["winding"] == pytest.approx(2.0)
