"""The studies, one folder each (smdd, dstar, grokking, opt_failure, memorisation). The experiments behind
``jaxmem reproduce NAME`` follow one protocol (``jaxmem.studies.protocol``: ``PRESETS``,
``run(cfg, store)``, ``summarize``, ``draw``); ``reproduce(NAME, preset, out, ...)`` runs one."""
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
    "parity-pruning": "grokking.parity_pruning",
    "modular-circle": "grokking.circle",
    "opt-failure": "opt_failure.opt_failure",
    "memorisation": "memorisation.memorisation",
}


def get(name: str):
    if name not in REGISTRY:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(sorted(REGISTRY))}")
    module = importlib.import_module(f"jaxmem.studies.{REGISTRY[name]}")
    module.NAME = name
    return module


def reproduce(name: str, preset: str = "quick", out=None, **kwargs) -> dict:
    """Run experiment ``name`` into ``out`` (see ``jaxmem.studies.protocol.reproduce``)."""
    from jaxmem.studies.protocol import reproduce as run

    if out is None:
        raise ValueError("reproduce needs out=, the folder for the results")
    return run(name, preset, out, **kwargs)
