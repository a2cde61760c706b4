"""The command line: names, errors, show and plot (a run end to end: test_protocol.py)."""
import json
import re
import subprocess
import sys

from jaxmem import cli
from jaxmem.studies.smdd import smdd


def test_unknown_names_are_named_in_the_error(capsys):
    assert cli.main(["reproduce", "nonsense", "--out", "x"]) == 2
    assert "'nonsense'" in capsys.readouterr().err
    assert cli.main(["reproduce", "smdd", "--preset", "huge", "--out", "x"]) == 2
    assert "'huge'" in capsys.readouterr().err
    assert cli.main(["reproduce", "smdd", "--seeds", "0", "--out", "x"]) == 2
    assert "--seeds must be >= 1, got 0" in capsys.readouterr().err


def test_list_names_every_experiment(capsys):
    from jaxmem import studies

    assert cli.main(["list"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == sorted(studies.REGISTRY)


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
                           "by_T": [{"T": t, "test_loss": t / 100} for t in range(1, 31)],
                           "T": list(range(100)), "grid": [[1.5, 2.5], [3.5, 4.5]]}, **extra}
    (folder / "summary.json").write_text(json.dumps(summary))
    return summary


def test_show_prints_every_row_of_its_tables(tmp_path, capsys):
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
    rows = [line.split() for line in out.split("by_T:")[1].split("\n\n")[0].splitlines()[3:]]
    assert [r[0] for r in rows] == [str(t) for t in range(1, 31)]  # no row left out
    assert rows[-1][1] == "0.3"
    assert re.search(r"^ +T +\[0, 1, 2, .*, 98, 99\]$", out, re.M)  # a long list whole
    assert "1.5  2.5" in out.split("grid:")[1]
    capsys.readouterr()
    assert cli.main(["show", str(tmp_path / "run"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"]["grid"] == [[1.5, 2.5], [3.5, 4.5]]


def test_show_and_plot_name_a_missing_or_corrupt_summary(tmp_path, capsys):
    assert cli.main(["show", str(tmp_path)]) == 2
    assert f"{tmp_path / 'summary.json'}: not found" in capsys.readouterr().err
    (tmp_path / "summary.json").write_text('{"experiment": ')
    assert cli.main(["plot", str(tmp_path)]) == 2
    assert f"{tmp_path / 'summary.json'}: not readable JSON" in capsys.readouterr().err
    assert cli.main(["show", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_plot_names_what_it_cannot_redraw(tmp_path, capsys, monkeypatch):
    from jaxmem.store import Part, RunStore
    from jaxmem.studies import protocol

    _fake_summary(tmp_path / "old")
    assert cli.main(["plot", str(tmp_path / "old")]) == 2
    assert "no run.json" in capsys.readouterr().err
    for name, experiment in (("nonsense", "nonsense"), ("smdd", "smdd")):
        runs = RunStore(tmp_path / name, experiment, "quick", protocol.record(smdd, smdd.PRESETS["quick"]))
        runs.save("", Part({"test_loss": [1.0]}, {"test_loss": ("T",)}))
        runs.finish(_fake_summary(tmp_path / name, experiment=experiment))
    assert cli.main(["plot", str(tmp_path / "nonsense")]) == 2
    assert "unknown experiment 'nonsense'" in capsys.readouterr().err
    monkeypatch.delattr(smdd, "draw")
    assert cli.main(["plot", str(tmp_path / "smdd")]) == 2
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
    # `reproduce` asks before the study modules import JAX (a bad --set stops it just after)
    code = ("from jaxmem import cli; cli.main(['reproduce', 'smdd', '--out', 'x', '--set', 'T=3,3']); "
            "import jax; print(len(jax.devices()))")
    cli_run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                             env={**env, "JAXMEM_CPU_DEVICES": "2", "JAX_PLATFORMS": "cpu"})
    assert cli_run.stdout.split()[-1] == "2", cli_run.stderr
