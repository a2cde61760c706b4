"""The ``jaxmem`` command line: ``jaxmem list`` and ``jaxmem reproduce NAME``."""
from __future__ import annotations

import argparse
import sys


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
    rep.add_argument("--data", default=None, help="a folder of MNIST IDX-gzip files (dstar-mnist; default: shared/data/mnist)")
    args = parser.parse_args(argv)

    from jaxmem import experiments  # imports jax: keep `--help` fast

    if args.command == "list":
        for name in sorted(experiments.REGISTRY):
            print(f"{name:18s} {experiments.get(name).DESCRIPTION}")
        return 0
    try:
        module = experiments.get(args.name)
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
        summary = module.run(args.preset, args.out, seeds=args.seeds, resume=args.resume, **options)
    except ValueError as err:
        print(f"jaxmem: error: {err}", file=sys.stderr)
        return 2
    print(f"{args.name} ({args.preset}): {summary['n_runs']} runs in {summary['wall_seconds']:.1f} s "
          f"(compile {summary['compile_seconds']:.1f} s) on {summary['backend']}; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
