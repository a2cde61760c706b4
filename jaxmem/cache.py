"""JAX's persistent compilation cache: a later process loads compiled programs from disk.

The ``jaxmem`` command turns it on; from Python, call ``enable_compilation_cache()``
before the first compile. ``JAX_ENABLE_COMPILATION_CACHE=false`` turns it off.
"""
from __future__ import annotations

import os
from pathlib import Path

import jax

#: environment variable naming the cache folder
CACHE_DIR_VAR = "JAXMEM_CACHE_DIR"

#: programs that compile faster than this are not written (tiny eager ops);
#: ``$JAXMEM_CACHE_MIN_COMPILE_SECONDS`` sets another threshold (0: write every program)
MIN_COMPILE_SECONDS = 0.1
MIN_COMPILE_VAR = "JAXMEM_CACHE_MIN_COMPILE_SECONDS"


def default_cache_dir() -> Path:
    """``$JAXMEM_CACHE_DIR``, else ``$XDG_CACHE_HOME/jaxmem/jax``, else ``~/.cache/jaxmem/jax``."""
    if os.environ.get(CACHE_DIR_VAR):
        return Path(os.environ[CACHE_DIR_VAR]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jaxmem" / "jax"


def enable_compilation_cache(path=None) -> Path:
    """Keep compiled programs in ``path`` (default ``default_cache_dir()``) and load them
    from there instead of compiling again; returns the folder. JAX opens its cache at the
    first compile after a folder is set and keeps it for the process: call this first."""
    path = Path(path).expanduser() if path is not None else default_cache_dir()
    jax.config.update("jax_compilation_cache_dir", str(path))
    threshold = float(os.environ.get(MIN_COMPILE_VAR) or MIN_COMPILE_SECONDS)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", threshold)
    return path
