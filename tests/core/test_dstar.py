import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmem import dstar


def _relu_acts(seed, runs, n, d, dead=(0, 5), dependent=True):
    """ReLU activations [runs, n, d] with dead columns and col 7 = col 1 + col 2."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((runs, n, 2 * d))
    w = rng.standard_normal((runs, 2 * d, d)) / np.sqrt(2 * d)
    h = np.maximum(x @ w, 0)
    h[:, :, list(dead)] = 0
    if dependent:
        h[:, :, 7] = h[:, :, 1] + h[:, :, 2]
    return h


def _pinv_leverage(h_nxd):
    """float64 reference: diag(H pinv(H)) with numpy's default cutoff."""
    return np.sum(h_nxd * np.linalg.pinv(h_nxd).T, axis=-1)


def test_exact_matches_pinv_float64_batched():
    h = _relu_acts(0, runs=3, n=60, d=12)
    want = np.stack([_pinv_leverage(run) for run in h])
    with jax.enable_x64(True):
        got = dstar.exact(h)
        assert got.dtype == jnp.float64 and got.shape == (3, 60)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(dstar.rank(h), [np.linalg.matrix_rank(run) for run in h])
    np.testing.assert_array_equal(dstar.live(h), [10, 10, 10])  # 12 - 2 dead
    np.testing.assert_array_equal(dstar.rank(h), [9, 9, 9])  # col 7 = col 1 + col 2


def test_exact_float32_close_to_float64():
    h = _relu_acts(1, runs=2, n=80, d=16)
    got = dstar.exact(h.astype(np.float32))
    assert got.dtype == jnp.float32
    want = np.stack([_pinv_leverage(run) for run in h])
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_sum_is_rank_and_live_when_independent():
    h = _relu_acts(2, runs=3, n=50, d=10, dependent=False)
    d_star = dstar.exact(h.astype(np.float32))
    np.testing.assert_allclose(d_star.sum(-1), [8, 8, 8], rtol=1e-5)
    np.testing.assert_array_equal(dstar.rank(h), dstar.live(h))
    assert float(d_star.min()) >= 0 and float(d_star.max()) <= 1 + 1e-6


def test_regular_polygon_gives_m_over_t():
    t = 7
    angle = 2 * np.pi * np.arange(t) / t
    polygon = np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    np.testing.assert_allclose(dstar.exact(polygon), np.full(t, 2 / t), rtol=1e-5)


def test_invariant_to_invertible_neuron_mixing():
    h = _relu_acts(3, runs=1, n=40, d=9, dead=(), dependent=False)[0]
    mix = np.random.default_rng(3).standard_normal((9, 9))
    np.testing.assert_allclose(dstar.exact(h @ mix), dstar.exact(h), atol=1e-4)


def test_invariant_to_neuron_scale_float32():
    h = _relu_acts(7, runs=1, n=200, d=16)[0].astype(np.float32)
    scale = np.logspace(-4, 4, 16).astype(np.float32)
    np.testing.assert_allclose(dstar.exact(h * scale[None, :]), dstar.exact(h), atol=1e-5)
    assert int(dstar.rank(h * scale[None, :])) == int(dstar.rank(h)) == 13


def test_float32_accurate_on_ill_conditioned_activations():
    # Singular values from 1 down to 10^-2.5 (eigenvalues of G down to 1e-5).
    rng = np.random.default_rng(8)
    q_nxd = np.linalg.qr(rng.standard_normal((400, 16)))[0]
    rotation = np.linalg.qr(rng.standard_normal((16, 16)))[0]
    h = q_nxd * np.logspace(0, -2.5, 16)[None, :] @ rotation
    want = _pinv_leverage(h)
    np.testing.assert_allclose(dstar.exact(h.astype(np.float32)), want, atol=1e-5)


def test_zero_rows_and_zero_input():
    h = _relu_acts(4, runs=1, n=30, d=8, dead=(), dependent=False)[0]
    h[[3, 11]] = 0
    d_star = dstar.exact(h)
    assert d_star[3] == 0 and d_star[11] == 0
    zeros = np.zeros((2, 5, 4), np.float32)
    np.testing.assert_array_equal(dstar.exact(zeros), 0)
    np.testing.assert_array_equal(dstar.rank(zeros), [0, 0])
    np.testing.assert_array_equal(dstar.live(zeros), [0, 0])


def test_solve_converges_to_exact():
    # Moderately sized, batched over 2 runs; dead and dependent neurons.
    h = _relu_acts(5, runs=2, n=1500, d=48).astype(np.float32)
    h[1, :, 20:30] = h[1, :, 10:20] * 0.5 + h[1, :, 30:40]  # more dependence
    want = dstar.exact(h)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = dstar.solve(h)
    assert isinstance(result, dstar.DStarResult)
    assert result.dstar.shape == (2, 1500) and result.total.shape == (2,)
    np.testing.assert_array_equal(result.converged, [True, True])
    np.testing.assert_array_equal(result.rank, dstar.rank(h))
    np.testing.assert_array_equal(result.rank, [45, 35])
    np.testing.assert_array_equal(result.live, [46, 46])
    assert np.abs(result.dstar - want).max() < 1e-3 * np.abs(want).max()
    assert np.all(np.abs(result.dstar - want) < 1e-3 * want)
    np.testing.assert_allclose(result.total, result.rank, rtol=1e-4)
    # A second call with another lr reuses the compiled program.
    size = dstar._solve._cache_size()
    dstar.solve(h, lr=0.2)
    assert dstar._solve._cache_size() == size


def test_schedule_endpoints_and_traced_lr():
    schedule = dstar._schedule(0.3, steps=50, warmup=5)
    np.testing.assert_allclose([schedule(0), schedule(5), schedule(50)], [0.0, 0.3, 0.0], atol=1e-7)
    values = np.array([schedule(t) for t in range(5, 51)])
    assert np.all(np.diff(values) < 0)
    h = _relu_acts(9, runs=1, n=200, d=16)[0].astype(np.float32)
    lrs = jnp.array([0.05, 0.25])
    vmapped = jax.vmap(lambda lr: dstar.solve(h, steps=10, lr=lr).dstar)(lrs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # lr 0.05 is under-trained at 10 steps
        plain = [dstar.solve(h, steps=10, lr=lr).dstar for lr in (0.05, 0.25)]
    np.testing.assert_allclose(vmapped, np.stack(plain), rtol=1e-5)
    assert not np.allclose(plain[0], plain[1], rtol=1e-3)


def test_undertrained_solve_warns_and_reports_failure():
    h = _relu_acts(6, runs=1, n=300, d=24)[0].astype(np.float32)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        result = dstar.solve(h, steps=3, lr=1e-3)
    assert not bool(result.converged)
    assert float(result.total) < float(result.rank) * (1 - 1e-3)


def test_solve_under_jit_does_not_warn():
    h = _relu_acts(6, runs=1, n=300, d=24)[0].astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        converged = jax.jit(lambda h: dstar.solve(h, steps=3, lr=1e-3).converged)(h)
    assert not bool(converged)


@pytest.mark.parametrize(
    "call",
    [
        lambda: dstar.exact(np.ones(5)),
        lambda: dstar.exact(np.ones((0, 3))),
        lambda: dstar.exact(np.ones((4, 3)), rtol=-1.0),
        lambda: dstar.rank(np.ones(3)),
        lambda: dstar.solve(np.ones((4, 3)), steps=0),
        lambda: dstar.solve(np.ones((4, 3)), steps=10, warmup=10),
        lambda: dstar.solve(np.ones((4, 3)), lr=0.0),
        lambda: dstar.solve(np.ones((4, 3)), tol=-1e-3),
    ],
)
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()
