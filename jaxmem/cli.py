"""The ``jaxmem`` command line: ``jaxmem list`` and ``jaxmem reproduce NAME``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="jaxmem", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the experiments")
    rep = sub.add_parser("reproduce", help="run an experiment and write its results and figures")
    rep.add_argument("name", help="experiment name (see `jaxmem list`)")
    rep.add_argument("--preset", default="quick", help="quick (a 2-core CPU, minutes) or paper (an accelerator)")
    rep.add_argument("--out", required=True, help="folder for summary.json, runs.npz and the figures")
    rep.add_argument("--seeds", type=int, default=None, help="number of dataset seeds (default: the preset's)")
    rep.add_argument("--resume", action="store_true", help="reuse results already saved in --out")
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
    args = parser.parse_args(argv)

    import jax  # keep `--help` fast

    from jaxmem import devices, studies
    from jaxmem.cache import enable_compilation_cache

    if args.command == "list":
        for name in sorted(studies.REGISTRY):
            print(f"{name:18s} {studies.get(name).DESCRIPTION}")
        return 0
    enable_compilation_cache()
    try:
        out = Path(args.out)
        if args.distributed:
            devices.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
        elif (args.coordinator, args.num_processes, args.process_id) != (None, None, None):
            raise ValueError("--coordinator, --num-processes and --process-id go with --distributed")
        if jax.process_index() > 0:
            out = out / f"process-{jax.process_index()}"
        module = studies.get(args.name)
        if args.preset not in module.PRESETS:
            raise ValueError(f"unknown preset {args.preset!r} for {args.name}; known: {', '.join(module.PRESETS)}")
        options = {}
        if args.source is not None:
            if not getattr(module, "ACCEPTS_FROM", False):
                raise ValueError(f"{args.name} does not take --from")
            options["source"] = args.source
        if args.data is not None:
            if not getattr(module, "ACCEPTS_DATA", False):
                raise ValueError(f"{args.name} does not take --data")
            options["data_dir"] = args.data
        summary = module.run(args.preset, out, seeds=args.seeds, resume=args.resume, **options)
    except ValueError as err:
        print(f"jaxmem: error: {err}", file=sys.stderr)
        return 2
    print(f"{args.name} ({args.preset}): {summary['n_runs']} runs in {summary['wall_seconds']:.1f} s "
          f"(compile {summary['compile_seconds']:.1f} s) on {len(summary['devices'])} {summary['backend']} "
          f"device(s); results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
