"""The ``jaxmem`` command line.

    jaxmem reproduce NAME --preset quick --out DIR [--seeds K] [--resume] [--set FIELD=VALUE ...]
    jaxmem list          every experiment NAME, one line each
    jaxmem show DIR      the headline table of a saved run (DIR/summary.json)
    jaxmem plot DIR      redraw every figure of a saved run from its saved files
    jaxmem --version

``--set FIELD=VALUE`` (repeatable) overrides a field of the preset's config, e.g.
``--set steps=2000 --set T=3,10,30``; ``summary.json`` records it under
``config.overrides``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as _version
        try:
            return _version("jaxmem")
        except PackageNotFoundError:
            pass
    except ImportError:  # pragma: no cover
        pass
    from jaxmem import __version__
    return __version__


class UsageError(ValueError):
    """A bad argument: reported as ``jaxmem: error: ...``, exit code 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxmem", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"jaxmem {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the experiments")
    show = sub.add_parser("show", help="print the headline table of a saved run (DIR/summary.json)")
    show.add_argument("dir", help="a folder written by `jaxmem reproduce`")
    plot = sub.add_parser("plot", help="redraw every figure of a saved run from its saved files")
    plot.add_argument("dir", help="a folder written by `jaxmem reproduce`")
    rep = sub.add_parser("reproduce", help="run an experiment and write its results and figures")
    rep.add_argument("name", help="experiment name (see `jaxmem list`)")
    rep.add_argument("--preset", default="quick", help="quick (a 2-core CPU, minutes) or paper (an accelerator)")
    rep.add_argument("--out", required=True, help="folder for summary.json, runs.npz and the figures")
    rep.add_argument("--seeds", type=int, default=None, help="number of dataset seeds (default: the preset's)")
    rep.add_argument("--resume", action="store_true", help="reuse results already saved in --out")
    rep.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                     help="override a field of the preset's config (repeatable), e.g. --set steps=2000 "
                          "--set T=3,10,30; an unknown FIELD lists the known ones")
    rep.add_argument("--from", dest="source", default=None, help="a saved run to analyse (experiments that take one)")
    rep.add_argument("--data", default=None, help="a folder of MNIST IDX-gzip files (dstar-mnist; default: the MNIST test set shipped in jaxmem/datasets/mnist)")
    multi = rep.add_argument_group("several hosts (one process per host, each running the same command)")
    multi.add_argument("--distributed", action="store_true",
                       help="call jax.distributed.initialize() and split runs over every process's devices; "
                            "process 0 writes --out, process I > 0 keeps its copy in OUT/process-I")
    multi.add_argument("--coordinator", default=None,
                       help="HOST:PORT of process 0 (default: $JAX_COORDINATOR_ADDRESS or the cluster's)")
    multi.add_argument("--num-processes", type=int, default=None, help="number of processes (default: the cluster's)")
    multi.add_argument("--process-id", type=int, default=None, help="this process, 0..N-1 (default: the cluster's)")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "show":
            return show(args.dir)
        if args.command == "plot":
            return plot(args.dir)
        if args.command == "list":
            from jaxmem import studies
            for name in sorted(studies.REGISTRY):
                try:
                    description = studies.get(name).DESCRIPTION
                except ImportError as err:  # one broken study does not hide the others
                    description = f"(cannot import jaxmem.studies.{studies.REGISTRY[name]}: {err})"
                print(f"{name:18s} {description}")
            return 0
        return reproduce(args)
    except ValueError as err:
        print(f"jaxmem: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `jaxmem show DIR | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:  # a given path that cannot be read or written
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        print(f"jaxmem: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2


def one_cpu_device_per_core() -> None:
    """Before JAX starts: one CPU device per core (``JAXMEM_CPU_DEVICES=N`` for another
    count), so that ``run_grid`` splits a grid's runs over the cores as over GPUs (on 2
    cores, smdd quick trains in 76 s instead of 105 s). Accelerators are unaffected, and so
    is an ``XLA_FLAGS`` that already sets the count."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "jax" in sys.modules or "xla_force_host_platform_device_count" in flags:
        return
    count = os.environ.get("JAXMEM_CPU_DEVICES") or str(os.cpu_count() or 1)
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={int(count)}".strip()


def reproduce(args) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder")
    for flag, given in (("--from", args.source), ("--data", args.data)):
        if given is not None and not Path(given).is_dir():
            raise UsageError(f"{flag} {given}: " + ("is not a folder" if Path(given).exists() else "no such folder"))
    from jaxmem import presets
    overrides = presets.parse_assignments(args.overrides)
    one_cpu_device_per_core()

    import jax  # keep `--help`, `show` and `--version` fast

    from jaxmem import devices, studies
    from jaxmem.cache import enable_compilation_cache

    enable_compilation_cache()
    if args.distributed:
        devices.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    elif (args.coordinator, args.num_processes, args.process_id) != (None, None, None):
        raise UsageError("--coordinator, --num-processes and --process-id go with --distributed")
    if jax.process_index() > 0:
        out = out / f"process-{jax.process_index()}"
    module = studies.get(args.name)
    if args.preset not in module.PRESETS:
        raise UsageError(f"unknown preset {args.preset!r} for {args.name}; known: {', '.join(module.PRESETS)}")
    options = {}
    if args.source is not None:
        if not getattr(module, "ACCEPTS_FROM", False):
            raise UsageError(f"{args.name} does not take --from")
        options["source"] = args.source
    if args.data is not None:
        if not getattr(module, "ACCEPTS_DATA", False):
            raise UsageError(f"{args.name} does not take --data")
        options["data_dir"] = args.data
    if overrides:
        options["overrides"] = overrides
    summary = module.run(args.preset, out, seeds=args.seeds, resume=args.resume, **options)
    print(f"{args.name} ({args.preset}): {summary['n_runs']} runs in {summary['wall_seconds']:.1f} s "
          f"(compile {summary['compile_seconds']:.1f} s) on {len(summary['devices'])} {summary['backend']} "
          f"device(s); results in {out}")
    return 0


# ---------------------------------------------------------------- show, plot


def load_summary(folder) -> dict:
    """``folder/summary.json``, or a ``ValueError`` naming the file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder}: " + ("is not a folder" if folder.exists() else "no such folder"))
    path = folder / "summary.json"
    if not path.is_file():
        raise UsageError(f"{path}: not found (is {folder} a folder written by `jaxmem reproduce`?)")
    try:
        summary = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: not readable JSON ({err})") from None
    if not isinstance(summary, dict) or "experiment" not in summary:
        raise UsageError(f"{path}: not a jaxmem summary (no \"experiment\")")
    return summary


#: list items shown before a long list is shortened
LIST_ITEMS = 6


def _scalar(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, str):
        return v
    return json.dumps(v)


def _short(v) -> str:
    """A value on one line, long lists shortened to their first and last items."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_short(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        if len(v) > LIST_ITEMS:
            items = [_short(x) for x in v[:LIST_ITEMS - 2]] + ["...", _short(v[-1])]
            return "[" + ", ".join(items) + f"] ({len(v)} items)"
        return "[" + ", ".join(_short(x) for x in v) + "]"
    return _scalar(v)


def flatten(value, prefix: str = "") -> list[tuple[str, str]]:
    """``(key, text)`` lines of a nested ``results`` dict: nested keys joined with "/",
    lists of records by index (the first and last few of a long one), other lists on one line."""
    if isinstance(value, dict):
        if not value:
            return [(prefix, "{}")] if prefix else []
        lines = []
        for k, v in value.items():
            lines += flatten(v, f"{prefix}/{k}" if prefix else str(k))
        return lines
    if isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
        n = len(value)
        shown = range(n) if n <= LIST_ITEMS else [*range(LIST_ITEMS - 2), n - 1]
        lines = []
        for i in shown:
            if n > LIST_ITEMS and i == n - 1:
                lines.append((f"{prefix}/...", f"({n - LIST_ITEMS + 1} of {n} items not shown)"))
            lines += [(key, _short(x) if len(_short(x)) <= 100 else _short(x)[:97] + "...")
                      for key, x in _items(value[i], f"{prefix}/{i}")]
        return lines
    text = _short(value)
    return [(prefix, text if len(text) <= 200 else text[:197] + "...")]


def _items(record: dict, prefix: str):
    for k, v in record.items():
        if isinstance(v, dict) and v:
            yield from _items(v, f"{prefix}/{k}")
        else:
            yield f"{prefix}/{k}", v


def show(folder) -> int:
    summary = load_summary(folder)
    head = [("experiment", summary.get("experiment")), ("preset", summary.get("preset")),
            ("backend", summary.get("backend")), ("devices", len(summary.get("devices") or [])),
            ("n_runs", summary.get("n_runs")), ("wall_seconds", summary.get("wall_seconds")),
            ("compile_seconds", summary.get("compile_seconds"))]
    overrides = (summary.get("config") or {}).get("overrides")
    if overrides:
        head.append(("overrides", " ".join(f"{k}={v}" for k, v in overrides.items())))
    rows = [(k, _short(v) if not isinstance(v, float) else f"{v:.1f}" if k.endswith("seconds") else _scalar(v))
            for k, v in head] + [("", "")]
    res = summary.get("results")
    rows += flatten(res, "") if isinstance(res, dict) else [("results", _short(res))]
    width = min(40, max(len(k) for k, _ in rows))
    print(f"{Path(folder) / 'summary.json'}")
    for k, v in rows:
        print(f"  {k:<{width}s}  {v}" if k else "")
    return 0


def plot(folder) -> int:
    from jaxmem import studies

    summary = load_summary(folder)
    name = summary["experiment"]
    try:
        module = studies.get(name)
    except ValueError as err:
        raise UsageError(f"{Path(folder) / 'summary.json'}: {err}") from None
    if not hasattr(module, "draw"):
        raise UsageError(f"{name} has no figures to redraw (no draw function)")
    before = {p: p.stat().st_mtime for p in Path(folder).glob("*.png")}
    try:
        module.draw(Path(folder), summary)
    except KeyError as err:
        raise UsageError(f"{folder}: the saved files of this {name} run lack {err}; cannot redraw") from None
    drawn = sorted(p.name for p in Path(folder).glob("*.png") if before.get(p) != p.stat().st_mtime)
    print(f"{name}: drew {len(drawn)} figure(s) in {folder}: {', '.join(drawn)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
