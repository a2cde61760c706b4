"""scripts/reproduce_all.py on fake runners (no training)."""
import importlib.util
import json
from pathlib import Path

import pytest

from jaxmem import studies

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "reproduce_all.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("reproduce_all", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SMDD_RESULTS = {"test_loss_peak_T": 211, "W_norm_peak_T": 124, "test_loss_peak_is_interior": True,
                "infinite": {"test_loss": 0.98771405}, "n_diverged": 0, "by_T": [{"T": 3}]}


def _fake(calls):
    def runner(name, preset, out, extra, timeout):
        calls.append((name, preset, out, extra))
        if name == "parity-grid":
            return False, "exit 1: boom"
        if name == "opt-failure":
            raise RuntimeError("runner broke")
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps({"experiment": name, "n_runs": 28, "results": SMDD_RESULTS}))
        return True, ""
    return runner


def test_only_runs_the_named_ones_and_tabulates_them(script, tmp_path, capsys):
    calls = []
    rc = script.main(["--only", "smdd", "--out", str(tmp_path), "--seeds", "3"], runner=_fake(calls))
    assert rc == 0
    assert calls == [("smdd", "quick", tmp_path / "smdd", ["--seeds", "3"])]
    text = (tmp_path / "RESULTS.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| smdd "))
    assert "| ok |" in row and "| 28 |" in row
    assert "test-loss peak T: 211" in row and "infinite-data test loss: 0.988" in row and "peak interior: yes" in row
    assert text in capsys.readouterr().out
    assert json.loads((tmp_path / "RESULTS.json").read_text())[0]["n_runs"] == 28


def test_a_failing_experiment_is_reported_and_the_rest_still_run(script, tmp_path):
    calls = []
    rc = script.main(["--only", "parity-grid", "opt-failure", "smdd", "--out", str(tmp_path)], runner=_fake(calls))
    assert rc == 1 and [c[0] for c in calls] == ["parity-grid", "opt-failure", "smdd"]
    rows = {r["experiment"]: r for r in json.loads((tmp_path / "RESULTS.json").read_text())}
    assert rows["parity-grid"]["status"] == "FAILED" and "boom" in rows["parity-grid"]["headline"]
    assert rows["opt-failure"]["status"] == "FAILED" and "runner broke" in rows["opt-failure"]["message"]
    assert rows["smdd"]["status"] == "ok"
    assert "failed: parity-grid, opt-failure" in (tmp_path / "RESULTS.md").read_text()


def test_a_run_that_writes_no_summary_fails(script, tmp_path):
    rc = script.main(["--only", "smdd", "--out", str(tmp_path)], runner=lambda *a: (True, ""))
    assert rc == 1
    assert "without writing summary.json" in (tmp_path / "RESULTS.md").read_text()


def test_unknown_names_are_refused(script, tmp_path, capsys):
    with pytest.raises(SystemExit):
        script.main(["--only", "nonsense", "--out", str(tmp_path)], runner=lambda *a: (True, ""))
    assert "'nonsense'" in capsys.readouterr().err


def test_every_headline_names_a_registered_experiment_and_paths_resolve(script):
    assert set(script.HEADLINES) == set(studies.REGISTRY)
    results = {"by_variant": [{"bump_T": 20, "jump_T": None}, {"bump_T": "> 300"}], "diverged": [1, 2],
               "a": {"memorise then generalise": 3, "learn nothing": 1}}
    assert script.lookup(results, "by_variant/*/bump_T") == [20, "> 300"]
    assert script.lookup(results, "diverged#") == 2
    assert script.lookup(results, "nothing/here") is script._MISSING
    assert script.fmt(script.lookup(results, "a")) == "grok 3 nothing 1"
    assert script.fmt({"two words": 0.5}) == "TW 0.5"
    assert script.fmt([0.123456, None, True]) == "[0.123, –, yes]"


@pytest.mark.slow  # over 20 s on the 2-core CPU: kept out of the default run
def test_a_real_tiny_run_in_process(script, tmp_path, tiny_smdd):
    rc = script.main(["--only", "smdd", "--preset", "tiny", "--out", str(tmp_path), "--in-process"])
    assert rc == 0
    row = json.loads((tmp_path / "RESULTS.json").read_text())[0]
    assert row["status"] == "ok" and row["n_runs"] == 6 and "test-loss peak T" in row["headline"]
    assert (tmp_path / "smdd" / "summary.json").exists()
    # again into the same folders: refused without --resume or --overwrite, which work
    assert script.main(["--only", "smdd", "--preset", "tiny", "--out", str(tmp_path), "--in-process"]) == 1
    assert script.main(["--only", "smdd", "--preset", "tiny", "--out", str(tmp_path), "--in-process",
                        "--overwrite"]) == 0


def test_figures_copies_each_finished_experiments_headline_figure(script, tmp_path):
    def runner(name, preset, out, extra, timeout):
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps({"experiment": name, "n_runs": 1, "results": {}}))
        (out / script.FIGURES[name][0]).write_bytes(b"png of " + name.encode())
        return name != "dstar-smdd", ""

    rc = script.main(["--only", "smdd", "dstar-smdd", "--out", str(tmp_path / "runs"),
                      "--figures", str(tmp_path / "figs")], runner=runner)
    assert rc == 1
    assert (tmp_path / "figs" / "smdd_test_loss.png").read_bytes() == b"png of smdd"
    assert not (tmp_path / "figs" / "dstar_smdd_levels.png").exists()  # it failed: nothing copied


def test_every_headline_figure_names_a_registered_experiment(script):
    assert set(script.FIGURES) <= set(studies.REGISTRY)
