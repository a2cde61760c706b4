"""Run one SMDD sweep per setting of something static (m, steps, sparsity, ...), saving
each as it finishes so that ``--resume`` skips the ones already done."""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from jaxmem import metrics, results
from jaxmem.sweep import Sweep, run_sweep
from jaxmem.train import TrainConfig


def run_variants(variants: Sequence[tuple[str, TrainConfig, Sweep]], out, config: dict, resume: bool,
                 progress=None) -> dict:
    """Train each ``(label, cfg, sweep)``; return the saved arrays, keyed ``"{label}_{name}"``
    with shape ``[len(T), ..., seeds]`` (the sweep grid with its T axis first), plus
    ``wall_seconds`` and ``compile_seconds`` summed over every invocation."""
    out = Path(out)
    summary_path, arrays_path = out / "summary.json", out / "runs.npz"
    if resume and summary_path.exists() and results.load_json(summary_path).get("config") != config:
        raise ValueError(f"--resume: {summary_path} was made with another config; use a new --out")
    saved = results.load_arrays(arrays_path) if resume and arrays_path.exists() else {}
    if not resume:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    for label, cfg, sweep in variants:
        if f"{label}_test_loss" in saved:
            continue
        start = time.perf_counter()
        result = run_sweep(cfg, sweep, progress=progress, checkpoint_dir=out / "checkpoints" / label)
        a = result.arrays
        saved.update({f"{label}_test_loss": a["test_loss"], f"{label}_train_loss": a["train_loss"],
                      f"{label}_feature_dim_max": a["feature_dim"].max(-1),
                      f"{label}_n_learned": np.asarray(metrics.n_learned(a["feature_dim"])),
                      f"{label}_W": a["W"], f"{label}_b": a["b"],
                      f"{label}_diverged": a["diverged"], f"{label}_T": np.array(sweep.T)})
        saved["compile_seconds"] = np.array(float(saved.get("compile_seconds", 0.0)) + result.compile_seconds)
        saved["wall_seconds"] = np.array(float(saved.get("wall_seconds", 0.0)) + time.perf_counter() - start)
        results.save_arrays(arrays_path, saved,  # after every variant: nothing is lost
                            axes={f"{v}_": results.sweep_axes(s) for v, _, s in variants})
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return saved


def diverged_runs(saved: dict, labels) -> list:
    """Settings of every run that went NaN: label, T index and grid cell."""
    return [{"variant": label, "cell": [int(i) for i in cell]}
            for label in labels for cell in zip(*np.nonzero(saved[f"{label}_diverged"]))]
