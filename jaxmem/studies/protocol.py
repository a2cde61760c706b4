"""The study protocol: what an experiment module declares, and the one place that runs it.

An experiment module (``jaxmem.studies.<study>.<name>``) declares

- ``DESCRIPTION``: one line for ``jaxmem list``;
- ``PRESETS``: preset name -> a frozen config (a dataclass, or a tuple of them and of
  plain values named by ``SET_NAMES``, e.g. ``{2: "hidden_sizes"}``);
- ``SEEDS``: the config field that ``--seeds`` sets (None: it takes no ``--seeds``);
- ``OPTIONS`` (optional): which of ``source`` (``--from``, a saved run whose config
  it then takes: ``--set`` and ``--seeds`` are refused with it) and ``data_dir``
  (``--data``) it takes;
- ``run(cfg, store)``: trains, saving each named part through ``store.part(name, compute)``
  (``compute() -> Part`` runs only for parts not saved yet);
- ``summarize(parts, cfg) -> dict``: the headline numbers, from the saved parts alone;
- ``draw(parts, summary, cfg, out)``: every figure, from the saved parts and summary.

``reproduce`` does the rest once for every experiment: presets, ``--seeds``, ``--set``,
the run folder (``jaxmem.store``: fingerprint, resume, overwrite), timing, the summary
header, saving and drawing. ``jaxmem plot`` and ``jaxmem show`` call the same
``draw``/``summarize`` on a saved folder.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from jaxmem import presets, store as run_store
from jaxmem.store import Part, RunStore

#: the keys every ``summary.json`` starts with, in this order; ``results`` comes last
HEADER = ("experiment", "preset", "backend", "devices", "cpu", "jaxmem", "n_runs", "wall_seconds",
          "compile_seconds", "resumed_parts", "n_diverged", "config", "parts")


# ---------------------------------------------------------------- configs


def configure(module, preset: str, seeds: int | None = None, overrides: Mapping | None = None):
    """The module's preset ``preset`` with ``--seeds`` and ``--set FIELD=VALUE`` applied."""
    cfg = presets.pick(module.PRESETS, preset)
    if seeds is not None:
        field = getattr(module, "SEEDS", None)
        if field is None:
            raise ValueError(f"{module.NAME} takes no --seeds")
        if isinstance(cfg, tuple) and not dataclasses.is_dataclass(cfg):
            cfg = tuple(presets.with_seeds(m, seeds, field) if dataclasses.is_dataclass(m) and
                        field in {f.name for f in dataclasses.fields(m)} else m for m in cfg)
        else:
            cfg = presets.with_seeds(cfg, seeds, field)
    return presets.override(cfg, dict(overrides or {}), names=getattr(module, "SET_NAMES", None))


def record(module, cfg) -> dict:
    """The config as saved and fingerprinted: the dataclass's fields, or for a tuple
    config each member under its class name (or its ``SET_NAMES`` name)."""
    if hasattr(module, "record"):
        return module.record(cfg)
    return default_record(cfg, getattr(module, "SET_NAMES", None))


def default_record(cfg, names: Mapping | None = None) -> dict:
    """A dataclass's fields, or each member of a tuple under its class name (or ``names[i]``)."""
    if dataclasses.is_dataclass(cfg):
        return dataclasses.asdict(cfg)
    names = names or {}
    return {names.get(i, type(m).__name__): dataclasses.asdict(m) if dataclasses.is_dataclass(m) else m
            for i, m in enumerate(cfg)}


def rebuild(module, preset: str, saved: Mapping):
    """The config object back from its ``record`` (for ``plot`` and ``show``), shaped
    like the preset it came from."""
    if hasattr(module, "from_record"):
        return module.from_record(saved)
    template = module.PRESETS[preset] if preset in module.PRESETS else next(iter(module.PRESETS.values()))
    if dataclasses.is_dataclass(template):
        return presets.from_record(type(template), saved)
    names = getattr(module, "SET_NAMES", None) or {}
    out = []
    for i, m in enumerate(template):
        value = saved[names.get(i, type(m).__name__)]
        out.append(presets.from_record(type(m), value) if dataclasses.is_dataclass(m) else presets._tuples(value))
    return tuple(out)


# ---------------------------------------------------------------- one run


class Store:
    """What ``run(cfg, store)`` sees: parts saved as they finish, checkpoints, progress."""

    def __init__(self, runs: RunStore, progress, options: dict):
        self._runs = runs
        self.progress = progress
        self.options = options
        self.out = runs.out

    def part(self, name: str, compute: Callable[[], Part]) -> Part:
        """Part ``name``: the saved one if this folder has it (``--resume``), else
        ``compute()``'s, timed and saved at once."""
        if self._runs.has(name):
            print(f"jaxmem: {self._runs.experiment}: part {name or 'main'!r} loaded from {self.out} (--resume)",
                  file=sys.stderr)
            return self._runs.parts[name]
        t0 = time.perf_counter()
        part = compute()
        if not isinstance(part, Part):
            raise TypeError(f"part {name!r}: compute() must return a jaxmem.store.Part, got {type(part).__name__}")
        part.seconds = time.perf_counter() - t0
        return self._runs.save(name, part)

    def has(self, name: str) -> bool:
        return self._runs.has(name)

    def checkpoints(self, name: str) -> Path:
        """The engine's checkpoint folder for part ``name`` (``run_grid(checkpoint_dir=)``)."""
        return self._runs.checkpoint_dir(name)


def options_of(module, source=None, data_dir=None) -> dict:
    taken = getattr(module, "OPTIONS", ())
    options = {}
    for name, flag, value in (("source", "--from", source), ("data_dir", "--data", data_dir)):
        if value is None:
            continue
        if name not in taken:
            raise ValueError(f"{module.NAME} does not take {flag}")
        options[name] = str(value)
    return options


def reproduce(name: str, preset: str = "quick", out=None, *, seeds: int | None = None, resume: bool = False,
              overwrite: bool = False, overrides: Mapping | None = None, progress=None, source=None,
              data_dir=None, draw: bool = True) -> dict:
    """Run experiment ``name`` at ``preset`` into the folder ``out``; return its summary.

    ``resume`` reuses the parts already saved in ``out`` by a run of the same config
    (and refuses another config, naming the fields that differ); ``overwrite`` replaces
    a run already there (deleting only the files jaxmem wrote). Without either, a
    folder that holds a run is refused.
    """
    from jaxmem import studies

    if resume and overwrite:
        raise ValueError("give --resume or --overwrite, not both")
    module = studies.get(name)
    cfg = configure(module, preset, seeds, overrides)
    options = options_of(module, source, data_dir)
    if "source" in options and (overrides or seeds is not None):
        raise ValueError(f"--set and --seeds do not apply with --from: {name} takes its config from the source run")
    rec = record(module, cfg)
    if options:
        rec = {**rec, "options": options}
    mode = "resume" if resume else "overwrite" if overwrite else "new"
    runs = RunStore(out, name, preset, rec, mode, command=_command(name, preset, out, seeds, overrides))
    t0 = time.perf_counter()
    module.run(cfg, Store(runs, progress, options))
    parts = dict(runs.parts)
    summary = header(name, preset, rec, parts, overrides)
    summary["wall_seconds"] = sum(p.seconds for p in parts.values())
    summary["this_invocation_seconds"] = time.perf_counter() - t0
    summary["results"] = _summarize(module, parts, cfg, summary)
    runs.finish(summary)
    if draw and summary["results"] is not None and hasattr(module, "draw"):
        runs.figures_written(draw_figures(module, parts, summary, cfg, out))
    return summary


def _command(name, preset, out, seeds, overrides) -> str:
    words = ["jaxmem reproduce", name, "--preset", preset, "--out", str(out)]
    if seeds is not None:
        words += ["--seeds", str(seeds)]
    words += [f"--set {k}={v}" for k, v in (overrides or {}).items()]
    return " ".join(words)


def header(name: str, preset: str, rec: dict, parts: Mapping[str, Part], overrides=None) -> dict:
    """The ``summary.json`` header: this machine, the jaxmem version, runs and timings
    summed over the parts (``wall_seconds``: the time each part took when it ran)."""
    from jaxmem import __version__
    from jaxmem.devices import device_info

    n_diverged = sum(int(np.sum(v)) for p in parts.values()
                     for k, v in run_store.flatten(p.arrays).items() if k.rsplit("/", 1)[-1] == "diverged")
    summary = {"experiment": name, "preset": preset, **device_info(), "jaxmem": __version__,
               "n_runs": sum(p.n_runs for p in parts.values()),
               "wall_seconds": sum(p.seconds for p in parts.values()),
               "compile_seconds": sum(p.compile_seconds for p in parts.values()),
               "resumed_parts": [n for n, p in parts.items() if p.loaded],
               "n_diverged": n_diverged,
               "config": {**rec, **({"overrides": dict(overrides)} if overrides else {})},
               "parts": {n or "main": {"n_runs": p.n_runs, "seconds": p.seconds, "compile_seconds": p.compile_seconds,
                                       "loaded": p.loaded} for n, p in parts.items()}}
    return {k: summary[k] for k in HEADER}


def _summarize(module, parts, cfg, summary) -> dict | None:
    """``module.summarize``; a run whose every training run diverged, or whose summary
    fails, keeps its saved arrays and gets ``results: null`` with the reason."""
    if summary["n_runs"] and summary["n_diverged"] >= summary["n_runs"]:
        summary["error"] = (f"every run diverged ({summary['n_diverged']} of {summary['n_runs']}): no headline "
                            f"numbers or figures; settings in config")
        print(f"jaxmem: {summary['experiment']}: {summary['error']}", file=sys.stderr)
        return None
    try:
        return module.summarize(parts, cfg)
    except Exception as err:  # the arrays are saved: say so rather than lose the run
        summary["error"] = f"summarize failed: {type(err).__name__}: {err}"
        print(f"jaxmem: {summary['experiment']}: {summary['error']} (arrays kept in runs.npz)", file=sys.stderr)
        return None


def draw_figures(module, parts, summary, cfg, out) -> list[str]:
    """Every figure of a run; returns the names of the PNG files written."""
    out = Path(out)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    module.draw(parts, summary, cfg, out)
    return sorted(p.name for p in out.glob("*.png") if before.get(p.name) != p.stat().st_mtime_ns)


def open_run(folder):
    """``(module, cfg, summary, parts)`` of a saved run folder, for ``plot`` and ``show``."""
    from jaxmem import studies

    manifest, parts = run_store.open_parts(folder)
    module = studies.get(manifest["experiment"])
    config = {k: v for k, v in manifest["config"].items() if k != "options"}
    cfg = rebuild(module, manifest["preset"], config)
    summary_path = Path(folder) / run_store.SUMMARY
    summary = run_store.load_json(summary_path) if summary_path.exists() else None
    return module, cfg, summary, parts
