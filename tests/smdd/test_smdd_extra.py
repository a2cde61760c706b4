"""smdd-variants, smdd-modelwise and smdd-repeat-slot on tiny configs (one bucket each)."""
import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from jaxmem import data, metrics, results, train
from jaxmem.models import relu_output
from jaxmem.studies.smdd import modelwise as smdd_modelwise
from jaxmem.studies.smdd import phase as smdd_phase
from jaxmem.studies.smdd import repeat as smdd_repeat
from jaxmem.studies.smdd import variants as smdd_variants
from jaxmem.sweep import Sweep, data_key, holdout_key

CFG = train.TrainConfig(n_features=60, n_hidden=2, steps=60, n_history=10)
SWEEP = Sweep(T=(8, 20), sparsity=0.9, data_seeds=2, n_test=200, max_pad_ratio=10.0)  # one bucket


def test_mean_loss_with_eps_over_n_trains_exactly_as_the_sum_loss(key):
    """Adam's update m / (sqrt(v) + eps) is unchanged when gradients and eps shrink alike."""
    cfg = train.TrainConfig(n_features=50, n_hidden=2, steps=80, n_history=8, eps=1e-4)
    x = data.sparse_features(key, 30, 50, 0.8)
    hyper = train.Hyper(3e-2)
    run = lambda c: np.asarray(train.train(c, hyper, key, x).params["W"])  # noqa: E731
    base = run(cfg)
    same = run(smdd_variants.variant_config(cfg, "mean_eps"))
    plain_mean = run(smdd_variants.variant_config(cfg, "mean"))
    np.testing.assert_allclose(same, base, rtol=2e-4, atol=1e-6)
    assert np.max(np.abs(plain_mean - base)) > 1e-2  # eps 1e-4 is large next to the 1/n gradients
    assert smdd_variants.variant_config(cfg, "mean_eps").eps == pytest.approx(1e-4 / 50)
    with pytest.raises(ValueError, match="'huber'"):
        smdd_variants.variant_config(cfg, "huber")
    with pytest.raises(ValueError, match="reduction='mean'"):
        smdd_variants.variant_config(dataclasses.replace(cfg, reduction="mean"), "sum")


def test_peak_stats_of_a_double_descent_curve():
    T = [1, 2, 3, 4, 5]
    got = smdd_variants.peak_stats(T, [1.0, 0.8, 1.2, 0.9, 0.6])
    assert got["peak_T"] == 3 and got["falls_again"]
    assert got["height_over_largest_T"] == pytest.approx(0.6) and got["ratio_to_largest_T"] == pytest.approx(2.0)
    assert got["height_over_dip"] == pytest.approx(0.4)
    assert smdd_variants.peak_stats(T, [1.0, 0.9, 0.8, 0.7, 0.6])["peak_T"] is None
    rising = smdd_variants.peak_stats(T, [1.0, 0.8, 0.9, 1.0, 1.1])
    assert rising["peak_T"] == "> 5" and not rising["falls_again"]


def test_variants_tiny_run_evaluates_each_model_as_configured(monkeypatch, tmp_path):
    monkeypatch.setitem(smdd_variants.PRESETS, "tiny", (CFG, SWEEP))
    summary = smdd_variants.run("tiny", tmp_path)
    rows = {r["variant"]: r for r in summary["results"]["by_variant"]}
    assert list(rows) == list(smdd_variants.VARIANTS)
    assert summary["results"]["mean_eps_vs_sum_max_rel_diff"] < 1e-3
    saved = results.load_arrays(tmp_path / "runs.npz")
    np.testing.assert_allclose(rows["mean"]["test_loss"], saved["mean_test_loss"][:, 0, 0, 0].mean(-1) * 60, rtol=1e-6)
    # the hidden-ReLU model's test loss, recomputed on the same test set
    test = data.to_dense(data.sparse_rows(holdout_key(SWEEP), SWEEP.n_test, 60, SWEEP.sparsity), 60)
    params = {"W": saved["hidden_relu_W"][1, 0, 0, 0, 0], "b": saved["hidden_relu_b"][1, 0, 0, 0, 0]}
    with_relu = float(relu_output.loss(params, test, hidden_relu=True))
    np.testing.assert_allclose(saved["hidden_relu_test_loss"][1, 0, 0, 0, 0], with_relu, rtol=1e-5)
    assert abs(float(relu_output.loss(params, test)) - with_relu) > 1e-4
    assert (tmp_path / "variants.png").stat().st_size > 10_000


def test_peak_m():
    got = smdd_modelwise.peak_m([1, 2, 3, 4], [0.9, 1.1, 1.0, 0.95])
    assert got["peak_m"] == 2 and got["interior"] and got["bigger_m_hurts"] == [2]
    assert got["over_largest_m"] == pytest.approx(0.15)
    assert not smdd_modelwise.peak_m([1, 2, 3], [1.0, 1.1, 1.2])["interior"]


def test_modelwise_reads_the_phase_grid_and_equals_its_own_training(monkeypatch, tmp_path):
    monkeypatch.setitem(smdd_phase.PRESETS, "tiny", (dataclasses.replace(CFG, n_hidden=1), SWEEP, (1, 3)))
    monkeypatch.setitem(smdd_modelwise.PRESETS, "tiny", (dataclasses.replace(CFG, n_hidden=1), SWEEP, (1, 3)))
    phase = smdd_phase.run("tiny", tmp_path / "phase")
    read = smdd_modelwise.run("tiny", tmp_path / "read", source=tmp_path / "phase")
    grid = np.array(phase["results"]["test_loss_grid"])  # [len(T), len(m)]
    for i, row in enumerate(read["results"]["by_T"]):
        np.testing.assert_allclose(row["test_loss"], grid[i], rtol=1e-6)
        assert row["peak_m"] == (1, 3)[int(np.argmax(grid[i]))]
    own = smdd_modelwise.run("tiny", tmp_path / "own")  # same shapes: the compiled programs are reused
    for a, b in zip(own["results"]["by_T"], read["results"]["by_T"]):
        np.testing.assert_allclose(a["test_loss"], b["test_loss"], rtol=1e-5)
    assert (tmp_path / "read" / "modelwise.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="not an smdd-phase run"):
        smdd_modelwise.run("tiny", tmp_path / "x", source=tmp_path / "own")


def _unit(deg):
    return np.array([np.cos(np.radians(deg)), np.sin(np.radians(deg))])


def test_slot_geometry_of_constructed_models():
    """Four pentagon features and a point stored on the fifth direction: a slot; five
    pentagon features and the point dropped: the pentagon."""
    n = 12
    x0 = np.zeros(n)
    x0[:3] = [0.8, 0.5, np.sqrt(1 - 0.8**2 - 0.5**2)]
    W = np.zeros((2, n))
    for k, deg in enumerate((0, 72, 144, 216)):
        W[:, 3 + k] = _unit(deg)
    slot = W.copy()
    slot[:, :3] = np.outer(_unit(288), x0[:3])  # h0 = W x0 = u_288, and W^T h0 = x0 on the support
    got = smdd_repeat.slot_geometry(slot, np.zeros(n), x0)
    assert got["stored"] and got["slot"] and not got["pentagon"]
    assert got["n_learned_outside"] == 4 and got["support"] == 3
    assert got["n_learned"] == int(metrics.n_learned(metrics.feature_dimensionality({"W": jnp.asarray(slot)})))
    # error: the features at 0 and 216 degrees light up by cos 72 each
    assert got["relative_loss"] == pytest.approx(2 * np.cos(np.radians(72)) ** 2, rel=1e-5)
    assert got["gap_error_deg"] == pytest.approx(0.0, abs=1e-6)
    pentagon = W.copy()
    pentagon[:, 7] = _unit(288)
    got = smdd_repeat.slot_geometry(pentagon, np.zeros(n), x0)
    assert got["pentagon"] and not got["stored"] and got["relative_loss"] == pytest.approx(1.0)
    assert got["gap_error_deg"] == pytest.approx(0.0, abs=1e-6)
    empty = smdd_repeat.slot_geometry(np.zeros((2, n)), np.zeros(n), x0)
    assert empty["n_learned"] == 0 and empty["gap_error_deg"] is None and not empty["stored"]
    gaps = smdd_repeat.angle_gaps(np.stack([_unit(d) for d in (10, 100, 250)]))  # from -110 degrees on
    np.testing.assert_allclose(gaps, [120, 90, 150])


def test_repeat_slot_tiny_run(monkeypatch, tmp_path):
    sweep = dataclasses.replace(SWEEP, T=(20,))
    monkeypatch.setitem(smdd_repeat.SLOT_PRESETS, "tiny", (CFG, sweep, (1, 3)))
    summary = smdd_repeat.run_slot("tiny", tmp_path)
    cells = summary["results"]["by_cell"]
    assert [(c["T"], c["R"]) for c in cells] == [(20, 1), (20, 3)] and cells[0]["differs_from_R1"] == 0.0
    saved = results.load_arrays(tmp_path / "runs.npz")
    for c in cells:
        for s, r in enumerate(c["per_seed"]):
            W, b = saved[f"R{c['R']}_W"][0, 0, 0, 0, s], saved[f"R{c['R']}_b"][0, 0, 0, 0, s]
            x0 = np.asarray(data.sparse_features(data_key(sweep, s), 1, 60, 0.9))[0]
            assert r["n_learned"] == int(saved[f"R{c['R']}_n_learned"][0, 0, 0, 0, s])
            loss = float(relu_output.example_losses({"W": jnp.asarray(W), "b": jnp.asarray(b)}, jnp.asarray(x0)))
            assert r["relative_loss"] == pytest.approx(loss / float(np.sum(x0**2)), rel=1e-4)
    assert (tmp_path / "repeat_slots.png").stat().st_size > 10_000


def test_repeat_map_counts_learned_features_per_run(monkeypatch, tmp_path):
    sweep = dataclasses.replace(SWEEP, T=(20,))  # the shapes of the test above: no new compile
    monkeypatch.setitem(smdd_repeat.PRESETS, "tiny", (CFG, sweep, (1, 3)))
    summary = smdd_repeat.run("tiny", tmp_path)
    saved = results.load_arrays(tmp_path / "runs.npz")
    want = [[saved[f"R{R}_n_learned"][0, 0, 0, 0].mean() for R in (1, 3)]]
    np.testing.assert_allclose(summary["results"]["n_learned_grid"], want)
    assert np.all(np.array(summary["results"]["n_learned_outside_grid"]) <= np.array(want))
