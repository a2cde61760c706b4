import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from jaxmem import cli, results
from jaxmem.studies.smdd import smdd
from jaxmem.sweep import Sweep
from jaxmem.train import TrainConfig

TINY = (TrainConfig(n_features=60, n_hidden=2, steps=60, n_history=10),
        Sweep(T=(3, 8, 20, 50), sparsity=0.9, data_seeds=2, n_test=200))


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(smdd.PRESETS, "tiny", TINY)


def test_smdd_writes_summary_arrays_and_figures(tiny, tmp_path):
    assert cli.main(["reproduce", "smdd", "--preset", "tiny", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ("experiment", "preset", "backend", "devices", "n_runs", "wall_seconds", "compile_seconds"):
        assert key in summary
    assert summary["n_runs"] == 8 and summary["config"]["T"] == [3, 8, 20, 50]
    for key in ("n_features", "n_hidden", "sparsity", "steps"):
        assert key in summary["config"]
    by_T = summary["results"]["by_T"]
    assert [r["T"] for r in by_T] == [3, 8, 20, 50]
    arrays = results.load_arrays(tmp_path / "runs.npz")
    W_norm = np.sqrt((arrays["W"][:, 0, 0, 0] ** 2).sum((-2, -1))).mean(-1)
    np.testing.assert_allclose([r["W_norm"] for r in by_T], W_norm, rtol=1e-5)
    assert summary["results"]["W_norm_peak_T"] == [3, 8, 20, 50][int(np.argmax(W_norm))]
    for name in ("dimensionality", "vectors_shared_scale", "vectors_per_panel", "test_loss", "norms"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000


def test_resume_reuses_saved_results_and_refuses_another_config(tiny, tmp_path):
    first = smdd.run("tiny", tmp_path)
    again = smdd.run("tiny", tmp_path, resume=True)
    assert again["wall_seconds"] == first["wall_seconds"] and again["results"] == first["results"]
    with pytest.raises(ValueError, match="another config"):
        smdd.run("tiny", tmp_path, seeds=3, resume=True)


def test_unknown_names_are_named_in_the_error(capsys):
    assert cli.main(["reproduce", "nonsense", "--out", "x"]) == 2
    assert "'nonsense'" in capsys.readouterr().err
    assert cli.main(["reproduce", "smdd", "--preset", "huge", "--out", "x"]) == 2
    assert "'huge'" in capsys.readouterr().err
    assert cli.main(["reproduce", "smdd", "--seeds", "0", "--out", "x"]) == 2
    assert "--seeds must be >= 1, got 0" in capsys.readouterr().err


def test_list_names_every_experiment():
    out = subprocess.run([sys.executable, "-m", "jaxmem.cli", "list"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("smdd ") or "\nsmdd " in out.stdout


def test_dstar_smdd_from_a_saved_sweep(tiny, tmp_path):
    from jaxmem.studies.dstar import smdd as dstar_smdd

    smdd.run("tiny", tmp_path / "sweep")
    summary = dstar_smdd.run("tiny", tmp_path / "dstar", source=tmp_path / "sweep")
    hidden = results.load_arrays(tmp_path / "sweep" / "runs.npz")["hidden"][:, 0, 0, 0]
    for i, row in enumerate(summary["results"]["by_T"]):
        for check in row["sum_check"]:
            h = hidden[i, check["seed"], : row["T"]].astype(np.float64)
            assert check["rank"] == np.linalg.matrix_rank(h)
            assert abs(check["total"] - check["rank"]) < 1e-3 and check["converged"]
    assert (tmp_path / "dstar" / "dstar_curves.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="not an smdd run"):
        dstar_smdd.run("tiny", tmp_path / "again", source=tmp_path / "dstar")
    assert cli.main(["reproduce", "smdd", "--from", str(tmp_path), "--out", str(tmp_path / "x")]) == 2


def test_bump_position_of_a_double_descent_curve():
    from jaxmem.studies.smdd.phase import bump_T

    T = [1, 2, 3, 4, 5, 6]
    assert bump_T(T, [3.0, 1.0, 1.2, 1.5, 1.1, 1.0]) == 4
    assert bump_T(T, [3.0, 1.0, 1.1, 1.2, 1.3, 1.4]) == "> 6"
    assert bump_T(T, [3.0, 2.0, 1.5, 1.2, 1.1, 1.0]) is None


def test_smdd_phase_grid_matches_its_per_m_runs(monkeypatch, tmp_path):
    from jaxmem.studies.smdd import phase as smdd_phase

    monkeypatch.setitem(smdd_phase.PRESETS, "tiny", (TINY[0], TINY[1], (1, 3)))
    summary = smdd_phase.run("tiny", tmp_path)
    grid = np.array(summary["results"]["test_loss_grid"])
    assert grid.shape == (4, 2) and summary["config"]["n_hidden"] == [1, 3]
    saved = results.load_arrays(tmp_path / "runs.npz")
    np.testing.assert_allclose(grid[:, 1], saved["m3_test_loss"][:, 0, 0, 0].mean(-1), rtol=1e-6)
    again = smdd_phase.run("tiny", tmp_path, resume=True)
    np.testing.assert_array_equal(again["results"]["test_loss_grid"], summary["results"]["test_loss_grid"])
    assert again["wall_seconds"] == summary["wall_seconds"]
    for name in ("phase_heatmap", "phase_lines"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    assert not (tmp_path / "checkpoints").exists()


def test_jump_and_sparsity_grid_scaling(monkeypatch, tmp_path):
    from jaxmem.studies.smdd import settings as smdd_settings

    assert smdd_settings.jump_T([1, 2, 3, 4], np.array([[0.1], [0.12], [0.3], [0.31]])) == 3.0
    assert smdd_settings._scaled_T((10, 100), 0.995, 0.99) == (20, 200)
    cfg, sweep = TINY
    tiny = dict(smdd_settings.SETTINGS["smdd-sparsity"].presets, tiny=(cfg, sweep, (0.8, 0.9)))
    monkeypatch.setitem(smdd_settings.SETTINGS, "smdd-sparsity",
                        dataclasses.replace(smdd_settings.SETTINGS["smdd-sparsity"], presets=tiny))
    summary = smdd_settings.run_setting("smdd-sparsity", "tiny", tmp_path)
    rows = summary["results"]["by_variant"]
    assert [r["variant"] for r in rows] == ["S0.8", "S0.9"]
    # the reference sparsity is the sweep's own (0.9): S = 0.8 halves T, S = 0.9 keeps it
    assert rows[0]["T"] == [2, 4, 10, 25] and rows[1]["T"] == [3, 8, 20, 50]
    for r in rows:
        assert r["jump_T"] in r["T"]
    assert (tmp_path / "feature_dim_max.png").stat().st_size > 10_000


def test_repeated_point_loss_matches_the_model():
    import jax

    from jaxmem.models import relu_output
    from jaxmem.studies.smdd.repeat import point_losses

    params = relu_output.init(jax.random.key(3), 20, 2)
    params["b"] = 0.1 * jax.random.normal(jax.random.key(4), (20,))
    x = np.asarray(jax.random.uniform(jax.random.key(5), (20,)))
    want = float(relu_output.example_losses(params, x))
    got = point_losses(np.asarray(params["W"]), np.asarray(params["b"]), x)
    np.testing.assert_allclose(got, want, rtol=1e-5)
