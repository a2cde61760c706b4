import numpy as np
import pytest
import scipy.stats

from jaxmem import stats


def _tied(seed, n, levels):
    return np.random.default_rng(seed).integers(0, levels, n).astype(np.float32)


def test_rankdata_matches_scipy_average_batched():
    x = np.stack([_tied(0, 40, 6), _tied(1, 40, 40), np.arange(40.0)[::-1]])
    np.testing.assert_array_equal(stats.rankdata(x), scipy.stats.rankdata(x, axis=-1))


@pytest.mark.parametrize("seed, levels", [(0, 3), (1, 8), (2, 1000)])
def test_spearman_matches_scipy_with_ties(seed, levels):
    a, b = _tied(seed, 57, levels), _tied(seed + 10, 57, levels)
    b = b + 0.5 * a  # correlated
    want = scipy.stats.spearmanr(a, b).statistic
    np.testing.assert_allclose(stats.spearman(a, b), want, rtol=1e-5, atol=1e-6)


def test_spearman_monotone_and_nan():
    x = np.linspace(-1.0, 1.0, 30)
    np.testing.assert_allclose(stats.spearman(x, np.exp(3 * x)), 1.0, rtol=1e-6)
    np.testing.assert_allclose(stats.spearman(x, -(x**3)), -1.0, rtol=1e-6)
    assert np.isnan(stats.spearman(x, np.ones_like(x)))
    assert np.isnan(stats.spearman(np.where(x > 0.5, np.nan, x), x))


def test_spearman_matrix_symmetric_unit_diagonal_matches_pairs():
    rng = np.random.default_rng(3)
    base = rng.standard_normal(50)
    curves = np.stack([np.round(base + s * rng.standard_normal(50), 1) for s in (0.1, 0.5, 2.0, 0.0)])
    rho = np.asarray(stats.spearman_matrix(curves))
    assert rho.shape == (4, 4)
    np.testing.assert_array_equal(rho, rho.T)
    np.testing.assert_array_equal(np.diag(rho), 1.0)
    want = scipy.stats.spearmanr(curves, axis=1).statistic
    np.testing.assert_allclose(rho, want, rtol=1e-5, atol=1e-6)


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        stats.spearman(np.ones(3), np.ones(4))
    with pytest.raises(ValueError):
        stats.spearman_matrix(np.ones(3))
