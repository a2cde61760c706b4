"""``run_grid``: a flax model over seeds x n_train x lr against single runs of a plain
optax loop, gradient descent on least squares against its closed form, NaN runs flagged,
and a killed run resumed from its chunk checkpoint with the same numbers."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmem.progress import Progress
from jaxmem.train import grid as grid_mod
from jaxmem.train import run_grid

N, D = 24, 3


def regression_data():
    kx, kw = jax.random.split(jax.random.key(5))
    x = jax.random.normal(kx, (N, D))
    y = x @ jnp.array([1.0, -2.0, 0.5]) + 0.1 * jax.random.normal(kw, (N,))
    return {"x": x, "y": y}


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(1)(nn.tanh(nn.Dense(8)(x)))[:, 0]


def flax_model():
    module = MLP()
    init = lambda key, hp: module.init(key, jnp.zeros((1, D)))  # noqa: E731
    loss = lambda p, b, hp: (module.apply(p, b["x"]) - b["y"]) ** 2  # noqa: E731
    return module, init, loss


@pytest.mark.slow  # over 20 s on the 2-core CPU; the protocol's and run_grid's equivalents stay in the default run
def test_flax_grid_matches_single_optax_runs():
    module, init, loss = flax_model()
    data = regression_data()
    steps = 60
    res = run_grid(init, loss, data, {"seed": [0, 1], "n_train": [10, 24], "lr": [1e-2, 3e-2]}, steps, n_history=6)
    assert res.train_loss.shape == (2, 2, 2) and res.history.shape == (2, 2, 2, 6)
    assert list(res.axes) == ["seed", "n_train", "lr"]
    for i, seed in enumerate([0, 1]):
        for j, n in enumerate([10, 24]):
            for k, lr in enumerate([1e-2, 3e-2]):
                params = init(grid_mod.init_key(0, seed), None)
                tx = optax.adamw(optax.warmup_cosine_decay_schedule(0.0, lr, 3, steps, 0.0), weight_decay=0.0)
                state = tx.init(params)
                sub = jax.tree.map(lambda a: a[:n], data)
                value_grad = jax.jit(jax.value_and_grad(lambda p: jnp.mean(loss(p, sub, None))))
                for _ in range(steps):
                    _, g = value_grad(params)
                    updates, state = tx.update(g, state, params)
                    params = optax.apply_updates(params, updates)
                got = jax.tree.map(lambda a: a[i, j, k], res.params)
                jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6), got, params)
                np.testing.assert_allclose(res.train_loss[i, j, k], value_grad(params)[0], rtol=2e-5)
    np.testing.assert_allclose(res.history[..., -1], res.train_loss, rtol=1e-6)
    ds = res.to_xarray()
    assert float(ds.train_loss.sel(n_train=24, lr=3e-2, seed=1)) == pytest.approx(float(res.train_loss[1, 1, 1]))


def test_gradient_descent_matches_closed_form():
    """Full-batch SGD at a constant lr on least squares: ``w_t - w* = (I - lr A)^t (w_0 - w*)``,
    ``A = 2 X^T X / n`` over the first ``n`` rows."""
    data = regression_data()
    init = lambda key, hp: {"w": jax.random.normal(key, (D,))}  # noqa: E731
    loss = lambda p, b, hp: (b["x"] @ p["w"] - b["y"]) ** 2  # noqa: E731
    steps = 50
    res = run_grid(init, loss, data, {"n_train": [8, 24], "lr": [0.05, 0.1], "seed": [3]}, steps,
                   optimizer="sgd", schedule="constant", warmup_frac=0.0, n_history=5)
    x, y = np.asarray(data["x"], np.float64), np.asarray(data["y"], np.float64)
    w0 = np.asarray(init(grid_mod.init_key(0, 3), None)["w"], np.float64)
    for i, n in enumerate([8, 24]):
        A, w_star = 2 * x[:n].T @ x[:n] / n, np.linalg.lstsq(x[:n], y[:n], rcond=None)[0]
        for j, lr in enumerate([0.05, 0.1]):
            expected = w_star + np.linalg.matrix_power(np.eye(D) - lr * A, steps) @ (w0 - w_star)
            np.testing.assert_allclose(res.params["w"][i, j, 0], expected, rtol=1e-4, atol=1e-5)


def test_diverged_run_is_flagged_and_the_others_finish():
    data = regression_data()
    init = lambda key, hp: {"w": jax.random.normal(key, (D,))}  # noqa: E731
    loss = lambda p, b, hp: (b["x"] @ p["w"] - b["y"]) ** 2  # noqa: E731
    res = run_grid(init, loss, data, {"lr": [0.05, 50.0]}, 40, optimizer="sgd", schedule="constant",
                   warmup_frac=0.0, n_history=4)
    assert res.diverged.tolist() == [False, True]
    assert np.isfinite(res.train_loss[0]) and res.train_loss[0] < 0.1


def test_killed_run_resumes_from_its_last_chunk(tmp_path):
    """A run stopped after its second chunk, started again on the same folder, gives the
    numbers of an uninterrupted run and trains only the chunks that were left."""
    def data(key, n):
        x = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), (D,)))(jnp.arange(n))
        return {"x": x, "y": x @ jnp.array([1.0, -2.0, 0.5])}

    init = lambda key, hp: {"w": 0.1 * jax.random.normal(key, (D,))}  # noqa: E731
    loss = lambda p, b, hp: (b["x"] @ p["w"] - b["y"]) ** 2  # noqa: E731
    axes = {"data_seed": [0, 1], "n_train": [6, 12], "weight_decay": [0.0, 0.1]}
    kw = dict(n_history=8, chunks=4, max_pad_ratio=1.0)
    whole = run_grid(init, loss, data, axes, 80, **kw)

    class Kill(Progress):
        calls = 0

        def update(self, work, label):
            Kill.calls += 1
            if Kill.calls == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_grid(init, loss, data, axes, 80, checkpoint_dir=tmp_path, progress=Kill(1, enabled=False), **kw)
    assert list(tmp_path.glob("*.chunk.npz"))
    labels = []

    class Record(Progress):
        def update(self, work, label):
            labels.append(label)

    resumed = run_grid(init, loss, data, axes, 80, checkpoint_dir=tmp_path, progress=Record(1, enabled=False), **kw)
    assert any("resumed at chunk" in lab for lab in labels)
    np.testing.assert_array_equal(resumed.params["w"], whole.params["w"])
    np.testing.assert_array_equal(resumed.history, whole.history)
    again = run_grid(init, loss, data, axes, 80, checkpoint_dir=tmp_path, **kw)  # every bucket done: loaded
    np.testing.assert_array_equal(again.train_loss, whole.train_loss)


def test_bad_grids_name_the_bad_value():
    data = regression_data()
    init = lambda key, hp: {"w": jnp.zeros(D)}  # noqa: E731
    loss = lambda p, b, hp: (b["x"] @ p["w"] - b["y"]) ** 2  # noqa: E731
    with pytest.raises(ValueError, match="n_train 99 exceeds"):
        run_grid(init, loss, data, {"n_train": [99]}, 10)
    with pytest.raises(ValueError, match="'seed' takes integers"):
        run_grid(init, loss, data, {"seed": [-1]}, 10)
    with pytest.raises(ValueError, match="data_seed"):
        run_grid(init, loss, data, {"data_seed": [0]}, 10)
