"""jaxmem: train whole sweeps of small networks as one JAX program.

Modules: ``data`` (sparse-feature datasets), ``models`` (pure model functions),
``train`` (one run, vmappable), ``sweep`` (a whole SMDD sweep, split over every
device), ``devices`` (the run mesh), ``cache`` (the persistent compilation cache),
``metrics``, ``dstar`` (maximal data dimensionality), ``stats`` (rank correlation),
``experiments`` (what ``jaxmem reproduce`` runs).
"""
from jaxmem import cache, data, devices, dstar, metrics, models, stats, sweep, train
from jaxmem.cache import enable_compilation_cache

__all__ = ["cache", "data", "devices", "dstar", "enable_compilation_cache", "metrics", "models", "stats",
           "sweep", "train"]
