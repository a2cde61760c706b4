"""Compile once: bucket programs are reused within a process and loaded from the
persistent cache by the next process."""
import collections
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jax import monitoring

from jaxmem.cache import default_cache_dir
from jaxmem.studies.smdd.sweep import Sweep, run_sweep
from jaxmem.train import TrainConfig

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"  # one per XLA compile, cached or not


@contextlib.contextmanager
def counting_events():
    """Count jax.monitoring events (plain and timed) recorded inside the block."""
    counts = collections.Counter()

    def plain(event, **_):
        counts[event] += 1

    def timed(event, duration, **_):
        counts[event] += 1

    monitoring.register_event_listener(plain)
    monitoring.register_event_duration_secs_listener(timed)
    try:
        yield counts
    finally:
        monitoring.unregister_event_listener(plain)
        monitoring.unregister_event_duration_listener(timed)


@pytest.mark.slow  # over 20 s on the 2-core CPU: kept out of the default run
def test_a_second_sweep_of_the_same_shapes_compiles_nothing():
    cfg = TrainConfig(n_features=23, n_hidden=2, steps=20, n_history=4)  # shapes no other test uses
    with counting_events() as first:
        run_sweep(cfg, Sweep(T=(4, 9), sparsity=0.8, data_seeds=2, n_test=16), progress=False)
    # another seed and learning rate: traced values, the same programs
    with counting_events() as second:
        res = run_sweep(cfg, Sweep(T=(4, 9), sparsity=0.8, data_seeds=2, n_test=16, seed=1, lr=(3e-3,)),
                        progress=False)
    assert first[BACKEND_COMPILE] >= 8  # 4 programs per bucket, 2 buckets
    assert second[BACKEND_COMPILE] == 0 and res.compile_seconds < 0.05


CHILD = f"""
import collections, json, sys
from jax import monitoring
from jaxmem import cli
from jaxmem.studies.smdd import smdd
from jaxmem.studies.smdd.sweep import Sweep
from jaxmem.train import TrainConfig

counts = collections.Counter()
monitoring.register_event_listener(lambda event, **_: counts.update([event]))
smdd.PRESETS["tiny"] = {(TrainConfig(n_features=31, n_hidden=2, steps=20, n_history=4),
                         Sweep(T=(4, 9), sparsity=0.8, data_seeds=2, n_test=16), 0)!r}
code = cli.main(["reproduce", "smdd", "--preset", "tiny", "--out", sys.argv[1]])
print(json.dumps({{"hits": counts["/jax/compilation_cache/cache_hits"],
                  "misses": counts["/jax/compilation_cache/cache_misses"]}}))
sys.exit(code)
"""


def _cli_cache_events(out: Path, cache: Path) -> dict:
    # every program written, whatever its compile time: a threshold makes the count
    # depend on how loaded the machine is (programs near it were written in one run only)
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAXMEM_CACHE_DIR=str(cache), JAXMEM_CACHE_MIN_COMPILE_SECONDS="0")
    env.pop("XLA_FLAGS", None)
    run = subprocess.run([sys.executable, "-c", CHILD, str(out)], env=env, check=False, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.splitlines()[-1])


@pytest.mark.slow
def test_the_next_command_loads_bucket_programs_from_the_persistent_cache(tmp_path):
    cache = tmp_path / "cache"
    first = _cli_cache_events(tmp_path / "first", cache)
    second = _cli_cache_events(tmp_path / "second", cache)
    assert first["misses"] >= 8  # at least the 2 buckets' 4 programs
    assert second == {"hits": first["hits"] + first["misses"], "misses": 0}
    assert len(list(cache.iterdir())) == first["misses"]
    first_summary, second_summary = (json.loads((tmp_path / d / "summary.json").read_text())
                                     for d in ("first", "second"))
    assert second_summary["results"] == first_summary["results"]


def test_cache_folder_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXMEM_CACHE_DIR", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    monkeypatch.delenv("JAXMEM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "jaxmem" / "jax"
