"""SMDD sweeps as parts of an experiment: one part per sweep (per setting of something
static: m, steps, sparsity, ...), each saved as it finishes so that ``--resume`` skips
the ones already done."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from jaxmem.store import Part, on_grid
from jaxmem.studies.protocol import default_record
from jaxmem.studies.smdd.sweep import Sweep, run_sweep
from jaxmem.train import Schedule, TrainConfig

#: the dims after the sweep grid of each array ``run_sweep`` returns
TRAILING = {"W": ("neuron", "feature"), "b": ("feature",), "history": ("step",), "hidden": ("example", "neuron"),
            "data_dim": ("example",), "feature_dim": ("feature",), "init_train_loss": ("init_seed",)}


def grid_axes(sweep: Sweep) -> dict:
    """The sweep grid's axes (``Sweep.grid_axes`` order) with their values."""
    values = {"T": sweep.T, "lr": sweep.lr, "weight_decay": sweep.weight_decay,
              "init_scale": sweep.init_scale, "data_seed": range(sweep.data_seeds)}
    return {name: values[name] for name in sweep.grid_axes}


def sweep_part(cfg: TrainConfig, sweep: Sweep, store, name: str, keep: Sequence[str] | None = None) -> Part:
    """Train ``sweep`` (checkpointed in the store's folder for part ``name``); its arrays
    (``keep``: only those) on the sweep grid with named dims."""
    result = run_sweep(cfg, sweep, progress=store.progress, checkpoint_dir=store.checkpoints(name))
    arrays = {k: v for k, v in result.arrays.items() if keep is None or k in keep}
    steps = np.asarray(Schedule(cfg.steps, cfg.n_history).history_steps)
    buckets = [{"sizes": list(b.sizes), "padded": b.padded} for b in result.buckets]
    # neuron coordinates: parts of other hidden sizes (smdd-phase) then load side by side
    return on_grid(arrays, grid_axes(sweep), TRAILING, coords={"step": steps, "neuron": range(cfg.n_hidden)},
                   n_runs=int(np.prod(sweep.grid_shape)) * sweep.init_seeds,
                   compile_seconds=result.compile_seconds,
                   info={"pad_ratio": result.pad_ratio, "buckets": buckets})


#: what a variant keeps of its sweep (the figures and summaries of the variant studies)
VARIANT_ARRAYS = ("test_loss", "train_loss", "feature_dim", "W", "b", "diverged")


def run_variants(variants: Sequence[tuple[str, TrainConfig, Sweep]], store) -> dict[str, Part]:
    """Train each ``(label, cfg, sweep)`` as part ``label``; the parts by label."""
    return {label: store.part(label, lambda c=cfg, s=sweep, l=label: sweep_part(c, s, store, l, VARIANT_ARRAYS))
            for label, cfg, sweep in variants}


def first_cell(part: Part, key: str) -> np.ndarray:
    """Array ``key`` at the first (lr, weight decay, init scale) cell: ``[len(T), seeds, ...]``."""
    return part[key][:, 0, 0, 0]


def feature_dim_max(part: Part) -> np.ndarray:
    return part["feature_dim"].max(-1)


def diverged_cells(part: Part, key: str = "diverged") -> list[dict]:
    """The grid cell of every run of ``part`` that went NaN, by its dims' coordinates."""
    dims = part.dims[key]
    return [{d: part.coords[d][i].item() if d in part.coords else int(i) for d, i in zip(dims, cell)}
            for cell in zip(*np.nonzero(part[key]))]


def diverged_runs(parts: dict[str, Part]) -> list:
    """Settings of every run that went NaN: part and grid cell (the sweep's axes)."""
    return [{"variant": label, **cell} for label, part in parts.items() for cell in diverged_cells(part)]


def tuple_record(cfg: tuple, names: dict | None = None, **constants) -> dict:
    """A tuple config as the protocol records it by default (each member under its class
    name or its ``names`` name), with ``constants`` (module constants the results depend
    on, e.g. ``learned_threshold``) beside it."""
    return {**default_record(cfg, names), **constants}


def distinct_labels(name: str, labels: Sequence[str]) -> None:
    """``ValueError`` unless the part labels of a per-setting experiment are distinct
    (two equal settings would be one part)."""
    if len(set(labels)) != len(labels):
        raise ValueError(f"{name} must not repeat a value (parts {list(labels)})")
