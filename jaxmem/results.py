"""Writing a run's results so nothing is lost: atomic JSON and ``.npz`` files, and
reading them back labeled (``load``: an ``xarray.Dataset`` whose dims are the grid's
axes)."""
from __future__ import annotations

import json
import os
import platform
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import jax
import numpy as np

#: npz entries that hold the grid axes (``save_arrays(..., axes=)``), never data
AXES_KEY = "__axes__"


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


def save_arrays(path, arrays: dict, axes: Mapping | None = None) -> None:
    """Write ``arrays`` (name -> array) to the ``.npz`` file ``path`` atomically: a kill
    mid-write leaves the previous file whole.

    ``axes`` names the grid that the arrays' leading dims run over, so that ``load``
    can label them. Two forms:

    - one grid for every array: ``{"T": [3, 10, ...], "lr": [1e-3], "data_seed": range(2)}``
      (axis name -> values, in the order of the dims);
    - several grids, by key prefix: ``{"": {...}, "infinite_": {...}, "m2_": {...}}``
      (prefix -> such a dict). An array belongs to the grid of the longest prefix its
      name starts with; ``""`` (if given) takes every other array.

    The axes go into the file as entries under ``__axes__`` (which ``load_arrays``
    leaves out), so the file stays a plain npz of the data arrays.
    """
    arrays = dict(arrays)
    bad = [k for k in arrays if k == AXES_KEY or k.startswith(AXES_KEY + "/")]
    if bad:
        raise ValueError(f"array names may not start with {AXES_KEY!r}: {bad}")
    groups = normalize_axes(axes)
    if groups:
        arrays[AXES_KEY] = np.array(json.dumps([[prefix, list(grid)] for prefix, grid in groups.items()]))
        for i, grid in enumerate(groups.values()):
            for name, values in grid.items():
                arrays[f"{AXES_KEY}/{i}/{name}"] = values
    _atomic_write(Path(path), lambda f: np.savez_compressed(f, **arrays))


def normalize_axes(axes: Mapping | None) -> dict:
    """``axes`` in its several-grids form, ``{prefix: {name: 1-d np.ndarray}}``, checked."""
    if not axes:
        return {}
    if not isinstance(axes, Mapping):
        raise TypeError(f"axes must be a dict, got {type(axes).__name__}")
    nested = [isinstance(v, Mapping) for v in axes.values()]
    if any(nested) and not all(nested):
        raise ValueError("axes must map axis names to values, or key prefixes to such dicts, not a mix: "
                         f"{list(axes)}")
    groups = dict(axes) if all(nested) else {"": axes}
    out = {}
    for prefix, grid in groups.items():
        if not isinstance(prefix, str):
            raise TypeError(f"axes: key prefix must be a str, got {prefix!r}")
        checked = {}
        for name, values in grid.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"axes[{prefix!r}]: axis names must be non-empty strs, got {name!r}")
            values = np.asarray(list(values) if isinstance(values, range) else values)
            if values.ndim != 1 or values.size == 0 or values.dtype == object:
                raise ValueError(f"axes[{prefix!r}][{name!r}] must be a non-empty 1-d list of numbers or "
                                 f"strings, got shape {values.shape} dtype {values.dtype}")
            checked[name] = values
        out[prefix] = checked
    return out


def sweep_axes(sweep) -> dict:
    """The axes of a ``jaxmem.sweep.Sweep``'s result grid, in ``sweep.grid_axes`` order:
    ``T, lr, weight_decay, init_scale, data_seed``."""
    values = {"T": sweep.T, "lr": sweep.lr, "weight_decay": sweep.weight_decay,
              "init_scale": sweep.init_scale, "data_seed": range(sweep.data_seeds)}
    return {name: values[name] for name in sweep.grid_axes}


def _read_npz(path) -> tuple[dict, dict]:
    """``(data arrays, {prefix: {axis: values}})`` of an npz written by ``save_arrays``;
    ``ValueError`` naming the file if it is not a readable npz."""
    try:
        with np.load(path, allow_pickle=False) as f:
            everything = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(f"{path}: not a readable .npz file ({type(err).__name__}: {err})") from err
    data = {k: v for k, v in everything.items() if k != AXES_KEY and not k.startswith(AXES_KEY + "/")}
    groups = {}
    if AXES_KEY in everything:
        try:
            for i, (prefix, names) in enumerate(json.loads(str(everything[AXES_KEY]))):
                groups[prefix] = {name: everything[f"{AXES_KEY}/{i}/{name}"] for name in names}
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: its {AXES_KEY} entries are malformed ({err})") from err
    return data, groups


def load_arrays(path) -> dict:
    """The data arrays of an npz written by ``save_arrays`` (its axes left out)."""
    return _read_npz(path)[0]


def load_axes(path) -> dict:
    """The grids an npz was saved with: ``{prefix: {axis: values}}`` (``{}`` if none)."""
    return _read_npz(path)[1]


def group_of(key: str, prefixes) -> str | None:
    """The longest of ``prefixes`` that ``key`` starts with, or None."""
    matches = [p for p in prefixes if key.startswith(p)]
    return max(matches, key=len) if matches else None


def _leading_dims(shape: tuple, sizes: list) -> tuple[int, bool]:
    """How many of the grid's axes ``shape`` starts with (all, or a leading run of at
    least two: one alone matches too often by chance), and whether its first dim is the
    whole grid flattened (C order) instead."""
    k = len(sizes)
    for j in range(min(k, len(shape)), 0, -1):
        if tuple(shape[:j]) == tuple(sizes[:j]) and (j == k or j >= 2):
            return j, False
    if k > 1 and shape and shape[0] == int(np.prod(sizes)):
        return k, True
    return 0, False


def load(path, prefix: str | None = None):
    """A saved run's per-run arrays as an ``xarray.Dataset`` labeled by its grid.

    ``path`` is a run folder (its ``runs.npz`` is read) or an ``.npz`` file. Each array
    whose leading dims are its grid's axes (see ``save_arrays(..., axes=)``) gets those
    dims, with the axis values as coordinates: e.g. for ``smdd``,
    ``load(DIR).test_loss.sel(T=300).mean("data_seed")``. Matching is by shape: all of
    the grid's axes, or a leading run of at least two of them (an array reduced over
    the last ones), or else a first dim that is the whole grid flattened in C order
    (``np.meshgrid(..., indexing="ij")`` then ``ravel``), which is unflattened. Every
    other dim, and every dim of an array without a grid, is ``<name>_dim<i>``. An array
    named as an axis that only repeats the axis's values (``T`` of an smdd run, ``seed``
    of a flattened grid) is left out: it is the coordinate.

    A file with several grids (``{"": ..., "infinite_": ..., "m2_": ...}``) gives one
    Dataset, keys unchanged. An axis keeps its plain name where every grid that has
    it gives it the same values (the seed axis of every variant, say); otherwise the
    ``""`` grid keeps the plain name and each other grid's is ``<prefix><axis>``
    (``infinite_T`` next to ``T``). With ``prefix="m2_"`` only that grid's arrays come
    back, names without the prefix and dims with plain axis names:
    ``load(DIR, prefix="m2_").test_loss.sel(T=300)``.

    An npz without axes loads too, with ``<name>_dim<i>`` dims. A file that is not a
    readable npz raises ``ValueError`` naming it.
    """
    import xarray as xr

    path = Path(path)
    file = path / "runs.npz" if path.is_dir() else path
    if not file.exists():
        raise FileNotFoundError(f"{file}: no such file" + (" (not a saved run folder?)" if path.is_dir() else ""))
    data, groups = _read_npz(file)
    if prefix is not None:
        if prefix not in groups:
            raise ValueError(f"{file}: no grid saved under prefix {prefix!r}; known: {list(groups)}")
        data = {k[len(prefix):]: v for k, v in data.items() if group_of(k, groups) == prefix}
        groups = {"": groups[prefix]}
    dim_names = _dim_names(groups)
    all_dims = {d for names in dim_names.values() for d in names.values()}
    variables, coords = {}, {}
    for key, value in data.items():
        value = np.asarray(value)
        group = group_of(key, groups)
        grid = groups.get(group, {}) if group is not None else {}
        names, sizes = list(grid), [len(v) for v in grid.values()]
        axis = key[len(group):] if group is not None else key
        if axis in grid and value.shape == grid[axis].shape and _same(value, grid[axis]):
            coords[dim_names[group][axis]] = grid[axis]
            continue  # the array is the axis itself: it is the coordinate
        j, flat = _leading_dims(value.shape, sizes)
        if flat:
            value = value.reshape(tuple(sizes) + value.shape[1:])
        dims = [dim_names[group][n] for n in names[:j]]
        for n in names[:j]:
            coords[dim_names[group][n]] = grid[n]
        if _repeats_axis(key, group, value, grid, names[:j]):
            continue
        dims += [f"{key}_dim{i}" for i in range(len(dims), value.ndim)]
        name = f"{key}_values" if key in all_dims else key
        variables[name] = (dims, value)
    return xr.Dataset(variables, coords=coords, attrs={"source": str(file)})


def _dim_names(groups: dict) -> dict:
    """``{prefix: {axis: dim name}}`` by the sharing rule of ``load``."""
    names = {}
    for prefix, grid in groups.items():
        names[prefix] = {}
        for axis, values in grid.items():
            others = [g[axis] for p, g in groups.items() if p != prefix and axis in g]
            shared = all(o.shape == values.shape and np.array_equal(o, values) for o in others)
            names[prefix][axis] = axis if shared or prefix == "" else f"{prefix}{axis}"
    return names


def _repeats_axis(key: str, group, value: np.ndarray, grid: dict, dims: list) -> bool:
    """Whether array ``key`` is just one of its grid's axes, repeated over its dims."""
    axis = key[len(group):] if group is not None else key
    if axis not in dims or value.ndim != len(dims):
        return False
    shape = [1] * len(dims)
    shape[dims.index(axis)] = -1
    return _same(value, np.broadcast_to(grid[axis].reshape(shape), value.shape))


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype.kind in "biuf" and b.dtype.kind in "biuf":
        return bool(np.allclose(a, b, rtol=1e-6, atol=0))
    return a.dtype.kind == b.dtype.kind and bool(np.array_equal(a, b))


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


#: the keys every ``summary.json`` starts with, in this order; ``results`` comes last
HEADER = ("experiment", "preset", "backend", "devices", "cpu", "jaxmem", "n_runs", "wall_seconds",
          "compile_seconds", "config")


def summary(experiment: str, preset: str, fields: dict) -> dict:
    """The ``summary.json`` of a run: ``HEADER`` (this machine's backend, devices and CPU,
    the jaxmem version), then the experiment's other ``fields``, then its ``results``."""
    from jaxmem import __version__

    merged = {"experiment": experiment, "preset": preset, **device_info(), "jaxmem": __version__, **fields}
    order = [k for k in HEADER if k in merged] + [k for k in merged if k not in HEADER and k != "results"]
    return {k: merged[k] for k in order + (["results"] if "results" in merged else [])}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_summary(out, summary: dict | None = None) -> dict:
    """``summary`` if given, else the one saved in ``out/summary.json`` (what ``draw`` redraws from)."""
    return load_json(Path(out) / "summary.json") if summary is None else summary


def load_json(path) -> dict:
    return json.loads(Path(path).read_text())
