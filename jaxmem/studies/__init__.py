"""The studies, one folder each (smdd, dstar, grokking, identity). Experiments behind
``jaxmem reproduce NAME``: each module has ``DESCRIPTION``,
``PRESETS`` and ``run(preset, out, seeds=None, resume=False) -> summary``."""
from __future__ import annotations

import importlib

#: name -> module under ``jaxmem.studies``
REGISTRY = {
    "smdd": "smdd.smdd", "smdd-phase": "smdd.phase", "smdd-wd": "smdd.wd", "smdd-steps": "smdd.steps",
    "smdd-sparsity": "smdd.sparsity", "smdd-repeat": "smdd.repeat", "smdd-repeat-slot": "smdd.repeat_slot",
    "smdd-variants": "smdd.variants", "smdd-modelwise": "smdd.modelwise",
    "dstar-smdd": "dstar.smdd", "dstar-mnist": "dstar.mnist",
    "modular-addition": "grokking.modular_addition", "parity-grid": "grokking.parity_grid",
    "grokking-lr": "grokking.lr",
    "opt-failure": "identity.opt_failure",
}


def get(name: str):
    if name not in REGISTRY:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return importlib.import_module(f"jaxmem.studies.{REGISTRY[name]}")
