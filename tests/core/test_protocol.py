"""The study protocol end to end on a tiny smdd run: one summary, named dims, and a run
folder that is never mixed, overwritten or lost (each case failed before the store)."""
import json

import numpy as np
import pytest

import jaxmem
from jaxmem import cli, studies
from jaxmem.store import open_parts
from jaxmem.studies.smdd import smdd


def _reproduce(out, *extra):
    return cli.main(["reproduce", "smdd", "--preset", "tiny", "--out", str(out), *extra])


def test_one_run_writes_summary_parts_figures_and_named_dims(tiny_smdd, tmp_path, capsys):
    assert _reproduce(tmp_path) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary)[:4] == ["experiment", "preset", "backend", "devices"] and list(summary)[-1] == "results"
    assert summary["n_runs"] == 4 + 2 and summary["n_diverged"] == 0 and summary["resumed_parts"] == []
    assert summary["config"]["Sweep"]["T"] == [3, 8] and summary["config"]["TrainConfig"]["steps"] == 40
    manifest, parts = open_parts(tmp_path)
    assert manifest["status"] == "finished" and set(parts) == {"", "infinite"}
    W = parts[""]["W"][:, 0, 0, 0]  # [T, data_seed, m, n]
    np.testing.assert_allclose([r["W_norm"] for r in summary["results"]["by_T"]],
                               np.sqrt((W ** 2).sum((-2, -1))).mean(-1), rtol=1e-5)
    for name in ("dimensionality", "vectors_shared_scale", "vectors_per_panel", "test_loss", "norms"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    assert set(manifest["written"]) >= {"runs.npz", "summary.json", "test_loss.png"}
    ds = jaxmem.load(tmp_path)
    assert not [d for d in ds.dims if "_dim" in d]
    assert ds.W.dims == ("T", "lr", "weight_decay", "init_scale", "data_seed", "neuron", "feature")
    assert ds["infinite/test_loss"].dims[0] == "infinite/T" and list(ds.step.values) == [10, 20, 30, 40]
    np.testing.assert_allclose(ds.test_loss.sel(T=8).mean("data_seed").values.ravel(),
                               [summary["results"]["by_T"][1]["test_loss"]], rtol=1e-6)
    capsys.readouterr()
    assert cli.main(["show", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    assert all(f"\n    {t} " in shown for t in (3, 8))  # a row per T
    assert cli.main(["show", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == summary
    drawn = sorted(png.name for png in tmp_path.glob("*.png"))
    assert len(drawn) >= 5
    for png in tmp_path.glob("*.png"):
        png.unlink()
    assert cli.main(["plot", str(tmp_path)]) == 0
    assert f"smdd: drew {len(drawn)} figure(s)" in capsys.readouterr().out
    assert sorted(png.name for png in tmp_path.glob("*.png")) == drawn


def test_a_killed_run_resumes_only_its_missing_part_and_refuses_another_config(tiny_smdd, tmp_path, monkeypatch,
                                                                              capsys):
    whole = studies.reproduce("smdd", "tiny", tmp_path / "whole", draw=False)
    real = smdd.sweep_part

    def killed_at_infinite(cfg, sweep, store, name, keep=None):
        if name == "infinite":
            raise KeyboardInterrupt
        return real(cfg, sweep, store, name, keep)

    monkeypatch.setattr(smdd, "sweep_part", killed_at_infinite)
    out = tmp_path / "killed"
    assert _reproduce(out) == 130
    assert "--resume" in capsys.readouterr().err
    saved = open_parts(out)[1]
    assert list(saved) == [""]
    monkeypatch.setattr(smdd, "sweep_part", real)
    assert _reproduce(out) == 2  # neither --resume nor --overwrite
    assert "unfinished smdd run (1 part(s) saved)" in capsys.readouterr().err
    # another step count: refused by name, before anything trains (the old code mixed them)
    assert _reproduce(out, "--resume", "--set", "steps=80") == 2
    assert "TrainConfig.steps: 40 -> 80" in capsys.readouterr().err
    np.testing.assert_array_equal(open_parts(out)[1][""]["W"], saved[""]["W"])
    resumed = studies.reproduce("smdd", "tiny", out, resume=True, draw=False)
    assert resumed["resumed_parts"] == [""]
    assert resumed["results"] == whole["results"]
    assert resumed["wall_seconds"] == pytest.approx(saved[""].seconds + resumed["parts"]["infinite"]["seconds"])


def test_a_finished_folder_is_kept_unless_overwritten_and_foreign_files_stay(tiny_smdd, tmp_path, capsys):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "mine.pt").write_text("the user's")
    assert _reproduce(tmp_path) == 0
    first = (tmp_path / "summary.json").read_text()
    assert _reproduce(tmp_path) == 2
    assert "already holds a finished smdd run" in capsys.readouterr().err
    assert (tmp_path / "summary.json").read_text() == first
    assert _reproduce(tmp_path, "--resume") == 0  # the same config: every part reused
    assert "2 of 2 part(s) loaded" in capsys.readouterr().out
    assert _reproduce(tmp_path, "--overwrite", "--set", "weight_decay=0") == 0
    assert json.loads((tmp_path / "summary.json").read_text())["config"]["Sweep"]["weight_decay"] == [0.0]
    assert (tmp_path / "checkpoints" / "mine.pt").read_text() == "the user's"


def test_every_run_diverged_gives_a_summary_and_keeps_the_arrays(tiny_smdd, tmp_path, capsys):
    assert _reproduce(tmp_path, "--set", "lr=1e9") == 1
    assert "every run diverged" in capsys.readouterr().err
    text = (tmp_path / "summary.json").read_text()
    assert "NaN" not in text
    summary = json.loads(text)
    assert summary["results"] is None and summary["n_diverged"] == summary["n_runs"] == 6
    assert open_parts(tmp_path)[1][""]["diverged"].all()


@pytest.mark.parametrize("T", ["20,8,3", "3,3,8"])
def test_unsorted_or_repeated_T_is_refused(tmp_path, capsys, T):
    assert cli.main(["reproduce", "smdd", "--out", str(tmp_path / "x"), "--set", f"T={T}"]) == 2
    assert "T must be strictly increasing" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_dry_run_prints_the_resolved_config_and_trains_nothing(tmp_path, capsys):
    assert cli.main(["reproduce", "smdd", "--out", str(tmp_path / "x"), "--set", "steps=7", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out.split("\n", 1)[1])["TrainConfig"]["steps"] == 7
    assert not (tmp_path / "x").exists()
