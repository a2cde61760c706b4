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
