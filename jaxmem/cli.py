"""The ``jaxmem`` command line.

    jaxmem reproduce NAME --preset quick --out DIR [--seeds K] [--resume | --overwrite]
                     [--set FIELD=VALUE ...] [--dry-run]
    jaxmem list          every experiment NAME, one line each
    jaxmem show DIR      the headline tables of a saved run (--json: its summary.json)
    jaxmem plot DIR      redraw every figure of a saved run from its saved files
    jaxmem --version

``--set FIELD=VALUE`` (repeatable) overrides a field of the preset's config, e.g.
``--set steps=2000 --set T=3,10,30``; ``summary.json`` records it under
``config.overrides``. ``--dry-run`` prints the resolved config and trains nothing.

A folder that holds a run is never written over: ``--resume`` continues it (same
config only: another is refused, naming the fields that differ) and ``--overwrite``
replaces it, deleting only the files jaxmem wrote (listed in DIR/run.json).

Progress: a bar on a terminal or in a notebook; elsewhere (a batch job's log) one
line per chunk of training. ``JAXMEM_PROGRESS=1`` or ``0`` forces bars on or off.
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
    show.add_argument("--json", action="store_true", help="print summary.json as it is")
    plot = sub.add_parser("plot", help="redraw every figure of a saved run from its saved files")
    plot.add_argument("dir", help="a folder written by `jaxmem reproduce`")
    rep = sub.add_parser("reproduce", help="run an experiment and write its results and figures")
    rep.add_argument("name", help="experiment name (see `jaxmem list`)")
    rep.add_argument("--preset", default="quick", help="quick (a 2-core CPU, minutes) or paper (an accelerator)")
    rep.add_argument("--out", required=True, help="folder for summary.json, runs.npz and the figures")
    rep.add_argument("--seeds", type=int, default=None, help="number of dataset seeds (default: the preset's)")
    rep.add_argument("--resume", action="store_true",
                     help="continue the run in --out, reusing its saved parts (same config only)")
    rep.add_argument("--overwrite", action="store_true",
                     help="replace the run in --out (deletes only the files jaxmem wrote there)")
    rep.add_argument("--dry-run", action="store_true", help="print the resolved config and stop")
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
            return show(args.dir, as_json=args.json)
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
    if (args.coordinator, args.num_processes, args.process_id) != (None, None, None) and not args.distributed:
        raise UsageError("--coordinator, --num-processes and --process-id go with --distributed")
    one_cpu_device_per_core()  # before anything imports JAX (the study modules do)
    from jaxmem import presets, studies
    from jaxmem.studies import protocol

    overrides = presets.parse_assignments(args.overrides)
    module = studies.get(args.name)
    if args.preset not in module.PRESETS:
        raise UsageError(f"unknown preset {args.preset!r} for {args.name}; known: {', '.join(module.PRESETS)}")
    cfg = protocol.configure(module, args.preset, args.seeds, overrides)
    protocol.options_of(module, args.source, args.data)
    if args.dry_run:
        print(f"{args.name} --preset {args.preset}: the resolved config (nothing trained)")
        print(json.dumps(protocol.record(module, cfg), indent=2, default=str))
        return 0

    import jax  # keep `--help`, `show` and `--version` fast

    from jaxmem import devices
    from jaxmem.cache import enable_compilation_cache

    enable_compilation_cache()
    if args.distributed:
        devices.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    if jax.process_index() > 0:
        out = out / f"process-{jax.process_index()}"
    try:
        summary = studies.reproduce(args.name, args.preset, out, seeds=args.seeds, resume=args.resume,
                                    overwrite=args.overwrite, overrides=overrides, source=args.source,
                                    data_dir=args.data)
    except KeyboardInterrupt:
        print(f"\njaxmem: interrupted; the parts finished so far are saved in {out}. Continue with the same "
              f"command and --resume.", file=sys.stderr)
        return 130
    resumed = summary["resumed_parts"]
    told = (f"{len(resumed)} of {len(summary['parts'])} part(s) loaded from the earlier run, "
            f"{summary['this_invocation_seconds']:.1f} s now; " if resumed else "")
    print(f"{args.name} ({args.preset}): {summary['n_runs']} runs, {told}{summary['wall_seconds']:.1f} s of training "
          f"(compile {summary['compile_seconds']:.1f} s) on {len(summary['devices'])} {summary['backend']} "
          f"device(s); results in {out}")
    if summary.get("error"):
        print(f"jaxmem: {args.name}: {summary['error']}", file=sys.stderr)
        return 1
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


def _scalar(v) -> str:
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, str):
        return v
    return json.dumps(v)


def _is_records(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _is_matrix(v) -> bool:
    return (isinstance(v, list) and bool(v) and all(isinstance(r, list) and r for r in v)
            and all(isinstance(x, (int, float)) or x is None for r in v for x in r))


def table(rows: list[list[str]], header: list[str]) -> list[str]:
    """Columns padded to their widest cell, numbers right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]


def _records_table(records: list[dict]) -> list[str]:
    """A list of records as a table: one row per record, a column per scalar field
    (nested dicts and lists are left to ``--json``)."""
    columns = []
    for r in records:
        columns += [k for k, v in r.items() if k not in columns and not isinstance(v, (dict, list))]
    rows = [[_scalar(r.get(k, "")) if k in r else "" for k in columns] for r in records]
    return table(rows, columns) if columns else []


def show_lines(summary: dict, axes: dict | None = None) -> list[str]:
    """The text of ``jaxmem show``: the header, scalars, then every list of records and
    every matrix as a full table (no row left out). ``axes`` names a matrix's rows and
    columns: ``{key: (row label, row values, column label, column values)}``."""
    head = [("experiment", summary.get("experiment")), ("preset", summary.get("preset")),
            ("backend", summary.get("backend")), ("devices", len(summary.get("devices") or [])),
            ("n_runs", summary.get("n_runs")), ("n_diverged", summary.get("n_diverged")),
            ("wall_seconds", summary.get("wall_seconds")), ("compile_seconds", summary.get("compile_seconds"))]
    if summary.get("resumed_parts"):
        head.append(("resumed_parts", ", ".join(p or "main" for p in summary["resumed_parts"])))
    overrides = (summary.get("config") or {}).get("overrides")
    if overrides:
        head.append(("overrides", " ".join(f"{k}={v}" for k, v in overrides.items())))
    if summary.get("error"):
        head.append(("error", summary["error"]))
    lines = [f"  {k:<16s}  {f'{v:.1f}' if isinstance(v, float) else _scalar(v)}" for k, v in head]
    results = summary.get("results")
    scalars, tables = [], []
    _walk(results if isinstance(results, dict) else {}, "", scalars, tables, axes or {})
    if scalars:
        width = min(44, max(len(k) for k, _ in scalars))
        lines += [""] + [f"  {k:<{width}s}  {v}" for k, v in scalars]
    for title, body in tables:
        lines += ["", f"  {title}:"] + [f"    {r}" for r in body]
    return lines


def _walk(value: dict, prefix: str, scalars: list, tables: list, axes: dict) -> None:
    for k, v in value.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and all(not isinstance(x, (dict, list)) for x in v.values()) and len(v) > 8:
            tables.append((key, table([[str(a), _scalar(b)] for a, b in v.items()], ["key", "value"])))
        elif isinstance(v, dict) and v:
            _walk(v, f"{key}/", scalars, tables, axes)
        elif _is_records(v):
            body = _records_table(v)
            if body:
                tables.append((key, body))
            for i, r in enumerate(v):  # what the table could not hold, by index
                _walk({f"{i}/{n}": x for n, x in r.items() if isinstance(x, (dict, list)) and x}, f"{key}/",
                      scalars, tables, axes)
        elif _is_matrix(v):
            rows_label, rows, cols_label, cols = axes.get(key, ("row", range(len(v)), "column", range(len(v[0]))))
            body = table([[str(r)] + [_scalar(x) for x in row] for r, row in zip(rows, v)],
                         [f"{rows_label} \\ {cols_label}"] + [str(c) for c in cols])
            tables.append((key, body))
        else:
            text = _scalar(v) if not isinstance(v, list) else json.dumps(v)
            scalars.append((key, text if len(text) <= 400 else text[:397] + "..."))


def show(folder, as_json: bool = False) -> int:
    summary = load_summary(folder)
    if as_json:
        print(json.dumps(summary, indent=2))
        return 0
    axes = {}
    try:
        from jaxmem import studies
        module = studies.get(summary["experiment"])
        if hasattr(module, "table_axes"):
            axes = module.table_axes(summary)
    except (ValueError, ImportError, KeyError):
        pass
    print(f"{Path(folder) / 'summary.json'}")
    for line in show_lines(summary, axes):
        print(line)
    return 0


def plot(folder) -> int:
    from jaxmem.studies import protocol

    load_summary(folder)
    try:
        module, cfg, summary, parts = protocol.open_run(folder)
    except KeyError as err:
        raise UsageError(f"{folder}: the saved run lacks {err}; cannot redraw") from None
    name = summary["experiment"]
    if not hasattr(module, "draw"):
        raise UsageError(f"{name} has no figures to redraw (no draw function)")
    if summary.get("results") is None:
        raise UsageError(f"{folder}: {summary.get('error', 'no results')}; nothing to draw")
    try:
        drawn = protocol.draw_figures(module, parts, summary, cfg, folder)
    except KeyError as err:
        raise UsageError(f"{folder}: the saved files of this {name} run lack {err}; cannot redraw") from None
    print(f"{name}: drew {len(drawn)} figure(s) in {folder}: {', '.join(drawn)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
