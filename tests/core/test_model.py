import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmem import data
from jaxmem.models import relu_output


def test_apply_matches_formula_and_batches(key):
    params = relu_output.init(key, 12, 3)
    params["b"] = jax.random.normal(jax.random.key(1), (12,)) * 0.1
    x = jax.random.uniform(jax.random.key(2), (4, 5, 12))
    W, b = np.asarray(params["W"], np.float64), np.asarray(params["b"], np.float64)
    expected = np.maximum(np.asarray(x, np.float64) @ W.T @ W + b, 0)
    np.testing.assert_allclose(np.asarray(relu_output.apply(params, x)), expected, rtol=1e-5, atol=1e-6)
    single = relu_output.apply(params, x[1, 2])
    np.testing.assert_allclose(np.asarray(single), expected[1, 2], rtol=1e-5, atol=1e-6)


def test_xavier_init_statistics(key):
    W = np.asarray(relu_output.init(key, 2000, 8)["W"])
    assert W.shape == (8, 2000)
    assert abs(W.std() / np.sqrt(2 / 2008) - 1) < 0.03
    assert np.all(np.asarray(relu_output.init(key, 20, 2)["b"]) == 0)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("hidden_relu", [False, True])
def test_sparse_and_dense_give_same_loss_and_gradients(key, reduction, hidden_relu):
    n = 60
    rows = data.sparse_rows(key, 40, n, 0.9)
    dense = data.to_dense(rows, n)
    params = relu_output.init(jax.random.key(3), n, 3)
    params["b"] = 0.05 * jax.random.normal(jax.random.key(4), (n,))
    w = (jnp.arange(40) < 31).astype(jnp.float32)
    f = lambda p, x: relu_output.loss(p, x, w, reduction, hidden_relu)
    (l_sparse, g_sparse), (l_dense, g_dense) = (jax.value_and_grad(f)(params, x) for x in (rows, dense))
    np.testing.assert_allclose(l_sparse, l_dense, rtol=1e-5)
    for name in ("W", "b"):
        np.testing.assert_allclose(np.asarray(g_sparse[name]), np.asarray(g_dense[name]), rtol=1e-4, atol=1e-6)


def test_weights_mask_rows_and_mean_reduction(key):
    x = data.sparse_features(key, 10, 30, 0.7)
    params = relu_output.init(key, 30, 2)
    w = jnp.array([1.0] * 6 + [0.0] * 4)
    np.testing.assert_allclose(relu_output.loss(params, x, w), relu_output.loss(params, x[:6]), rtol=1e-6)
    np.testing.assert_allclose(relu_output.loss(params, x, reduction="mean") * 30,
                               relu_output.loss(params, x), rtol=1e-6)


def test_bad_input(key):
    with pytest.raises(ValueError, match="n_hidden.*0"):
        relu_output.init(key, 10, 0)
    with pytest.raises(ValueError, match="'max'"):
        relu_output.loss(relu_output.init(key, 4, 2), jnp.ones((2, 4)), reduction="max")
