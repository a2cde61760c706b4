import os
import tempfile

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
# the CLI turns on JAX's persistent compilation cache: keep the tests' out of the user's
os.environ.setdefault("JAXMEM_CACHE_DIR", tempfile.mkdtemp(prefix="jaxmem-test-cache-"))


@pytest.fixture
def key():
    return jax.random.key(0)


#: one tiny smdd preset for every test that runs the experiment: the same shapes, so
#: its programs compile once per test session
@pytest.fixture
def tiny_smdd(monkeypatch):
    from jaxmem.studies.smdd import smdd
    from jaxmem.studies.smdd.sweep import Sweep
    from jaxmem.train import TrainConfig

    tiny = (TrainConfig(n_features=40, n_hidden=2, steps=40, n_history=4),
            Sweep(T=(3, 8), sparsity=0.9, data_seeds=2, n_test=100), 50)
    monkeypatch.setitem(smdd.PRESETS, "tiny", tiny)
    return tiny
