"""The SMDD follow-ups (smdd-phase, -wd, -steps, -sparsity, -variants, -modelwise,
-repeat, -repeat-slot) through the study protocol, and the config record each resumes
by. Tiny configs of one shape (n = 60, m = 2, T = 8, 20): runs after the first reuse its
compiled programs."""
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmem import cli, data, load, metrics, studies, train
from jaxmem.models import relu_output
from jaxmem.store import RunStore, differences, open_parts, strict_json
from jaxmem.studies import protocol
from jaxmem.studies.smdd import modelwise as smdd_modelwise
from jaxmem.studies.smdd import per_setting, phase, settings, sparsity, steps, wd
from jaxmem.studies.smdd import repeat as smdd_repeat
from jaxmem.studies.smdd import variants as smdd_variants
from jaxmem.studies.smdd.sweep import Sweep, data_key, holdout_key

CFG = train.TrainConfig(n_features=60, n_hidden=2, steps=60, n_history=10)
SWEEP = Sweep(T=(8, 20), sparsity=0.9, data_seeds=2, n_test=200, max_pad_ratio=10.0)  # one bucket


def results(summary) -> dict:
    return strict_json(summary["results"])


def named_dims(folder) -> dict:
    """``jaxmem.load``'s dims per array; every one named (no xarray ``dim_0``)."""
    ds = load(folder)
    dims = {k: ds[k].dims for k in ds.data_vars}
    assert dims and not any("_dim" in d or d.startswith("dim_") for v in dims.values() for d in v)
    return dims


def interrupted_then_resumed(monkeypatch, name, folder, full: dict, redraw: bool = True) -> None:
    """Run ``name`` (tiny) into ``folder``, killed in its second sweep; ``--resume`` then
    trains only that part and the rest, and gives ``full``'s results. ``jaxmem plot``
    redraws the figures from the folder."""
    calls, killed = [], []
    sweep = per_setting.run_sweep

    def killed_second(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2 and not killed:
            killed.append(True)
            raise KeyboardInterrupt
        return sweep(*args, **kwargs)

    monkeypatch.setattr(per_setting, "run_sweep", killed_second)
    with pytest.raises(KeyboardInterrupt):
        studies.reproduce(name, "tiny", folder)
    manifest, parts = open_parts(folder)
    assert manifest["status"] == "running" and len(parts) == 1
    calls.clear()
    summary = studies.reproduce(name, "tiny", folder, resume=True)
    assert len(calls) == sum(p["n_runs"] > 0 for p in full["parts"].values()) - 1  # the trained parts but one
    assert summary["resumed_parts"] == list(parts) and results(summary) == results(full)
    if redraw:
        pngs = sorted(folder.glob("*.png"))
        for p in pngs:
            p.unlink()
        assert cli.main(["plot", str(folder)]) == 0
        assert sorted(folder.glob("*.png")) == pngs and pngs


# ---------------------------------------------------------------- pure functions


def test_bump_position_of_a_double_descent_curve():
    T = [1, 2, 3, 4, 5, 6]
    assert phase.bump_T(T, [3.0, 1.0, 1.2, 1.5, 1.1, 1.0]) == 4
    assert phase.bump_T(T, [3.0, 1.0, 1.1, 1.2, 1.3, 1.4]) == "> 6"
    assert phase.bump_T(T, [3.0, 2.0, 1.5, 1.2, 1.1, 1.0]) is None


def test_jump_and_the_sparsity_grid_scaling():
    assert settings.jump_T([1, 2, 3, 4], np.array([[0.1], [0.12], [0.3], [0.31]])) == 3.0
    assert settings._scaled_T((10, 100), 0.995, 0.99) == (20, 200)
    # sizes that round alike are one: the grid stays strictly increasing, as Sweep requires
    assert settings._scaled_T((3, 4, 5, 8), 0.8, 0.9) == (2, 4)
    cfg = (CFG, dataclasses.replace(SWEEP, T=(3, 4, 5, 8)), (0.8, 0.9))
    got = {label: s.T for label, _, s in settings.variants("smdd-sparsity", cfg)}
    assert got == {"S0.8": (2, 4), "S0.9": (3, 4, 5, 8)}
    with pytest.raises(ValueError, match="must not repeat"):
        settings.variants("smdd-steps", (CFG, SWEEP, (10, 10)))


def test_seed_spread_and_spread_across_variants():
    y = np.array([[0.1, 0.3], [0.2, 0.2], [0.5, 0.4]])  # [T, seeds]
    got = phase.seed_spread(y)
    assert got["per_T"] == pytest.approx([0.2, 0.0, 0.1]) and got["mean"] == pytest.approx(0.1)
    assert got["max"] == pytest.approx(0.2) and got["mean_over_range"] == pytest.approx(0.1 / (0.45 - 0.2))
    # two curves on one x grid, one shifted by 0.1: spread 0.1 everywhere
    x = np.array([1.0, 10.0, 100.0])
    a = np.array([[0.0], [0.2], [0.4]])
    got = settings.spread_across({"a": (x, a), "b": (x, a + 0.1)})
    assert got["spread"] == pytest.approx([0.1] * 3) and got["mean_spread_over_range"] == pytest.approx(0.1 / 0.4)
    # a curve on a coarser grid is interpolated in log x, only where every curve has data
    got = settings.spread_across({"a": (x, a), "b": (np.array([1.0, 100.0]), np.array([[0.0], [0.4]])),
                                  "c": (np.array([10.0, 100.0]), np.array([[0.2], [0.4]]))})
    assert got["x"] == pytest.approx([10.0, 100.0]) and got["max_spread"] == pytest.approx(0.0, abs=1e-12)
    assert settings.spread_across({"a": (x, a)}) is None
    assert settings.spread_across({"a": (x, a), "b": (x, a + 0.1)}, x_min=5.0)["x"] == pytest.approx([10.0, 100.0])
    assert settings.spread_across({"a": (x, a), "b": (x, a)}, x_min=500.0) is None


def test_repeated_point_loss_matches_the_model():
    from jaxmem.studies.smdd.repeat import point_losses

    params = relu_output.init(jax.random.key(3), 20, 2)
    params["b"] = 0.1 * jax.random.normal(jax.random.key(4), (20,))
    x = np.asarray(jax.random.uniform(jax.random.key(5), (20,)))
    want = float(relu_output.example_losses(params, x))
    np.testing.assert_allclose(point_losses(np.asarray(params["W"]), np.asarray(params["b"]), x), want, rtol=1e-5)


@pytest.mark.parametrize("name, overrides, field", [
    ("smdd-phase", {"steps": "7"}, "TrainConfig.steps"), ("smdd-wd", {"values": "0,1"}, "values"),
    ("smdd-steps", {"eps": "1e-7"}, "TrainConfig.eps"), ("smdd-sparsity", {"steps": "7"}, "TrainConfig.steps"),
    ("smdd-repeat", {"repeats": "1,2"}, "repeats"), ("smdd-repeat-slot", {"steps": "7"}, "TrainConfig.steps"),
    ("smdd-variants", {"b1": "0.8"}, "TrainConfig.b1"), ("smdd-modelwise", {"hidden_sizes": "1,2"}, "hidden_sizes"),
])
def test_every_smdd_study_records_its_overrides_in_the_config_it_resumes_by(tmp_path, name, overrides, field):
    module = studies.get(name)
    plain = protocol.record(module, protocol.configure(module, "quick"))
    changed = protocol.record(module, protocol.configure(module, "quick", overrides=overrides))
    assert [d.split(":")[0] for d in differences(plain, changed)] == [field]
    assert json.loads(json.dumps(strict_json(plain)))  # JSON as saved
    assert protocol.rebuild(module, "quick", json.loads(json.dumps(strict_json(changed)))) == \
        protocol.configure(module, "quick", overrides=overrides)
    RunStore(tmp_path, name, "quick", plain)
    with pytest.raises(ValueError, match=f"differing fields: {field}"):
        RunStore(tmp_path, name, "quick", changed, "resume")


# ---------------------------------------------------------------- tiny runs


@pytest.mark.slow  # over 20 s on the 2-core CPU: kept out of the default run
def test_smdd_phase_grid_matches_its_parts(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(phase.PRESETS, "tiny", (dataclasses.replace(CFG, n_hidden=1), SWEEP, (2, 3)))
    summary = studies.reproduce("smdd-phase", "tiny", tmp_path)
    res = summary["results"]
    grid = np.asarray(res["test_loss_grid"])
    assert grid.shape == (2, 2) and list(summary["config"]["hidden_sizes"]) == [2, 3] and summary["n_runs"] == 8
    _, parts = open_parts(tmp_path)
    assert list(parts) == ["m2", "m3"] and parts["m3"]["W"].shape == (2, 1, 1, 1, 2, 3, 60)
    np.testing.assert_allclose(grid[:, 1], parts["m3"]["test_loss"][:, 0, 0, 0].mean(-1), rtol=1e-6)
    learned = (parts["m2"]["feature_dim"][:, 0, 0, 0] > 0.1).sum(-1).mean(-1)
    np.testing.assert_allclose(res["n_learned_grid"][:, 0], learned)
    for m in (2, 3):  # the seeds' spread, by a loop over T
        fmax = parts[f"m{m}"]["feature_dim"][:, 0, 0, 0].max(-1)
        gaps = [abs(float(fmax[i, 0]) - float(fmax[i, 1])) for i in range(2)]
        assert res["feature_dim_max_seed_spread"][str(m)]["per_T"] == pytest.approx(gaps, rel=1e-5)
        assert res["feature_dim_max_seed_spread"][str(m)]["mean"] == pytest.approx(np.mean(gaps), rel=1e-5)
    assert res["m2_smallest_seed_spread"] == (res["feature_dim_max_seed_spread"]["2"]["mean"]
                                              < res["feature_dim_max_seed_spread"]["3"]["mean"])
    assert res["bump_T_per_m"] == {"2": phase.bump_T(SWEEP.T, grid[:, 0]), "3": phase.bump_T(SWEEP.T, grid[:, 1])}
    dims = named_dims(tmp_path)
    assert dims["m2/W"] == ("T", "lr", "weight_decay", "init_scale", "data_seed", "neuron", "feature")
    assert dims["m3/W"][5] == "m3/neuron"  # the hidden sizes differ: each part keeps its own
    for name in ("phase_heatmap", "phase_lines", "feature_dim_by_m"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    assert not (tmp_path / ".jaxmem-checkpoints").exists()
    capsys.readouterr()
    assert cli.main(["show", str(tmp_path)]) == 0
    assert "T \\ m" in capsys.readouterr().out  # the grids' rows and columns named


@pytest.mark.slow  # over 20 s on the 2-core CPU; the protocol's and run_grid's equivalents stay in the default run
def test_smdd_phase_killed_after_its_first_part_resumes_only_with_the_same_config(monkeypatch, tmp_path):
    monkeypatch.setitem(phase.PRESETS, "tiny", (dataclasses.replace(CFG, n_hidden=1), SWEEP, (2, 3)))
    full = studies.reproduce("smdd-phase", "tiny", tmp_path / "full")
    folder = tmp_path / "killed"
    calls = []
    sweep = per_setting.run_sweep

    def killed_second(*args, **kwargs):
        calls.append(args[0].n_hidden)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return sweep(*args, **kwargs)

    monkeypatch.setattr(per_setting, "run_sweep", killed_second)
    with pytest.raises(KeyboardInterrupt):
        studies.reproduce("smdd-phase", "tiny", folder)
    saved = {f: (folder / f).read_bytes() for f in ("run.json", "runs.npz")}
    assert list(open_parts(folder)[1]) == ["m2"]
    with pytest.raises(ValueError, match=r"differing fields: TrainConfig\.steps: 60 -> 30"):
        studies.reproduce("smdd-phase", "tiny", folder, resume=True, overrides={"steps": "30"})
    assert {f: (folder / f).read_bytes() for f in saved} == saved  # the saved part untouched
    calls.clear()
    summary = studies.reproduce("smdd-phase", "tiny", folder, resume=True)
    assert calls == [3] and summary["resumed_parts"] == ["m2"]
    assert results(summary) == results(full) and summary["n_runs"] == full["n_runs"]
    _, parts = open_parts(folder)
    for label, part in open_parts(tmp_path / "full")[1].items():
        np.testing.assert_array_equal(parts[label]["W"], part["W"])


@pytest.mark.slow
def test_smdd_wd_holds_every_weight_decay_in_one_part(monkeypatch, tmp_path):
    monkeypatch.setitem(wd.PRESETS, "tiny", (CFG, SWEEP, (0.0, 1.0)))
    summary = studies.reproduce("smdd-wd", "tiny", tmp_path)
    rows = summary["results"]["by_variant"]
    assert [r["variant"] for r in rows] == ["wd 0", "wd 1"] and list(summary["config"]["values"]) == [0.0, 1.0]
    _, parts = open_parts(tmp_path)
    assert list(parts) == ["wd"] and list(parts["wd"].coords["weight_decay"]) == [0.0, 1.0]
    for c, r in enumerate(rows):
        np.testing.assert_allclose(r["test_loss"], parts["wd"]["test_loss"][:, 0, c, 0].mean(-1), rtol=1e-6)
        fdim = parts["wd"]["feature_dim"][:, 0, c, 0].max(-1)
        np.testing.assert_allclose(r["feature_dim_max"], fdim.mean(-1), rtol=1e-6)
        assert r["jump_T"] == settings.jump_T(SWEEP.T, fdim) and r["T"] == [8, 20]
    assert named_dims(tmp_path)["wd/test_loss"] == ("T", "lr", "weight_decay", "init_scale", "data_seed")
    assert cli.main(["plot", str(tmp_path)]) == 0
    assert (tmp_path / "test_loss.png").stat().st_size > 10_000


@pytest.mark.slow
def test_smdd_steps_one_part_per_training_length_and_resume(monkeypatch, tmp_path):
    monkeypatch.setitem(steps.PRESETS, "tiny", (CFG, SWEEP, (30, 60)))
    full = studies.reproduce("smdd-steps", "tiny", tmp_path / "full")
    assert [r["variant"] for r in full["results"]["by_variant"]] == ["steps30", "steps60"]
    _, parts = open_parts(tmp_path / "full")
    for r in full["results"]["by_variant"]:
        np.testing.assert_allclose(r["test_loss"], parts[r["variant"]]["test_loss"][:, 0, 0, 0].mean(-1), rtol=1e-6)
    assert not np.allclose(parts["steps30"]["W"], parts["steps60"]["W"])
    named_dims(tmp_path / "full")
    interrupted_then_resumed(monkeypatch, "smdd-steps", tmp_path / "killed", full)


@pytest.mark.slow
def test_smdd_sparsity_moves_T_with_the_sparsity_and_resumes(monkeypatch, tmp_path):
    monkeypatch.setitem(sparsity.PRESETS, "tiny", (CFG, SWEEP, (0.8, 0.9)))
    full = studies.reproduce("smdd-sparsity", "tiny", tmp_path / "full")
    rows = full["results"]["by_variant"]
    # the reference sparsity is the sweep's own (0.9): S = 0.8 halves T, S = 0.9 keeps it
    assert [r["variant"] for r in rows] == ["S0.8", "S0.9"] and rows[0]["T"] == [4, 10] and rows[1]["T"] == [8, 20]
    _, parts = open_parts(tmp_path / "full")
    for r, S in zip(rows, (0.8, 0.9)):
        assert list(parts[r["variant"]].coords["T"]) == r["T"] and r["jump_T"] in r["T"]
        np.testing.assert_allclose(r["test_loss"], parts[r["variant"]]["test_loss"][:, 0, 0, 0].mean(-1), rtol=1e-6)
        assert r["jump_T_times_1_minus_S"] == pytest.approx(r["jump_T"] * (1 - S))
    xy = {r["variant"]: (np.array(r["T"]) * (1 - S), parts[r["variant"]]["feature_dim"][:, 0, 0, 0].max(-1))
          for r, S in zip(rows, (0.8, 0.9))}
    assert full["results"]["feature_dim_max_spread_across_S"] == settings.spread_across(xy)
    assert full["results"]["n_hidden"] == 2
    dims = named_dims(tmp_path / "full")
    assert dims["S0.8/test_loss"][0] != dims["S0.9/test_loss"][0]  # two T grids, each with its coordinates
    assert (tmp_path / "full" / "feature_dim_max.png").stat().st_size > 10_000
    interrupted_then_resumed(monkeypatch, "smdd-sparsity", tmp_path / "killed", full)


@pytest.mark.slow
def test_variants_tiny_run_evaluates_each_model_as_configured(monkeypatch, tmp_path):
    monkeypatch.setitem(smdd_variants.PRESETS, "tiny", (CFG, SWEEP))
    full = studies.reproduce("smdd-variants", "tiny", tmp_path / "full")
    rows = {r["variant"]: r for r in full["results"]["by_variant"]}
    assert list(rows) == list(smdd_variants.VARIANTS) and full["n_runs"] == 16
    assert full["results"]["mean_eps_vs_sum_max_rel_diff"] < 1e-3
    assert (rows["mean_eps"]["reduction"], rows["mean_eps"]["eps"]) == ("mean", pytest.approx(1e-8 / 60))
    _, parts = open_parts(tmp_path / "full")
    assert list(parts) == list(smdd_variants.VARIANTS)
    np.testing.assert_allclose(rows["mean"]["test_loss"], parts["mean"]["test_loss"][:, 0, 0, 0].mean(-1) * 60,
                               rtol=1e-6)
    learned = (parts["hidden_relu"]["feature_dim"][:, 0, 0, 0] > metrics.LEARNED_THRESHOLD).sum(-1).mean(-1)
    np.testing.assert_allclose(rows["hidden_relu"]["n_learned"], learned)
    # the hidden-ReLU model's test loss, recomputed on the same test set
    test = data.to_dense(data.sparse_rows(holdout_key(SWEEP), SWEEP.n_test, 60, SWEEP.sparsity), 60)
    params = {"W": parts["hidden_relu"]["W"][1, 0, 0, 0, 0], "b": parts["hidden_relu"]["b"][1, 0, 0, 0, 0]}
    with_relu = float(relu_output.loss(params, test, hidden_relu=True))
    np.testing.assert_allclose(parts["hidden_relu"]["test_loss"][1, 0, 0, 0, 0], with_relu, rtol=1e-5)
    assert abs(float(relu_output.loss(params, test)) - with_relu) > 1e-4
    assert (tmp_path / "full" / "variants.png").stat().st_size > 10_000
    assert named_dims(tmp_path / "full")["sum/W"][-2:] == ("neuron", "feature")
    interrupted_then_resumed(monkeypatch, "smdd-variants", tmp_path / "killed", full)


def test_modelwise_reads_the_phase_grid_and_equals_its_own_training(monkeypatch, tmp_path):
    tiny = (dataclasses.replace(CFG, n_hidden=1), SWEEP, (2, 3))  # the shapes of the smdd-phase tests above
    monkeypatch.setitem(phase.PRESETS, "tiny", tiny)
    monkeypatch.setitem(smdd_modelwise.PRESETS, "tiny", tiny)
    # with --from the preset only names the Ts to read: T = 20 of the source's 8 and 20
    monkeypatch.setitem(smdd_modelwise.PRESETS, "tiny20", (tiny[0], dataclasses.replace(tiny[1], T=(20,)), tiny[2]))
    phase_run = studies.reproduce("smdd-phase", "tiny", tmp_path / "phase")
    read = studies.reproduce("smdd-modelwise", "tiny20", tmp_path / "read", source=tmp_path / "phase")
    grid = np.array(phase_run["results"]["test_loss_grid"])  # [len(T), len(m)]: T = 20 is its second row
    assert read["n_runs"] == 0 and read["config"]["options"] == {"source": str(tmp_path / "phase")}
    (row,) = read["results"]["by_T"]
    np.testing.assert_allclose(row["test_loss"], grid[1], rtol=1e-6)
    assert row["T"] == 20 and row["peak_m"] == (2, 3)[int(np.argmax(grid[1]))]
    assert read["results"]["peak_m_per_T"] == {"20": row["peak_m"]}
    assert named_dims(tmp_path / "read") == {"modelwise/test_loss": ("m", "T", "data_seed")}
    assert (tmp_path / "read" / "modelwise.png").stat().st_size > 10_000
    assert cli.main(["plot", str(tmp_path / "read")]) == 0
    everything = studies.reproduce("smdd-modelwise", "tiny", tmp_path / "all", source=tmp_path / "phase")
    own = studies.reproduce("smdd-modelwise", "tiny", tmp_path / "own")  # the phase's programs, reused
    assert results(own) == results(everything) and list(open_parts(tmp_path / "own")[1]) == ["m2", "m3", "modelwise"]
    assert own["n_runs"] == phase_run["n_runs"] and [r["T"] for r in own["results"]["by_T"]] == [8, 20]
    with pytest.raises(ValueError, match="not an smdd-phase run"):
        studies.reproduce("smdd-modelwise", "tiny", tmp_path / "x", source=tmp_path / "own")
    with pytest.raises(ValueError, match="do not apply with --from"):
        studies.reproduce("smdd-modelwise", "tiny", tmp_path / "y", source=tmp_path / "phase",
                          overrides={"steps": "7"})


@pytest.mark.slow
def test_repeat_slot_tiny_run(monkeypatch, tmp_path):
    sweep = dataclasses.replace(SWEEP, T=(20,))
    monkeypatch.setitem(smdd_repeat.SLOT_PRESETS, "tiny", (CFG, sweep, (1, 3)))
    summary = studies.reproduce("smdd-repeat-slot", "tiny", tmp_path)
    cells = summary["results"]["by_cell"]
    assert [(c["T"], c["R"]) for c in cells] == [(20, 1), (20, 3)] and cells[0]["differs_from_R1"] == 0.0
    _, parts = open_parts(tmp_path)
    assert list(parts) == ["R1", "R3", "repeated_point"]
    for c in cells:
        for s, r in enumerate(c["per_seed"]):
            W, b = parts[f"R{c['R']}"]["W"][0, 0, 0, 0, s], parts[f"R{c['R']}"]["b"][0, 0, 0, 0, s]
            x0 = np.asarray(data.sparse_features(data_key(sweep, s), 1, 60, 0.9))[0]
            np.testing.assert_array_equal(parts["repeated_point"]["x0"][s], x0)
            assert r["n_learned"] == int((parts[f"R{c['R']}"]["feature_dim"][0, 0, 0, 0, s] > 0.1).sum())
            loss = float(relu_output.example_losses({"W": jnp.asarray(W), "b": jnp.asarray(b)}, jnp.asarray(x0)))
            assert r["relative_loss"] == pytest.approx(loss / float(np.sum(x0**2)), rel=1e-4)
    assert (tmp_path / "repeat_slots.png").stat().st_size > 10_000
    dims = named_dims(tmp_path)
    assert dims["repeated_point/x0"] == ("data_seed", "feature")
    assert dims["repeated_point/relative_loss"] == ("T", "R", "data_seed")
    assert cli.main(["plot", str(tmp_path)]) == 0


@pytest.mark.slow
def test_repeat_map_counts_learned_features_per_run_and_resumes(monkeypatch, tmp_path):
    sweep = dataclasses.replace(SWEEP, T=(20,))  # the shapes of the test above: no new compile
    monkeypatch.setitem(smdd_repeat.PRESETS, "tiny", (CFG, sweep, (1, 3)))
    full = studies.reproduce("smdd-repeat", "tiny", tmp_path / "full")
    res = full["results"]
    _, parts = open_parts(tmp_path / "full")
    want = [[(parts[f"R{R}"]["feature_dim"][0, 0, 0, 0] > 0.1).sum(-1).mean() for R in (1, 3)]]
    np.testing.assert_allclose(res["n_learned_grid"], want)
    assert np.all(np.array(res["n_learned_outside_grid"]) <= np.array(want))
    stored = (parts["repeated_point"]["relative_loss"] < smdd_repeat.STORED_FRACTION).mean(-1)
    np.testing.assert_array_equal(res["stored_fraction_grid"], stored)
    assert "boundary_T_predicted" not in res  # no source gives a boundary line
    for R, T in res["largest_T_stored"].items():  # the same boundary in T / n
        assert res["largest_T_over_n_stored"][R] == (None if T is None else T / 60)
    assert (tmp_path / "full" / "repeat_map.png").stat().st_size > 10_000
    interrupted_then_resumed(monkeypatch, "smdd-repeat", tmp_path / "killed", full)
