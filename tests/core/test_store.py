"""The run store: atomic ``save_arrays`` with grid axes, and ``jaxmem.load`` to xarray."""
import numpy as np
import pytest

import jaxmem
from jaxmem import results

SMDD_AXES = {"T": [3, 10, 30], "lr": [1e-3], "weight_decay": [0.0, 1e-2], "init_scale": [1.0], "data_seed": range(2)}


def _smdd_like(rng):
    shape = (3, 1, 2, 1, 2)
    return {"test_loss": rng.random(shape), "W": rng.random(shape + (2, 5)), "diverged": np.zeros(shape, bool),
            "T": np.array([3, 10, 30]), "pad_ratio": np.array(1.2),
            "seed_mean": rng.random(shape[:3]),  # reduced over the last axes
            "counts": np.arange(3)}  # as long as T by chance: not labeled


def test_load_labels_the_grid_and_sel_works(tmp_path):
    arrays = _smdd_like(np.random.default_rng(0))
    results.save_arrays(tmp_path / "runs.npz", arrays, axes=SMDD_AXES)
    ds = jaxmem.load(tmp_path)
    assert ds.test_loss.dims == ("T", "lr", "weight_decay", "init_scale", "data_seed")
    assert ds.W.dims[5:] == ("W_dim5", "W_dim6") and ds.pad_ratio.dims == ()
    assert list(ds.T.values) == [3, 10, 30] and list(ds.data_seed.values) == [0, 1]
    assert "T" not in ds.data_vars  # the array T only repeated the axis
    got = ds.test_loss.sel(T=10, weight_decay=1e-2).mean("data_seed")
    np.testing.assert_allclose(got.values, arrays["test_loss"][1, :, 1].mean(-1))
    assert ds.diverged.dtype == bool
    assert ds.seed_mean.dims == ("T", "lr", "weight_decay") and ds.counts.dims == ("counts_dim0",)
    # the file is still a plain npz of the data arrays
    loaded = results.load_arrays(tmp_path / "runs.npz")
    assert sorted(loaded) == sorted(arrays)
    np.testing.assert_array_equal(loaded["W"], arrays["W"])
    assert list(results.load_axes(tmp_path / "runs.npz")[""]) == list(SMDD_AXES)


def test_several_grids_by_prefix_share_equal_axes(tmp_path):
    rng = np.random.default_rng(1)
    seeds = {"seed": range(3)}
    arrays = {"m2_test_loss": rng.random((4, 3)), "m2_T": np.array([1, 2, 4, 8]),
              "m4_test_loss": rng.random((2, 3)), "m4_T": np.array([5, 6]),
              "m4_history": rng.random((2, 3, 7)), "wall_seconds": np.array(3.0)}
    axes = {"m2_": {"T": [1, 2, 4, 8], **seeds}, "m4_": {"T": [5, 6], **seeds}}
    results.save_arrays(tmp_path / "runs.npz", arrays, axes=axes)
    ds = jaxmem.load(tmp_path / "runs.npz")
    assert ds.m2_test_loss.dims == ("m2_T", "seed") and ds.m4_test_loss.dims == ("m4_T", "seed")
    assert ds.m4_history.dims == ("m4_T", "seed", "m4_history_dim2")
    np.testing.assert_allclose(ds.m4_test_loss.sel(m4_T=6, seed=2), arrays["m4_test_loss"][1, 2])
    one = jaxmem.load(tmp_path, prefix="m4_")
    assert set(one.data_vars) == {"test_loss", "history"} and one.test_loss.dims == ("T", "seed")
    np.testing.assert_allclose(one.test_loss.sel(T=5).values, arrays["m4_test_loss"][0])
    with pytest.raises(ValueError, match="m8_"):
        jaxmem.load(tmp_path, prefix="m8_")


def test_root_grid_keeps_plain_names_and_others_get_prefixed_dims(tmp_path):
    rng = np.random.default_rng(2)
    axes = {"": {"T": [3, 10], "data_seed": range(2)}, "infinite_": {"T": [1000], "data_seed": range(2)}}
    results.save_arrays(tmp_path / "runs.npz", {"test_loss": rng.random((2, 2)),
                                                "infinite_test_loss": rng.random((1, 2))}, axes=axes)
    ds = jaxmem.load(tmp_path)
    assert ds.test_loss.dims == ("T", "data_seed")
    assert ds.infinite_test_loss.dims == ("infinite_T", "data_seed")
    assert float(ds.infinite_T[0]) == 1000


def test_flattened_runs_are_unflattened_onto_the_grid(tmp_path):
    sizes, hidden, seeds = [750, 1250], [16, 32, 64], 2
    runs = np.meshgrid(sizes, hidden, np.arange(seeds), indexing="ij")
    n_train, n_hidden, seed = (a.ravel() for a in runs)
    loss = np.random.default_rng(3).random((n_train.size, 5))
    results.save_arrays(tmp_path / "runs.npz", {"train_size": n_train, "hidden": n_hidden, "seed": seed,
                                                "test_loss": loss, "history_steps": np.arange(5) * 100},
                        axes={"train_size": sizes, "hidden": hidden, "seed": range(seeds)})
    ds = jaxmem.load(tmp_path)
    assert set(ds.data_vars) == {"test_loss", "history_steps"}
    assert ds.test_loss.dims == ("train_size", "hidden", "seed", "test_loss_dim3")
    i = np.flatnonzero((n_train == 1250) & (n_hidden == 32) & (seed == 1))[0]
    np.testing.assert_allclose(ds.test_loss.sel(train_size=1250, hidden=32, seed=1).values, loss[i])


def test_an_npz_without_axes_loads_with_default_dims(tmp_path):
    np.savez(tmp_path / "runs.npz", loss=np.ones((2, 3)), step=np.array(7))
    ds = jaxmem.load(tmp_path)
    assert ds.loss.dims == ("loss_dim0", "loss_dim1") and int(ds.step) == 7
    assert results.load_axes(tmp_path / "runs.npz") == {}


@pytest.mark.parametrize("content", [b"not a zip file at all", "truncated"])
def test_a_corrupt_npz_raises_a_value_error_naming_the_file(tmp_path, content):
    path = tmp_path / "runs.npz"
    if content == "truncated":
        results.save_arrays(path, {"a": np.random.default_rng(0).random(10_000)}, axes={"i": range(10_000)})
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    with pytest.raises(ValueError, match="runs.npz"):
        jaxmem.load(tmp_path)
    with pytest.raises(ValueError, match="runs.npz"):
        results.load_arrays(path)


def test_a_missing_run_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="runs.npz"):
        jaxmem.load(tmp_path)


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "runs.npz"
    results.save_arrays(path, {"a": np.arange(3)}, axes={"i": range(3)})

    def broken(f, **arrays):
        f.write(b"half a file")
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(KeyboardInterrupt):
        results.save_arrays(path, {"a": np.arange(5)})
    monkeypatch.undo()
    np.testing.assert_array_equal(results.load_arrays(path)["a"], np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["runs.npz"]  # no temporary file left


def test_bad_axes_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="'T'"):
        results.save_arrays(tmp_path / "x.npz", {"a": np.ones(2)}, axes={"T": [[1, 2]]})
    with pytest.raises(ValueError, match="not a mix"):
        results.save_arrays(tmp_path / "x.npz", {"a": np.ones(2)}, axes={"T": [1, 2], "m2_": {"T": [1]}})
    with pytest.raises(ValueError, match="__axes__"):
        results.save_arrays(tmp_path / "x.npz", {"__axes__": np.ones(2)})
    assert not (tmp_path / "x.npz").exists()


def test_a_saved_smdd_run_loads_with_its_grid(tmp_path, monkeypatch):
    from jaxmem.studies.smdd import smdd
    from jaxmem.sweep import Sweep
    from jaxmem.train import TrainConfig

    monkeypatch.setitem(smdd.PRESETS, "tiny", (TrainConfig(n_features=40, n_hidden=2, steps=30, n_history=5),
                                               Sweep(T=(3, 8, 20), sparsity=0.9, data_seeds=2, n_test=100)))
    smdd.run("tiny", tmp_path, progress=False)
    ds = jaxmem.load(tmp_path)
    assert ds.test_loss.dims == ("T", "lr", "weight_decay", "init_scale", "data_seed")
    raw = results.load_arrays(tmp_path / "runs.npz")
    np.testing.assert_allclose(ds.test_loss.sel(T=8).mean("data_seed").values.ravel(),
                               raw["test_loss"][1].mean(-1).ravel())
