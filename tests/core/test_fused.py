import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmem import data, train
from jaxmem.models import fused, relu_output

N, T = 40, 29  # features and rows of the small data sets (T is no multiple of 8)


def _rows():
    return data.sparse_rows(jax.random.key(2), T, N, 0.9)


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 8 rows, so that every test crosses chunks and the last one overlaps."""
    monkeypatch.setattr(fused, "CHUNK_ELEMENTS", 8)


def _params(key, n, m, bias):
    params = relu_output.init(key, n, m, bias=bias)
    if bias:  # biases of both signs, so that some features are live at h = 0
        params["b"] = 0.2 * jax.random.normal(jax.random.fold_in(key, 1), (n,))
    return params


def _close(got, want, rtol=2e-5):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        scale = float(jnp.max(jnp.abs(w)))
        assert scale > 0
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("impl", fused.IMPLS)
@pytest.mark.parametrize("dense", [False, True])
def test_row_errors_and_vjp_match_autodiff_of_the_plain_expression(small_chunks, impl, dense):
    m = 3
    keys = jax.random.split(jax.random.key(5), 5)
    h, W, b = (jax.random.normal(k, s) for k, s in zip(keys, [(T, m), (m, N), (N,)]))
    x = jax.random.uniform(keys[3], (T, N)) if dense else None
    ct = jax.random.normal(keys[4], (T,))

    def plain(h, W, b):
        err = jax.nn.relu(h @ W + b[None, :]) - (0.0 if x is None else x)
        return jnp.sum(err**2, axis=-1)

    @jax.jit(static_argnums=0)
    def value_and_vjp(f):
        value, vjp = jax.vjp(f, h, W, b)
        return value, vjp(ct)

    _close(value_and_vjp(lambda h, W, b: fused.row_errors(h, W, b, x, impl)), value_and_vjp(plain))


@pytest.mark.parametrize("impl", fused.IMPLS)
@pytest.mark.parametrize("sparse, bias, reduction, hidden_relu", [(True, True, "sum", False),
                                                                 (True, False, "mean", True),
                                                                 (False, True, "mean", True),
                                                                 (False, False, "sum", False)])
def test_fused_loss_and_gradient_equal_the_reference(small_chunks, impl, sparse, bias, reduction, hidden_relu):
    rows = _rows()
    x = rows if sparse else data.to_dense(rows, N)
    params = _params(jax.random.key(3), N, 2, bias)
    weights = (jnp.arange(T) < T - 5).astype(jnp.float32)  # 5 padded rows of weight 0

    def value_and_grad(fused_impl):
        return jax.jit(jax.value_and_grad(lambda p: relu_output.loss(p, x, weights, reduction, hidden_relu,
                                                                      fused_impl)))(params)

    got, want = value_and_grad(impl), value_and_grad(False)
    _close(got, want)
    assert set(got[1]) == ({"W", "b"} if bias else {"W"})


def test_fused_gradient_ignores_padded_rows(small_chunks):
    x = _rows()
    params = _params(jax.random.key(5), N, 2, True)
    weights = (jnp.arange(T) < 13).astype(jnp.float32)
    first = jax.tree.map(lambda a: a[:13], x)
    got = jax.jit(jax.grad(lambda p: relu_output.loss(p, x, weights, fused=True)))(params)
    _close(got, jax.jit(jax.grad(lambda p: relu_output.loss(p, first)))(params))


def test_fused_gradient_under_vmap_equals_the_reference():
    x = data.to_dense(_rows(), N)
    params = jax.vmap(lambda k: _params(k, N, 2, True))(jax.random.split(jax.random.key(7), 3))

    def grads(fused_impl):
        return jax.jit(jax.vmap(jax.grad(lambda p: relu_output.loss(p, x, fused=fused_impl))))(params)

    for impl in fused.IMPLS:
        _close(grads(impl), grads(False))


@pytest.mark.parametrize("impl", fused.IMPLS)
def test_fused_backward_keeps_no_T_x_n_tensor(small_chunks, impl):
    n, rows = 2000, 1000
    x = data.sparse_rows(jax.random.key(8), rows, n, 0.999)
    params = _params(jax.random.key(9), n, 2, True)

    def temp_bytes(fused_impl):
        grad = jax.jit(jax.grad(lambda p: relu_output.loss(p, x, fused=fused_impl)))
        return grad.lower(params).compile().memory_analysis().temp_size_in_bytes

    assert temp_bytes(False) >= 4 * rows * n  # the reference keeps float32 [T, n] tensors
    assert temp_bytes(impl) < 0.25 * 4 * rows * n


def test_short_training_run_fused_equals_reference(small_chunks):
    x = _rows()
    weights = (jnp.arange(T) < 20).astype(jnp.float32)
    configs = [train.TrainConfig(n_features=N, steps=60, n_history=6, fused=f) for f in (False, True)]
    results = [jax.jit(lambda x, w, cfg=cfg: train.train(cfg, train.Hyper(lr=3e-2), jax.random.key(11), x, w))(x, weights)
               for cfg in configs]
    reference, fast = results
    _close(fast.params, reference.params, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(fast.history), np.asarray(reference.history), rtol=1e-4)
    assert float(reference.history[-1]) < 0.8 * float(reference.history[0])  # it did train


def test_bad_fused_setting():
    with pytest.raises(ValueError, match="impl must be one of .*'gpu'"):
        fused.row_errors(jnp.ones((2, 1)), jnp.ones((1, 3)), jnp.zeros(3), impl="gpu")
    with pytest.raises(ValueError, match="fused must be a bool, 'auto' or one of .*'fast'"):
        train.TrainConfig(n_features=4, fused="fast")


def test_fused_gradient_inside_shard_map_over_runs():
    """As the sweep runs it: parameters split over a mesh axis, data whole."""
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("runs",))
    x = _rows()
    params = jax.vmap(lambda k: _params(k, N, 2, True))(jax.random.split(jax.random.key(12), 2))

    def grads(fused_impl):
        per_run = jax.vmap(jax.grad(lambda p: relu_output.loss(p, x, fused=fused_impl)))
        split = jax.sharding.PartitionSpec("runs")
        return jax.jit(jax.shard_map(per_run, mesh=mesh, in_specs=(split,), out_specs=split))(params)

    for impl in fused.IMPLS:
        _close(grads(impl), grads(False))
