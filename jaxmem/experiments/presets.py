"""Choosing a preset and overriding its seed count, with errors that name the bad value."""
from __future__ import annotations

import dataclasses


def pick(presets: dict, name: str):
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(presets)}")
    return presets[name]


def with_seeds(config, seeds: int | None, field: str = "data_seeds"):
    """``config`` with ``field`` set to ``seeds`` (``--seeds``), unchanged when None."""
    if seeds is None:
        return config
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds!r}")
    return dataclasses.replace(config, **{field: int(seeds)})
