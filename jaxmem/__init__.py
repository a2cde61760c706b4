"""jaxmem: train whole sweeps of small networks as one JAX program.

The core: ``run_grid`` (any model over a named grid of seeds, dataset sizes and
hyperparameters; ``jaxmem.train``), ``load`` (a saved run as an ``xarray.Dataset``),
``data`` (sparse-feature datasets), ``tasks`` (modular addition, parity), ``mnist``,
``models`` (pure model functions), ``devices`` (the run mesh), ``cache`` (the
persistent compilation cache), ``metrics``, ``dstar`` (maximal data dimensionality),
``stats`` (rank correlation), ``memorisation`` (counterfactual memorisation and
influence from random-subset runs; callable as ``jaxmem.memorisation(scores, in_mask)``), ``store`` (the run folder: parts, resume, ``load``).
``jaxmem.studies`` holds one folder per study (smdd with its sweep, dstar, grokking,
opt_failure): its experiments (what ``jaxmem reproduce NAME`` runs, one protocol),
analysis and figures.

Names load on first use, so that ``jaxmem``'s command line can set up JAX's devices
before JAX starts.
"""
import importlib

__version__ = "0.1.0"  # as pyproject.toml

_MODULES = ("cache", "data", "devices", "dstar", "metrics", "models", "stats", "store", "studies",
            "tasks", "mnist", "train")
_NAMES = {"run_grid": "jaxmem.train", "GridResult": "jaxmem.train", "load": "jaxmem.store",
          "enable_compilation_cache": "jaxmem.cache"}

# counterfactual memorisation: jaxmem.memorisation is a callable module (jaxmem.memorisation(scores, in_mask))
_MODULES += ("memorisation",)
_NAMES["influence"] = "jaxmem.memorisation"

__all__ = ["__version__", *_MODULES, *_NAMES]


def __getattr__(name):
    if name in _MODULES:
        return importlib.import_module(f"jaxmem.{name}")
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'jaxmem' has no attribute {name!r}")
