"""The run store: parts with named dims, ``jaxmem.load``, strict JSON, atomic files, and
the folder rules (refuse, resume, overwrite: delete only what jaxmem wrote)."""
import json
import math
import os

import numpy as np
import pytest

import jaxmem
from jaxmem import store
from jaxmem.store import Part, RunStore, on_grid

AXES = {"T": [3, 10, 30], "lr": [1e-3], "data_seed": range(2)}


def _sweep_part(rng, T=(3, 10, 30)) -> Part:
    shape = (len(T), 1, 2)
    return on_grid({"test_loss": rng.random(shape), "W": rng.random(shape + (2, 5)),
                    "history": rng.random(shape + (4,)), "diverged": np.zeros(shape, bool),
                    "test": {"hidden": rng.random(shape + (7, 2))}},
                   {**AXES, "T": list(T)},
                   {"W": ("neuron", "feature"), "history": ("step",), "test/hidden": ("example", "neuron")},
                   coords={"step": [10, 20, 30, 40]}, n_runs=6)


def test_parts_load_with_their_dims_coordinates_and_nested_keys(tmp_path):
    rng = np.random.default_rng(0)
    main, other = _sweep_part(rng), _sweep_part(rng, T=(100,))
    store.save_parts(tmp_path / "runs.npz", {"": main, "infinite": other})
    ds = jaxmem.load(tmp_path / "runs.npz")
    assert ds.test_loss.dims == ("T", "lr", "data_seed")
    assert ds.W.dims == ("T", "lr", "data_seed", "neuron", "feature")
    assert ds["test/hidden"].dims == ("T", "lr", "data_seed", "example", "neuron")
    assert list(ds.step.values) == [10, 20, 30, 40] and list(ds.T.values) == [3, 10, 30]
    assert not any("_dim" in d for d in ds.dims)
    # the infinite part's T differs from the main part's: its dim is named for the part
    assert ds["infinite/test_loss"].dims == ("infinite/T", "lr", "data_seed")
    np.testing.assert_allclose(ds.test_loss.sel(T=10, data_seed=1).values, main["test_loss"][1, :, 1])
    alone = jaxmem.load(tmp_path / "runs.npz", part="infinite")
    assert alone.test_loss.dims == ("T", "lr", "data_seed") and list(alone.T.values) == [100]
    with pytest.raises(ValueError, match="'nope'"):
        jaxmem.load(tmp_path / "runs.npz", part="nope")
    back = store.load_parts(tmp_path / "runs.npz")
    np.testing.assert_array_equal(back["infinite"]["test/hidden"], other["test/hidden"])
    assert back[""].dims == main.dims and back[""]["diverged"].dtype == bool


def test_a_part_refuses_arrays_without_dims_or_with_wrong_ones():
    with pytest.raises(ValueError, match="'loss'.*no dims"):
        Part({"loss": np.zeros((2, 3))}, {})
    with pytest.raises(ValueError, match="shape \\(2, 3\\) but dims \\('a',\\)"):
        Part({"loss": np.zeros((2, 3))}, {"loss": ("a",)})
    with pytest.raises(ValueError, match="dim 'a' has 2 entries but 3 coordinates"):
        Part({"loss": np.zeros((2,))}, {"loss": ("a",)}, coords={"a": [1, 2, 3]})
    with pytest.raises(ValueError, match="without '/'"):
        Part({"a/b": np.zeros(())}, {})
    assert Part({"pad_ratio": np.float32(1.2)}, {}).dims == {"pad_ratio": ()}


def test_summary_json_is_strict_and_readable_by_the_group(tmp_path):
    path = tmp_path / "summary.json"
    old = os.umask(0o022)
    try:
        store.save_json(path, {"loss": float("nan"), "inf": [np.float32(np.inf), 1.5], "n": np.int64(3)})
    finally:
        os.umask(old)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"loss": None, "inf": [None, 1.5], "n": 3}
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "runs.npz"
    part = _sweep_part(np.random.default_rng(1))
    store.save_parts(path, {"": part})

    def broken(f, **arrays):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(KeyboardInterrupt):
        store.save_parts(path, {"": _sweep_part(np.random.default_rng(2))})
    monkeypatch.undo()
    np.testing.assert_array_equal(store.load_parts(path)[""]["W"], part["W"])
    assert [p.name for p in tmp_path.iterdir()] == ["runs.npz"]


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04 truncated"])
def test_a_corrupt_npz_raises_a_value_error_naming_the_file(tmp_path, content):
    (tmp_path / "runs.npz").write_bytes(content)
    with pytest.raises(ValueError, match="runs.npz"):
        jaxmem.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="missing"):
        jaxmem.load(tmp_path / "missing")


def _open(out, mode="new", steps=10, experiment="toy"):
    return RunStore(out, experiment, "quick", {"train": {"steps": steps, "lr": 1e-3}, "T": [3, 10]}, mode)


def test_a_folder_that_holds_a_run_is_refused_unless_resumed_or_overwritten(tmp_path):
    runs = _open(tmp_path)
    runs.save("a", _sweep_part(np.random.default_rng(0)))
    with pytest.raises(ValueError, match="unfinished toy run \\(1 part\\(s\\) saved\\).*--resume"):
        _open(tmp_path)
    runs.finish({"results": {"x": float("nan")}})
    with pytest.raises(ValueError, match="already holds a finished toy run"):
        _open(tmp_path)
    again = _open(tmp_path, "resume")
    assert again.has("a") and again.parts["a"].loaded and again.parts["a"].n_runs == 6
    with pytest.raises(ValueError, match="train.steps: 10 -> 20"):
        _open(tmp_path, "resume", steps=20)
    with pytest.raises(ValueError, match="holds a toy run, not other"):
        _open(tmp_path, "resume", experiment="other")


def test_overwrite_deletes_only_what_the_store_wrote(tmp_path):
    (tmp_path / "checkpoints").mkdir()  # the user's own
    (tmp_path / "checkpoints" / "model.pt").write_text("mine")
    (tmp_path / "notes.txt").write_text("mine")
    runs = _open(tmp_path)
    runs.checkpoint_dir("a").mkdir(parents=True)
    runs.save("a", _sweep_part(np.random.default_rng(0)))
    runs.write_json("extra.json", {"k": 1})
    runs.finish({"results": {}})
    assert not (tmp_path / store.CHECKPOINTS).exists()  # the store's checkpoints go when it finishes
    fresh = _open(tmp_path, "overwrite", steps=20)
    assert not fresh.has("a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "notes.txt", "run.json"]
    assert (tmp_path / "checkpoints" / "model.pt").read_text() == "mine"


def test_an_older_runs_folder_is_never_written_over(tmp_path):
    (tmp_path / "summary.json").write_text("{}")
    for mode, match in (("new", "older jaxmem"), ("resume", "older jaxmem"), ("overwrite", "remove them yourself")):
        with pytest.raises(ValueError, match=match):
            _open(tmp_path, mode)
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_differences_name_every_changed_field():
    old = {"a": 1, "b": {"c": [1, 2], "d": "x"}}
    new = {"a": 1, "b": {"c": [2, 1], "e": math.pi}}
    assert store.differences(old, new) == ["b.c: [1, 2] -> [2, 1]", "b.d: \"x\" -> \"<absent>\"",
                                           f"b.e: \"<absent>\" -> {math.pi}"]


def test_a_dim_without_coordinates_of_another_size_in_another_part_is_named_for_it(tmp_path):
    small = Part({"W": np.zeros((2, 3))}, {"W": ("neuron", "feature")})
    large = Part({"W": np.ones((4, 3))}, {"W": ("neuron", "feature")})
    store.save_parts(tmp_path / "runs.npz", {"m2": small, "m4": large})
    ds = jaxmem.load(tmp_path / "runs.npz")
    assert ds["m2/W"].dims == ("neuron", "feature") and ds["m4/W"].dims == ("m4/neuron", "feature")
