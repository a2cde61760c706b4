"""The analyses of smdd-variants, smdd-modelwise and smdd-repeat(-slot) on constructed
inputs (their tiny runs are in test_smdd_family.py)."""
import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from jaxmem import data, metrics, train
from jaxmem.studies.smdd import modelwise as smdd_modelwise
from jaxmem.studies.smdd import repeat as smdd_repeat
from jaxmem.studies.smdd import variants as smdd_variants


@pytest.mark.slow
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


def test_peak_m():
    got = smdd_modelwise.peak_m([1, 2, 3, 4], [0.9, 1.1, 1.0, 0.95])
    assert got["peak_m"] == 2 and got["interior"] and got["bigger_m_hurts"] == [2]
    assert got["over_largest_m"] == pytest.approx(0.15)
    assert not smdd_modelwise.peak_m([1, 2, 3], [1.0, 1.1, 1.2])["interior"]


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
