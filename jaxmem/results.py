"""Writing a run's results so nothing is lost: atomic JSON and ``.npz`` files."""
from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

import jax
import numpy as np


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def save_json(path, obj) -> None:
    text = json.dumps(obj, indent=2, default=_to_builtin) + "\n"
    _atomic_write(Path(path), lambda f: f.write(text.encode()))


def save_arrays(path, arrays: dict) -> None:
    _atomic_write(Path(path), lambda f: np.savez_compressed(f, **arrays))


def load_arrays(path) -> dict:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def resume_arrays(out, config: dict, resume: bool) -> dict:
    """The per-run arrays already in ``out/runs.npz`` when resuming a run of the same
    ``config`` (``--resume``), else ``{}``; refuses another config's folder rather than mix
    them. Records ``config`` in ``out/config.json`` first, so a run killed before its
    ``summary.json`` can still be resumed."""
    out = Path(out)
    arrays_path, config_path, summary_path = out / "runs.npz", out / "config.json", out / "summary.json"
    saved = {}
    if resume and arrays_path.exists():
        recorded = (load_json(config_path) if config_path.exists()
                    else load_json(summary_path).get("config") if summary_path.exists() else None)
        if recorded != json.loads(json.dumps(config, default=_to_builtin)):
            raise ValueError(f"--resume: {out} holds results of another config; use a new --out")
        saved = load_arrays(arrays_path)
    save_json(config_path, config)
    return saved


def finite_or_none(x) -> float | None:
    """``float(x)``, or None (JSON null) where ``x`` is NaN or infinite."""
    return float(x) if np.isfinite(x) else None


def _to_builtin(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"cannot write {type(x).__name__} to JSON")


def environment() -> dict:
    """Backend, devices and CPU model, for ``summary.json`` and benchmarks."""
    return {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
            "cpu": cpu_model(), "jax": jax.__version__}


def device_info() -> dict:
    """``backend``, ``devices`` and ``cpu``: the fields every ``summary.json`` starts with."""
    env = environment()
    return {"backend": env["backend"], "devices": env["devices"], "cpu": env["cpu"]}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_json(path) -> dict:
    return json.loads(Path(path).read_text())
