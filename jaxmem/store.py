"""The run folder: one resume rule, one summary, nested-key arrays with their dims.

A run of ``jaxmem reproduce`` owns its ``--out`` folder through a ``RunStore``:

- ``run.json`` (the manifest) is written before any training: experiment, preset,
  the resolved config, its fingerprint, the result format, the parts saved so far
  and every file the store wrote;
- each named part of an experiment is saved to ``runs.npz`` as soon as it finishes
  (atomically: a kill mid-write keeps the previous file whole), its arrays under
  nested keys ``part/name`` (``"/"``-joined, as ``flax.traverse_util`` flattens), the
  dims of every array and the coordinates of its dims beside them;
- ``--resume`` reuses exactly the parts already saved under the same fingerprint and
  refuses a folder made with another config, naming the fields that differ; without
  ``--resume`` a folder that holds a run is never written over unless ``--overwrite``
  is given, and then only the files the store wrote are deleted;
- ``summary.json`` is strict JSON (NaN and infinities as ``null``).

``load(DIR)`` reads ``runs.npz`` back as an ``xarray.Dataset`` with those dims: nothing
is guessed from shapes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

#: version of the folder layout; a folder of another format is refused by ``--resume``
FORMAT = 2
MANIFEST, ARRAYS, SUMMARY = "run.json", "runs.npz", "summary.json"
#: the store's own checkpoint folder inside ``out`` (engine checkpoints of unfinished parts)
CHECKPOINTS = ".jaxmem-checkpoints"
#: npz entries that describe the arrays, never data
DIMS_KEY, COORDS_KEY = "__dims__", "__coords__"


# ---------------------------------------------------------------- a part's arrays


@dataclasses.dataclass
class Part:
    """What one part of an experiment leaves: arrays with named dims, JSON-able
    ``info`` (numbers computed beside the training), its runs and timings.

    ``arrays`` is a nested dict of arrays (``{"W": ..., "test": {"loss": ...}}``);
    ``dims`` maps each flat key (``"test/loss"``) to its dim names, one per axis;
    ``coords`` maps dim names to their values (those without stay unlabeled).
    """

    arrays: dict
    dims: dict
    coords: dict = dataclasses.field(default_factory=dict)
    info: dict = dataclasses.field(default_factory=dict)
    n_runs: int = 0
    seconds: float = 0.0
    compile_seconds: float = 0.0
    loaded: bool = False  # read back from the folder, not computed by this invocation

    def __post_init__(self):
        flat = flatten(self.arrays)
        self.arrays = unflatten({k: np.asarray(v) for k, v in flat.items()})
        dims = {k: tuple(v) for k, v in self.dims.items()}
        for key, value in flatten(self.arrays).items():
            names = dims.get(key, () if value.ndim == 0 else None)
            if names is None:
                raise ValueError(f"array {key!r} (shape {value.shape}) has no dims: name each of its axes")
            if len(names) != value.ndim:
                raise ValueError(f"array {key!r} has shape {value.shape} but dims {names}")
            for name, size in zip(names, value.shape):
                if name in self.coords and len(self.coords[name]) != size:
                    raise ValueError(f"array {key!r}: dim {name!r} has {size} entries but "
                                     f"{len(self.coords[name])} coordinates")
            dims[key] = names
        self.dims = {k: dims[k] for k in flatten(self.arrays)}
        self.coords = {k: _coord(k, v) for k, v in self.coords.items()}

    def __getitem__(self, key):
        """``part["test/loss"]`` or ``part["test"]["loss"]``."""
        node = self.arrays
        for k in key.split("/"):
            node = node[k]
        return node


def on_grid(arrays: Mapping, axes: Mapping, trailing: Mapping | None = None, **kwargs) -> Part:
    """A ``Part`` whose arrays all start with the grid ``axes`` (name -> values, in
    order), their other dims named by ``trailing`` (flat key -> names); an array named
    in ``trailing`` with a leading ``"!"`` name is taken as its whole dims instead."""
    grid = tuple(axes)
    dims = {}
    for key, value in flatten(arrays).items():
        extra = tuple((trailing or {}).get(key, ()))
        dims[key] = extra[1:] if extra[:1] == ("!",) else grid + extra
    coords = {**{k: v for k, v in axes.items()}, **kwargs.pop("coords", {})}
    return Part(dict(arrays), dims, coords, **kwargs)


def _coord(name, values) -> np.ndarray:
    values = np.asarray(list(values) if isinstance(values, range) else values)
    if values.ndim != 1 or values.dtype == object:
        raise ValueError(f"coordinates of dim {name!r} must be a 1-d list of numbers or strings, got {values!r}")
    return values


def flatten(tree: Mapping, prefix: str = "") -> dict:
    """``{"a": {"b": x}}`` -> ``{"a/b": x}``."""
    out = {}
    for key, value in tree.items():
        if not isinstance(key, str) or not key or "/" in key:
            raise ValueError(f"result keys must be non-empty strings without '/', got {key!r}")
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}/"))
        else:
            out[prefix + key] = value
    return out


def unflatten(flat: Mapping) -> dict:
    out: dict = {}
    for key, value in flat.items():
        node = out
        *heads, last = key.split("/")
        for h in heads:
            node = node.setdefault(h, {})
        node[last] = value
    return out


# ---------------------------------------------------------------- files


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file and rename: a kill mid-write keeps the old file.
    The file is readable by the group and others as the umask allows (not mkstemp's 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def strict_json(obj):
    """``obj`` with numpy values as Python ones and NaN/infinities as None (JSON null)."""
    if isinstance(obj, Mapping):
        return {str(k): strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return strict_json(obj.tolist())
    if isinstance(obj, np.generic):
        return strict_json(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return strict_json(dataclasses.asdict(obj))
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot write {type(obj).__name__} to JSON: {obj!r}")


def save_json(path, obj) -> None:
    text = json.dumps(strict_json(obj), indent=2, allow_nan=False) + "\n"
    _atomic_write(Path(path), lambda f: f.write(text.encode()))


def load_json(path) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not readable JSON ({err})") from None


def finite_or_none(x) -> float | None:
    """``float(x)``, or None (JSON null) where ``x`` is NaN or infinite."""
    return float(x) if np.isfinite(x) else None


def save_arrays(path, arrays: Mapping) -> None:
    """A flat ``name -> array`` dict to the ``.npz`` file ``path``, atomically (engine checkpoints)."""
    _atomic_write(Path(path), lambda f: np.savez_compressed(f, **arrays))


def load_arrays(path) -> dict:
    """The arrays of an ``.npz`` file; ``ValueError`` naming the file if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(f"{path}: not a readable .npz file ({type(err).__name__}: {err})") from err


def save_parts(path, parts: Mapping[str, Part]) -> None:
    """Every part's arrays into one ``.npz``: keys ``part/name`` (``name`` alone for the
    part ``""``), with ``__dims__`` (JSON: key -> dims) and ``__coords__/part/dim``."""
    entries, dims = {}, {}
    if "" in parts:
        shadowed = [k for k in parts[""].arrays if k in parts]
        if shadowed:
            raise ValueError(f"keys {shadowed} of the unnamed part are also part names")
    for part_name, part in parts.items():
        head = f"{part_name}/" if part_name else ""
        for key, value in flatten(part.arrays).items():
            entries[head + key] = value
            dims[head + key] = list(part.dims[key])
        for dim, values in part.coords.items():
            entries[f"{COORDS_KEY}/{part_name}/{dim}"] = values
    entries[DIMS_KEY] = np.array(json.dumps({"parts": list(parts), "dims": dims}))
    save_arrays(path, entries)


def load_parts(path) -> dict[str, Part]:
    """The parts saved by ``save_parts`` (arrays, dims, coords; no timings)."""
    path = Path(path)
    entries = load_arrays(path)
    if DIMS_KEY not in entries:
        raise ValueError(f"{path}: has no {DIMS_KEY} entry; it was not written by this version of jaxmem's "
                         f"store (rerun the experiment into a new folder)")
    try:
        meta = json.loads(str(entries[DIMS_KEY]))
        names, dims = meta["parts"], meta["dims"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: its {DIMS_KEY} entry is malformed ({err})") from err
    parts = {}
    for name in names:
        head = f"{name}/" if name else ""
        keys = [k for k in dims if (k.startswith(head) if name else _part_of(k, names) == "")]
        arrays = {k[len(head):]: entries[k] for k in keys}
        coords = {k.split("/", 2)[2]: v for k, v in entries.items() if k.startswith(f"{COORDS_KEY}/{name}/")}
        parts[name] = Part(unflatten(arrays), {k[len(head):]: dims[k] for k in keys}, coords, loaded=True)
    return parts


def _part_of(key: str, names) -> str:
    head = key.split("/", 1)[0]
    return head if head in names and "/" in key else ""


# ---------------------------------------------------------------- the store


def fingerprint(record: Mapping) -> str:
    text = json.dumps(strict_json(record), sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def differences(old, new, prefix: str = "") -> list[str]:
    """``"field: old -> new"`` for every leaf where two config records differ."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out = []
        for k in list(old) + [k for k in new if k not in old]:
            out += differences(old.get(k, "<absent>"), new.get(k, "<absent>"), f"{prefix}{k}.")
        return out
    if old != new:
        return [f"{prefix[:-1] or 'config'}: {_brief(old)} -> {_brief(new)}"]
    return []


def _brief(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


class RunStore:
    """An experiment's ``--out`` folder (see the module docstring). ``mode`` is
    ``"new"`` (refuse a folder that holds a run), ``"resume"`` (reuse the parts saved
    under the same config, refuse another config) or ``"overwrite"`` (delete what the
    store wrote there, then start anew)."""

    def __init__(self, out, experiment: str, preset: str, config: Mapping, mode: str = "new",
                 command: str | None = None):
        if mode not in ("new", "resume", "overwrite"):
            raise ValueError(f"mode must be 'new', 'resume' or 'overwrite', got {mode!r}")
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise ValueError(f"--out {self.out} is a file; give a folder")
        self.experiment, self.preset = experiment, preset
        self.config = strict_json(config)
        self.fingerprint = fingerprint({"format": FORMAT, "experiment": experiment, "config": self.config})
        self.command = command or f"jaxmem reproduce {experiment} --preset {preset} --out {self.out}"
        self.parts: dict[str, Part] = {}
        self.written: list[str] = []
        previous = self._previous()
        if previous is not None:
            if mode == "new":
                raise ValueError(self._occupied(previous))
            if mode == "overwrite":
                self._remove(previous)
            else:
                self._check_same(previous)
                self.written = list(previous.get("written", []))
                if (self.out / ARRAYS).exists():
                    saved = load_parts(self.out / ARRAYS)
                    for name, meta in previous.get("parts", {}).items():
                        if name in saved:
                            self.parts[name] = dataclasses.replace(saved[name], **_timing(meta), loaded=True)
        self._write_manifest(status="running")

    # -- the folder as found

    def _previous(self) -> dict | None:
        manifest = self.out / MANIFEST
        if manifest.exists():
            return load_json(manifest)
        if (self.out / SUMMARY).exists() or (self.out / ARRAYS).exists():
            return {}  # a run of an older jaxmem: no record of what it wrote
        return None

    def _occupied(self, previous: dict) -> str:
        if not previous:
            return (f"{self.out} holds results of an older jaxmem run (summary.json or runs.npz, no {MANIFEST}); "
                    f"use a new --out, or move them away")
        what = previous.get("experiment", "?")
        if previous.get("status") == "finished":
            return (f"{self.out} already holds a finished {what} run; use a new --out, --resume to reuse it "
                    f"(same config), or --overwrite to replace it")
        done = len(previous.get("parts", {}))
        return (f"{self.out} holds an unfinished {what} run ({done} part(s) saved); continue it with "
                f"`{self.command} --resume`, or give --overwrite to start anew")

    def _check_same(self, previous: dict) -> None:
        if not previous:
            raise ValueError(f"--resume: {self.out} holds results of an older jaxmem (no {MANIFEST}) that "
                             f"cannot be checked against this config; use a new --out")
        if previous.get("format") != FORMAT:
            raise ValueError(f"--resume: {self.out} was written in result format {previous.get('format')}, "
                             f"this jaxmem writes {FORMAT}; use a new --out")
        if previous.get("experiment") != self.experiment:
            raise ValueError(f"--resume: {self.out} holds a {previous.get('experiment')} run, not {self.experiment}")
        if previous.get("fingerprint") != self.fingerprint:
            diff = differences(previous.get("config", {}), self.config)
            raise ValueError(f"--resume: {self.out} was made with another config; differing fields: "
                             f"{'; '.join(diff) or '(none visible: the result format changed)'}. "
                             f"Use a new --out, or --overwrite to replace it")

    def _remove(self, previous: dict) -> None:
        if not previous:
            raise ValueError(f"--overwrite: {self.out} holds results of an older jaxmem (no {MANIFEST}) with no "
                             f"record of the files it wrote; remove them yourself or use a new --out")
        for name in previous.get("written", []) + [MANIFEST]:
            path = self.out / name
            if path.is_dir() and name == CHECKPOINTS:
                shutil.rmtree(path)
            elif path.is_file():
                path.unlink()

    # -- writing

    def _record(self, name: str) -> None:
        if name not in self.written:
            self.written.append(name)

    def _write_manifest(self, status: str) -> None:
        self.status = status
        meta = {name: {"n_runs": p.n_runs, "seconds": p.seconds, "compile_seconds": p.compile_seconds,
                       "info": p.info} for name, p in self.parts.items()}
        save_json(self.out / MANIFEST, {"format": FORMAT, "experiment": self.experiment, "preset": self.preset,
                                        "fingerprint": self.fingerprint, "status": status, "config": self.config,
                                        "parts": meta, "written": self.written})

    def has(self, name: str) -> bool:
        return name in self.parts

    def save(self, name: str, part: Part) -> Part:
        """Save a finished part (``runs.npz`` and the manifest)."""
        self.parts[name] = part
        self._record(ARRAYS)
        save_parts(self.out / ARRAYS, self.parts)
        self._write_manifest(status="running")
        return part

    def checkpoint_dir(self, name: str) -> Path:
        """Where the engine checkpoints part ``name`` while it trains (deleted at ``finish``)."""
        self._record(CHECKPOINTS)
        self._write_manifest(self.status)
        return self.out / CHECKPOINTS / (name or "main")

    def write_json(self, name: str, obj) -> None:
        self._record(name)
        save_json(self.out / name, obj)

    def figures_written(self, names) -> None:
        """Record figures drawn after ``finish`` (so ``--overwrite`` may delete them)."""
        for name in names:
            self._record(name)
        self._write_manifest(self.status)

    def finish(self, summary: dict) -> None:
        """Write ``summary.json``, drop the checkpoints, and mark the run finished."""
        self.write_json(SUMMARY, summary)
        shutil.rmtree(self.out / CHECKPOINTS, ignore_errors=True)
        self._write_manifest(status="finished")


def _timing(meta: Mapping) -> dict:
    return {"n_runs": int(meta.get("n_runs", 0)), "seconds": float(meta.get("seconds") or 0.0),
            "compile_seconds": float(meta.get("compile_seconds") or 0.0), "info": dict(meta.get("info") or {})}


def open_parts(folder) -> tuple[dict, dict[str, Part]]:
    """``(manifest, parts)`` of a finished or unfinished run folder, timings included."""
    folder = Path(folder)
    if not (folder / MANIFEST).exists():
        raise ValueError(f"{folder}: no {MANIFEST} (not a folder written by `jaxmem reproduce`, or by an "
                         f"older jaxmem)")
    manifest = load_json(folder / MANIFEST)
    saved = load_parts(folder / ARRAYS) if (folder / ARRAYS).exists() else {}
    parts = {name: dataclasses.replace(saved[name], **_timing(meta))
             for name, meta in manifest.get("parts", {}).items() if name in saved}
    return manifest, parts


# ---------------------------------------------------------------- labeled loading


def load(path, part: str | None = None):
    """A saved run's arrays as an ``xarray.Dataset`` with the dims written at save time.

    ``path`` is a run folder or its ``runs.npz``. Every array keeps its nested key
    (``"m2/test_loss"``; a part named ``""`` has plain keys) and its dims, with their
    coordinates. A dim whose coordinates differ between parts (``T`` of the
    infinite-data line beside the finite one) is named ``part/dim`` in the other
    parts; ``part="m2"`` gives that part alone, with plain names:
    ``load(DIR, part="m2").test_loss.sel(T=300)``.
    """
    import xarray as xr

    path = Path(path)
    file = path / ARRAYS if path.is_dir() else path
    if not file.exists():
        raise FileNotFoundError(f"{file}: no such file" + (" (not a saved run folder?)" if path.is_dir() else ""))
    parts = load_parts(file)
    if part is not None:
        if part not in parts:
            raise ValueError(f"{file}: no part {part!r}; known: {list(parts)}")
        parts = {"": parts[part]}
    owner: dict[str, np.ndarray] = {}  # dim -> the coordinates that keep its plain name
    sizes: dict[str, int] = {}  # dim without coordinates -> the size that keeps its plain name
    rename = {}
    for name, p in parts.items():
        for dim, values in p.coords.items():
            if dim not in owner:
                owner[dim] = values
            elif not (owner[dim].shape == values.shape and np.array_equal(owner[dim], values)):
                rename[(name, dim)] = f"{name}/{dim}"
        for key, dims in p.dims.items():
            for dim, size in zip(dims, p[key].shape):
                if dim not in p.coords and sizes.setdefault(dim, size) != size:
                    rename[(name, dim)] = f"{name}/{dim}"
    variables, coords = {}, {}
    for name, p in parts.items():
        head = f"{name}/" if name else ""
        for key, value in flatten(p.arrays).items():
            dims = [rename.get((name, d), d) for d in p.dims[key]]
            variables[head + key] = (dims, value)
        for dim, values in p.coords.items():
            coords[rename.get((name, dim), dim)] = values
    used = {d for dims, _ in variables.values() for d in dims}
    coords = {k: v for k, v in coords.items() if k in used}
    clash = [k for k in variables if k in used]  # a variable named as a dim: xarray would take it as coordinate
    for k in clash:
        variables[f"{k}_values"] = variables.pop(k)
    return xr.Dataset(variables, coords=coords, attrs={"source": str(file)})
