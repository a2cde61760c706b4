"""Experiments behind ``jaxmem reproduce NAME``: each module has ``DESCRIPTION``,
``PRESETS`` and ``run(preset, out, seeds=None, resume=False) -> summary``."""
from __future__ import annotations

import importlib

#: name -> module under ``jaxmem.experiments``
REGISTRY = {"smdd": "smdd", "dstar-smdd": "dstar_smdd", "opt-failure": "opt_failure"}


def get(name: str):
    if name not in REGISTRY:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return importlib.import_module(f"jaxmem.experiments.{REGISTRY[name]}")
