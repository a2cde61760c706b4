import jax.numpy as jnp
import numpy as np

from jaxmem import metrics


def _reference(v):
    v = np.asarray(v, np.float64)
    out = np.zeros(v.shape[0])
    for i, vi in enumerate(v):
        norm = np.linalg.norm(vi)
        if norm > 0:
            out[i] = norm**2 / np.sum((v @ (vi / norm)) ** 2)
    return out


def test_regular_polygon_gives_m_over_T():
    for T in (3, 5, 7, 12):
        angles = 2 * np.pi * np.arange(T) / T
        v = jnp.asarray(np.stack([np.cos(angles), np.sin(angles)], 1) * 1.7, jnp.float32)
        np.testing.assert_allclose(np.asarray(metrics.dimensionality(v)), 2 / T, rtol=1e-5)


def test_matches_pairwise_formula_batched_and_zero_rows():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(3, 9, 4)).astype(np.float32)
    v[1, 4] = 0
    got = np.asarray(metrics.dimensionality(jnp.asarray(v)))
    for r in range(3):
        np.testing.assert_allclose(got[r], _reference(v[r]), rtol=1e-4, atol=1e-7)
    assert got[1, 4] == 0


def test_orthogonal_features_have_dimensionality_one():
    W = {"W": jnp.eye(3, 5) * 2.0, "b": jnp.zeros(5)}
    np.testing.assert_allclose(np.asarray(metrics.feature_dimensionality(W)), [1, 1, 1, 0, 0])
    assert int(metrics.n_learned(metrics.feature_dimensionality(W))) == 3
    np.testing.assert_allclose(float(metrics.weight_norm(W)), np.sqrt(12.0), rtol=1e-6)
