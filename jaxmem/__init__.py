"""jaxmem: train whole sweeps of small networks as one JAX program.

Modules: ``data`` (sparse-feature datasets), ``models`` (pure model functions),
``train`` (one run, vmappable), ``sweep`` (a whole SMDD sweep), ``metrics``,
``dstar`` (maximal data dimensionality), ``experiments`` (``jaxmem reproduce``).
"""
from jaxmem import data, metrics, models, sweep, train

__all__ = ["data", "metrics", "models", "sweep", "train"]
