"""jaxmem: train whole sweeps of small networks as one JAX program.

Modules: ``data`` (sparse-feature datasets), ``models`` (pure model functions),
``train`` (one run, vmappable), ``sweep`` (a whole SMDD sweep), ``metrics``,
``dstar`` (maximal data dimensionality), ``stats`` (rank correlation),
``experiments`` (what ``jaxmem reproduce`` runs).
"""
from jaxmem import data, dstar, metrics, models, stats, sweep, train

__all__ = ["data", "dstar", "metrics", "models", "stats", "sweep", "train"]
