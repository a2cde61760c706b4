"""Experiments behind ``jaxmem reproduce NAME``: each module has ``DESCRIPTION``,
``PRESETS`` and ``run(preset, out, seeds=None, resume=False) -> summary``."""
from __future__ import annotations

import importlib

#: name -> module under ``jaxmem.experiments``
REGISTRY = {"smdd": "smdd", "dstar-smdd": "dstar_smdd", "dstar-mnist": "dstar_mnist", "opt-failure": "opt_failure",
            "smdd-phase": "smdd_phase", "smdd-wd": "smdd_wd", "smdd-steps": "smdd_steps",
            "smdd-sparsity": "smdd_sparsity", "smdd-repeat": "smdd_repeat",
            "modular-addition": "modular_addition", "parity-grid": "parity_grid", "grokking-lr": "grokking_lr",
            "smdd-variants": "smdd_variants", "smdd-modelwise": "smdd_modelwise", "smdd-repeat-slot": "smdd_repeat_slot"}


def get(name: str):
    if name not in REGISTRY:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return importlib.import_module(f"jaxmem.experiments.{REGISTRY[name]}")
