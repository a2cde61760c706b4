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


# ---------------------------------------------------------------- --set, --version, --out, show, plot

#: the quick smdd preset shrunk with --set to train in seconds
SHRINK = ["--set", "n_features=40", "--set", "steps=40", "--set", "n_history=4", "--set", "T=3,8,20",
          "--set", "data_seeds=1", "--set", "n_test=100"]


def test_set_shrinks_a_run_and_plot_redraws_its_figures(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["reproduce", "smdd", "--preset", "quick", "--out", str(out), *SHRINK]) == 0
    summary = json.loads((out / "summary.json").read_text())
    config = summary["config"]
    assert (config["n_features"], config["steps"], config["T"], config["data_seeds"]) == (40, 40, [3, 8, 20], 1)
    assert config["overrides"] == {"n_features": "40", "steps": "40", "n_history": "4", "T": "3,8,20",
                                   "data_seeds": "1", "n_test": "100"}
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert {"dimensionality.png", "test_loss.png", "norms.png"} <= set(pngs)
    for p in out.glob("*.png"):
        p.unlink()
    capsys.readouterr()
    assert cli.main(["plot", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == pngs
    assert all((out / name).stat().st_size > 10_000 for name in pngs)
    assert f"smdd: drew {len(pngs)} figure(s)" in capsys.readouterr().out
    # --resume: the same --set reuses the run, another --set is another config
    assert cli.main(["reproduce", "smdd", "--preset", "quick", "--out", str(out), "--resume", *SHRINK]) == 0
    assert json.loads((out / "summary.json").read_text())["wall_seconds"] == summary["wall_seconds"]
    capsys.readouterr()
    assert cli.main(["reproduce", "smdd", "--preset", "quick", "--out", str(out), "--resume", *SHRINK,
                     "--set", "eps=1e-7"]) == 2
    assert "another config" in capsys.readouterr().err


def test_resume_refuses_a_folder_of_another_override(tiny, tmp_path):
    smdd.run("tiny", tmp_path)
    with pytest.raises(ValueError, match="another config"):  # eps is not in the config dict: the overrides are
        smdd.run("tiny", tmp_path, resume=True, overrides={"eps": "1e-8"})


def test_set_errors_name_the_field_and_value(capsys, tmp_path):
    x = str(tmp_path / "x")
    assert cli.main(["reproduce", "opt-failure", "--out", x, "--set", "stepz=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxmem: error: unknown field 'stepz'") and "steps" in err
    assert cli.main(["reproduce", "opt-failure", "--out", x, "--set", "steps=-3"]) == 2
    assert "steps=-3: steps must be a positive integer, got -3" in capsys.readouterr().err
    assert cli.main(["reproduce", "parity-grid", "--out", x, "--set", "steps=abc"]) == 2
    assert "steps=abc: cannot read 'abc' as int" in capsys.readouterr().err
    assert cli.main(["reproduce", "smdd", "--out", x, "--set", "steps"]) == 2
    assert "expected FIELD=VALUE" in capsys.readouterr().err


def test_version():
    out = subprocess.run([sys.executable, "-m", "jaxmem.cli", "--version"], capture_output=True, text=True, check=True)
    from jaxmem import __version__
    assert out.stdout.strip() == f"jaxmem {__version__}" == f"jaxmem {cli.version()}"


def test_out_that_is_a_file_and_missing_paths_are_clear_errors(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert cli.main(["reproduce", "smdd", "--out", str(f)]) == 2
    assert capsys.readouterr().err == f"jaxmem: error: --out {f} is a file; give a folder\n"
    assert cli.main(["reproduce", "dstar-smdd", "--from", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "--from" in capsys.readouterr().err
    assert cli.main(["reproduce", "dstar-mnist", "--data", str(f), "--out", str(tmp_path / "o")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    # a command line's subprocess: no traceback
    run = subprocess.run([sys.executable, "-m", "jaxmem.cli", "reproduce", "smdd", "--out", str(f)],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr and "is a file" in run.stderr


def _fake_summary(folder, **extra):
    folder.mkdir(exist_ok=True)
    summary = {"experiment": "smdd", "preset": "quick", "backend": "cpu", "devices": ["cpu:0", "cpu:1"],
               "n_runs": 28, "wall_seconds": 12.345, "compile_seconds": 3.21,
               "config": {"steps": 40, "overrides": {"steps": "40"}},
               "results": {"test_loss_peak_T": 20, "pad_ratio": 1.0625,
                           "infinite": {"test_loss": 0.5, "W_norm": None},
                           "by_T": [{"T": t, "test_loss": t / 100} for t in range(1, 11)],
                           "T": list(range(100)), "grid": [[1.5, 2.5], [3.5, 4.5]]}, **extra}
    (folder / "summary.json").write_text(json.dumps(summary))
    return summary


def test_show_prints_the_headline_table(tmp_path, capsys):
    _fake_summary(tmp_path / "run")
    assert cli.main(["show", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    lines = [line.split(None, 1) for line in out.splitlines()[1:] if line.strip()]
    table = {k: v for k, v in (line if len(line) == 2 else (line[0], "") for line in lines)}
    assert table["experiment"] == "smdd" and table["preset"] == "quick" and table["backend"] == "cpu"
    assert table["n_runs"] == "28" and table["wall_seconds"] == "12.3" and table["compile_seconds"] == "3.2"
    assert table["overrides"] == "steps=40"
    assert table["test_loss_peak_T"] == "20" and table["pad_ratio"] == "1.0625"
    assert table["infinite/test_loss"] == "0.5" and table["infinite/W_norm"] == "null"
    assert table["by_T/0/T"] == "1" and table["by_T/9/test_loss"] == "0.1" and "by_T/5/T" not in table
    assert table["T"] == "[0, 1, 2, 3, ..., 99] (100 items)" and table["grid"] == "[[1.5, 2.5], [3.5, 4.5]]"


def test_show_and_plot_name_a_missing_or_corrupt_summary(tmp_path, capsys):
    assert cli.main(["show", str(tmp_path)]) == 2
    assert f"{tmp_path / 'summary.json'}: not found" in capsys.readouterr().err
    (tmp_path / "summary.json").write_text('{"experiment": ')
    assert cli.main(["plot", str(tmp_path)]) == 2
    assert f"{tmp_path / 'summary.json'}: not readable JSON" in capsys.readouterr().err
    assert cli.main(["show", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_plot_of_an_experiment_without_draw_says_so(tmp_path, capsys, monkeypatch):
    _fake_summary(tmp_path, experiment="nonsense")
    assert cli.main(["plot", str(tmp_path)]) == 2
    assert "unknown experiment 'nonsense'" in capsys.readouterr().err
    _fake_summary(tmp_path)
    monkeypatch.delattr(smdd, "draw")
    assert cli.main(["plot", str(tmp_path)]) == 2
    assert "smdd has no figures to redraw" in capsys.readouterr().err


def test_the_command_line_makes_one_cpu_device_per_core():
    """Before JAX starts, the CLI asks for one CPU device per core (here 3, as told), so
    that grids split their runs over the cores; an XLA_FLAGS count is left alone."""
    import os
    import subprocess
    import sys

    code = "from jaxmem import cli; cli.one_cpu_device_per_core(); import jax; print(len(jax.devices()))"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    told = subprocess.run([sys.executable, "-c", code], env={**env, "JAXMEM_CPU_DEVICES": "3", "JAX_PLATFORMS": "cpu"},
                          capture_output=True, text=True, timeout=120)
    kept = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "JAX_PLATFORMS": "cpu"})
    assert told.stdout.split()[-1] == "3" and kept.stdout.split()[-1] == "1", told.stderr + kept.stderr
