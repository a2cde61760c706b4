"""``run_grid``'s safety nets: a checkpoint is named by what its numbers depend on (the
fixed data's contents, the functions' code and closed-over values), so changed data or
another lambda never loads a stale one while the same model and data do load theirs;
a bucket loaded or resumed says so; and a ``loss`` that does not return ``[N]``
per-example losses (a scalar, ``[N, 1]``) raises instead of training silently wrong."""
import functools
import os
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmem.progress import Progress
from jaxmem.train import grid as grid_mod
from jaxmem.train import run_grid

N, D = 16, 3
STEPS = 20
GRID = {"seed": [0], "lr": [0.05, 0.1]}
KW = dict(optimizer="sgd", schedule="constant", warmup_frac=0.0, n_history=2)


def regression_data(k: int):
    kx, kw = jax.random.split(jax.random.key(k))
    x = jax.random.normal(kx, (N, D))
    return {"x": x, "y": x @ jnp.array([1.0, -2.0, 0.5]) + 0.1 * jax.random.normal(kw, (N,))}


def init(key, hp):
    return {"w": 0.1 * jax.random.normal(key, (D,))}


def sq_loss(p, b, hp):
    return (b["x"] @ p["w"] - b["y"]) ** 2


def assert_same(a, b):
    np.testing.assert_array_equal(a.train_loss, b.train_loss)
    np.testing.assert_array_equal(a.params["w"], b.params["w"])
    np.testing.assert_array_equal(a.history, b.history)


def test_changed_data_does_not_load_a_stale_checkpoint(tmp_path):
    """Same shapes, other values, same folder: the numbers of a fresh run on the new data."""
    x1, x2 = regression_data(1), regression_data(2)
    first = run_grid(init, sq_loss, x1, GRID, STEPS, checkpoint_dir=tmp_path, **KW)
    second = run_grid(init, sq_loss, x2, GRID, STEPS, checkpoint_dir=tmp_path, **KW)
    fresh = run_grid(init, sq_loss, x2, GRID, STEPS, **KW)
    assert not np.array_equal(first.train_loss, fresh.train_loss)
    assert_same(second, fresh)
    assert second.resumed == [""]


def test_two_lambdas_do_not_share_a_checkpoint(tmp_path):
    """Two lambdas (both ``<lambda>``) on one folder: each gives its own fresh numbers."""
    data = regression_data(1)
    sq = lambda p, b, hp: (b["x"] @ p["w"] - b["y"]) ** 2  # noqa: E731
    ab = lambda p, b, hp: jnp.abs(b["x"] @ p["w"] - b["y"])  # noqa: E731
    assert sq.__qualname__ == ab.__qualname__
    got_sq = run_grid(init, sq, data, GRID, STEPS, checkpoint_dir=tmp_path, **KW)
    got_ab = run_grid(init, ab, data, GRID, STEPS, checkpoint_dir=tmp_path, **KW)
    assert not np.array_equal(got_sq.train_loss, got_ab.train_loss)
    assert_same(got_sq, run_grid(init, sq, data, GRID, STEPS, **KW))
    assert_same(got_ab, run_grid(init, ab, data, GRID, STEPS, **KW))


def test_changed_data_function_does_not_load_a_stale_checkpoint(tmp_path):
    """A callable ``data`` closing over another noise level: its own fresh numbers."""
    def make_data(noise):
        def data(key, n):
            x = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), (D,)))(jnp.arange(n))
            return {"x": x, "y": x @ jnp.array([1.0, -2.0, 0.5]) + noise * x[:, 0] ** 2}
        return data

    axes = {"n_train": [N], "lr": [0.05]}
    first = run_grid(init, sq_loss, make_data(0.0), axes, STEPS, checkpoint_dir=tmp_path, **KW)
    other = make_data(1.0)
    got = run_grid(init, sq_loss, other, axes, STEPS, checkpoint_dir=tmp_path, **KW)
    fresh = run_grid(init, sq_loss, other, axes, STEPS, **KW)
    assert not np.array_equal(first.train_loss, fresh.train_loss)
    assert_same(got, fresh)


def test_same_model_and_data_load_their_checkpoint(tmp_path, capsys):
    """The loss made again alike and the data copied: the fingerprint is of code and
    contents, not of objects, so the second call loads the first's numbers and says so."""
    def make_loss(scale):
        return lambda p, b, hp: scale * (b["x"] @ p["w"] - b["y"]) ** 2

    data = regression_data(1)
    first = run_grid(init, make_loss(1.0), data, GRID, STEPS, checkpoint_dir=tmp_path, **KW)
    copy = jax.tree.map(lambda a: np.array(a, copy=True), data)
    again = run_grid(init, make_loss(1.0), copy, GRID, STEPS, checkpoint_dir=tmp_path, **KW)
    assert_same(again, first)
    assert first.resumed == [""] and again.resumed == ["loaded"]
    assert again.bucket_seconds == [0.0]
    assert "jaxmem: bucket 1/1 loaded from" in capsys.readouterr().err


def test_resumed_bucket_says_at_which_chunk(tmp_path, capsys):
    class Kill(Progress):
        calls = 0

        def update(self, work, label):
            Kill.calls += 1
            if Kill.calls == 2:  # after the first of two chunks was saved
                raise KeyboardInterrupt

    data = regression_data(1)
    kw = dict(KW, chunks=2)
    with pytest.raises(KeyboardInterrupt):
        run_grid(init, sq_loss, data, GRID, STEPS, checkpoint_dir=tmp_path, progress=Kill(1, enabled=False), **kw)
    resumed = run_grid(init, sq_loss, data, GRID, STEPS, checkpoint_dir=tmp_path, **kw)
    assert resumed.resumed == ["resumed at chunk 1"]
    assert "jaxmem: bucket 1/1 resumed at chunk 1 from" in capsys.readouterr().err
    assert_same(resumed, run_grid(init, sq_loss, data, GRID, STEPS, **kw))


def test_function_fingerprint_follows_code_and_closed_over_values():
    fp, dfp = grid_mod.function_fingerprint, grid_mod.data_fingerprint

    def make(scale):
        return lambda p, b, hp: scale * (b["x"] @ p["w"] - b["y"]) ** 2

    assert fp(make(2.0)) == fp(make(2.0))
    assert fp(make(2.0)) != fp(make(3.0))
    assert fp(make(np.ones(3))) == fp(make(np.ones(3))) != fp(make(np.zeros(3)))
    f = lambda p, b, hp: (b["x"] @ p["w"] - b["y"]) ** 2  # noqa: E731
    g = lambda p, b, hp: (b["x"] @ p["w"] - b["y"]) ** 2  # noqa: E731 - the same, defined twice
    h = lambda p, b, hp: (b["x"] @ p["w"] + b["y"]) ** 2  # noqa: E731
    assert fp(f) == fp(g) != fp(h)
    assert fp(functools.partial(f, hp=1)) == fp(functools.partial(g, hp=1)) != fp(functools.partial(f, hp=2))
    x = np.arange(6.0).reshape(3, 2)
    assert dfp({"x": x}) == dfp({"x": x.copy()}) != dfp({"x": x + 1})
    assert dfp({"x": x}) != dfp({"x": x.astype(np.float32)}) and dfp({"x": x}) != dfp({"x": x.reshape(2, 3)})


def test_function_fingerprint_is_the_same_in_another_process():
    """No ``id``, no ``hash``: a frozenset constant (ordered by PYTHONHASHSEED) and
    closed-over arrays give one digest in every process."""
    source = ("import numpy as np\n"
              "def make(w):\n"
              "    return lambda p, b, hp: (w @ p) * (hp in {'lr', 'wd', 'momentum', 'eps'})\n"
              "f = make(np.arange(3.0))\n")
    script = ("import sys, types\nfrom jaxmem.train.grid import function_fingerprint\n"
              "m = types.ModuleType('fpmod'); exec(sys.argv[1], m.__dict__); print(function_fingerprint(m.f))\n")
    m = types.ModuleType("fpmod")
    exec(source, m.__dict__)
    here = grid_mod.function_fingerprint(m.f)
    out = subprocess.run([sys.executable, "-c", script, source], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345", "JAX_PLATFORMS": "cpu"})
    assert out.stdout.strip() == here


def test_loss_must_return_per_example_losses():
    data = regression_data(1)
    with pytest.raises(ValueError, match=r"per-example losses of shape \[16\], got shape \(\): .*not their mean"):
        run_grid(init, lambda p, b, hp: jnp.mean(sq_loss(p, b, hp)), data, GRID, STEPS, **KW)
    with pytest.raises(ValueError, match=r"per-example losses of shape \[16\], got shape \(16, 1\)"):
        run_grid(init, lambda p, b, hp: sq_loss(p, b, hp)[:, None], data, GRID, STEPS, **KW)
    with pytest.raises(ValueError, match=r"per-example losses of shape \[4\], got shape \(\)"):  # a minibatch of 4
        run_grid(init, lambda p, b, hp: jnp.sum(sq_loss(p, b, hp)), data, GRID, STEPS, batch_size=4, **KW)
    ok = run_grid(init, sq_loss, data, GRID, STEPS, **KW)
    assert np.all(np.isfinite(ok.train_loss)) and not ok.diverged.any()
