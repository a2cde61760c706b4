#!/usr/bin/env python
"""Run every experiment of the registry (``jaxmem list``) on one preset and tabulate them.

    python scripts/reproduce_all.py                      # every experiment, quick, into runs/all
    python scripts/reproduce_all.py --only smdd parity-grid --out runs/some
    python scripts/reproduce_all.py --preset paper --timeout 7200 --resume
    python scripts/reproduce_all.py --overwrite     # again, replacing the runs of last time
    python scripts/reproduce_all.py --figures docs/figures   # and refresh the README's figures

Each experiment runs as ``jaxmem reproduce NAME --preset P --out ROOT/NAME`` in its own
process (``--in-process`` runs them in this one instead), its output going to
``ROOT/NAME/log.txt``. A failing experiment is reported and the rest still run. At the
end ``ROOT/RESULTS.md`` (printed too) holds one row per experiment: status, wall time
(measured around the run), ``n_runs`` and a few headline numbers from its
``summary.json`` (``HEADLINES`` below); ``ROOT/RESULTS.json`` holds the same rows.
With ``--figures DIR`` each experiment that finished copies its headline figure
(``FIGURES`` below) to ``DIR/<name>`` (the README shows ``docs/figures``).
Exit status 1 if any experiment failed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

#: experiment -> headline numbers, as (label, path into summary.json's "results").
#: A path is keys and list indices joined by "/"; "*" takes every item of a list (or
#: every value of a dict, labelled by its key); a trailing "#" gives a list's length.
#: Paths an experiment's summary lacks are left out of its row.
HEADLINES = {
    "smdd": [("test-loss peak T", "test_loss_peak_T"), ("W-norm peak T", "W_norm_peak_T"),
             ("peak interior", "test_loss_peak_is_interior"), ("infinite-data test loss", "infinite/test_loss"),
             ("hidden-norm peak T", "hidden_norm_mean_peak_T"), ("data-dim mean max rel dev", "data_dim_mean_rel_dev_max_abs"),
             ("Jermyn W trend", "jermyn_norms/W_norm/label"),
             ("fdim falls after generalising", "feature_dim_after_generalising/falls"),
             ("diverged", "n_diverged")],
    "smdd-phase": [("bump T per m", "bump_T_per_m"), ("m=2 smallest seed spread", "m2_smallest_seed_spread"), ("diverged", "diverged#")],
    "smdd-wd": [("bump T", "by_variant/*/bump_T"), ("jump T", "by_variant/*/jump_T"), ("diverged", "diverged#")],
    "smdd-steps": [("bump T", "by_variant/*/bump_T"), ("jump T", "by_variant/*/jump_T"), ("diverged", "diverged#")],
    "smdd-sparsity": [("jump T(1-S)", "by_variant/*/jump_T_times_1_minus_S"), ("bump T", "by_variant/*/bump_T"),
                      ("spread across S (x>=1)", "feature_dim_max_spread_across_S_from_x1/mean_spread"),
                      ("diverged", "diverged#")],
    "smdd-repeat": [("largest T stored", "largest_T_stored"), ("largest T/n stored", "largest_T_over_n_stored"),
                    ("diverged", "diverged#")],
    "smdd-repeat-slot": [("stored", "by_cell/*/stored"), ("slot", "by_cell/*/slot"), ("diverged", "diverged#")],
    "smdd-variants": [("peak T", "by_variant/*/peak_T"), ("height over dip", "by_variant/*/height_over_dip"),
                      ("diverged", "diverged#")],
    "smdd-modelwise": [("peak m per T", "peak_m_per_T"), ("diverged", "diverged#")],
    "dstar-smdd": [("all converged", "all_converged"), ("flat T", "flat_T"), ("memorised T", "memorised_T"),
                   ("solve s", "solve_seconds")],
    "dstar-mnist": [("D* q90/q10", "inputs/raw/dstar_q90_over_q10"), ("test acc", "inputs/raw/test_accuracy"),
                    ("spearman raw vs normalized", "inputs/spearman_raw_vs_normalized")],
    "modular-addition": [("factored", "factored/outcomes"),
                         ("generalise then memorise", "factored/generalise_then_memorise"),
                         ("gen/mem step", "factored/median_generalise_over_memorise"),
                         ("unfactored", "unfactored/outcomes")],
    "parity-grid": [("outcomes", "outcomes"),
                    ("grok relevant share", "relevant_share_by_outcome/memorise then generalise/median")],
    "parity-pruning": [("rise before gen (runs)", "by_arm/*/rise_runs"),
                       ("alive at gen", "by_arm/*/median/alive_at_generalise"),
                       ("active neurons", "by_arm/*/median/neurons_n_active"),
                       ("distinct neurons", "by_arm/*/median/neurons_n_distinct"),
                       ("share at gen", "by_arm/*/median/relevant_share_at_generalise")],
    "grokking-lr": [("best lr per optimiser@decay", "claims/headline/optimizer"),
                    ("best overall", "claims/headline/optimizer_best_overall"), ("best lr vs p", "claims/headline/lr_vs_p")],
    "opt-failure": [("failed AdamW", "adam_vs_adamw/total/adamw"), ("failed Adam", "adam_vs_adamw/total/adam"),
                    ("same init", "adam_vs_adamw/same_init"), ("symmetric state", "symmetric_state/answer"),
                    ("escape recovered", "escape/recovered_fraction")],
    "modular-circle": [("perfect seeds", "perfect_all_pairs"), ("of", "seeds"),
                       ("step ratio", "perfect_seeds/mean_step_ratio"),
                       ("max gap error deg", "perfect_seeds/max_gap_error_deg"),
                       ("norm spread", "perfect_seeds/in_norm_spread")],
    "memorisation": [("mem mean per T", "smdd/by_T/*/mem_mean"), ("rho(mem, D*) per T", "smdd/by_T/*/spearman/dstar"),
                     ("rho(mem, D* in) per T", "smdd/by_T/*/spearman/dstar_in"), ("SMDD SE max", "smdd/se/max"),
                     ("MNIST rho(mem, D*)", "mnist/spearman/dstar")],
}

#: experiment -> (its PNG in the run folder, the name of the README's copy under docs/figures)
FIGURES = {
    "smdd": ("test_loss.png", "smdd_test_loss.png"),
    "dstar-smdd": ("dstar_levels.png", "dstar_smdd_levels.png"),
    "dstar-mnist": ("inputs_curves.png", "dstar_mnist_inputs.png"),
    "opt-failure": ("adam_vs_adamw.png", "opt_failure_adam_vs_adamw.png"),
    "modular-circle": ("circle_neurons.png", "modular_circle_neurons.png"),
    "memorisation": ("memorisation_smdd_scatter.png", "memorisation_smdd_scatter.png"),
    "parity-pruning": ("neuron_maps.png", "parity_neuron_maps.png"),
    "grokking-lr": ("lr_optimizers.png", "grokking_lr_optimizers.png"),
}

#: short names of the grokking outcome classes, for headlines
SHORT = {"memorise then generalise": "grok", "generalise directly": "direct", "memorise only": "memorise",
         "learn nothing": "nothing"}

_MISSING = object()


def lookup(results: dict, path: str):
    """The value at ``path`` (see ``HEADLINES``), or ``_MISSING``."""
    count = path.endswith("#")
    value = _walk(results, path.rstrip("#").split("/"))
    if count and value is not _MISSING:
        return len(value) if isinstance(value, (list, dict)) else _MISSING
    return value


def _walk(value, parts):
    if not parts:
        return value
    head, rest = parts[0], parts[1:]
    if head == "*":
        if isinstance(value, dict):
            items = {k: _walk(v, rest) for k, v in value.items()}
            items = {k: v for k, v in items.items() if v is not _MISSING}
            return items if items else _MISSING
        if isinstance(value, list):
            items = [_walk(v, rest) for v in value]
            return items if any(v is not _MISSING for v in items) else _MISSING
        return _MISSING
    if isinstance(value, dict):
        return _walk(value[head], rest) if head in value else _MISSING
    if isinstance(value, list):
        try:
            return _walk(value[int(head)], rest)
        except (ValueError, IndexError):
            return _MISSING
    return _MISSING


def fmt(value, max_items: int = 8) -> str:
    """A short text for a headline value: 3 significant digits, lists in brackets,
    dicts as ``key value`` (keys of several words by ``SHORT`` or their initials)."""
    if value is _MISSING or value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        shown = [fmt(v, max_items) for v in value[:max_items]]
        return "[" + ", ".join(shown) + (", …" if len(value) > max_items else "") + "]"
    if isinstance(value, dict):
        short = lambda k: SHORT.get(k) or ("".join(w[0] for w in str(k).split()).upper() if " " in str(k) else str(k))
        return " ".join(f"{short(k)} {fmt(v, max_items)}" for k, v in list(value.items())[:max_items])
    return str(value)


def headline(name: str, summary: dict) -> str:
    results = summary.get("results", {})
    parts = []
    for label, path in HEADLINES.get(name, []):
        value = lookup(results, path)
        if value is not _MISSING:
            parts.append(f"{label}: {fmt(value)}")
    return "; ".join(parts)


def run_subprocess(name: str, preset: str, out: Path, extra: list, timeout: float | None) -> tuple[bool, str]:
    """``jaxmem reproduce`` in a child process, its output in ``out/log.txt``;
    (ok, message)."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "jaxmem.cli", "reproduce", name, "--preset", preset, "--out", str(out), *extra]
    with open(out / "log.txt", "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        try:
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            return False, f"timed out after {timeout:g} s"
    if rc != 0:
        lines = [line for line in (out / "log.txt").read_text(errors="replace").splitlines() if line.strip()]
        return False, f"exit {rc}: {lines[-1].strip() if lines else ''}"
    return True, ""


def run_in_process(name: str, preset: str, out: Path, extra: list, timeout: float | None) -> tuple[bool, str]:
    """``jaxmem.cli.main`` in this process (no timeout); (ok, message)."""
    from jaxmem import cli

    try:
        rc = cli.main(["reproduce", name, "--preset", preset, "--out", str(out), *extra])
    except Exception as err:  # noqa: BLE001 - report it and go on to the next experiment
        traceback.print_exc()
        return False, f"{type(err).__name__}: {err}"
    return rc == 0, "" if rc == 0 else f"exit {rc}"


def run_all(names, preset: str, root: Path, runner, extra=(), timeout=None, stream=sys.stdout) -> list[dict]:
    """Run each experiment into ``root/NAME`` with ``runner``; one row per experiment."""
    rows = []
    for name in names:
        out = root / name
        summary_path = out / "summary.json"
        print(f"== {name} ({preset}) -> {out}", file=stream, flush=True)
        start = time.perf_counter()
        before = summary_path.stat().st_mtime if summary_path.exists() else None
        try:
            ok, message = runner(name, preset, out, list(extra), timeout)
        except Exception as err:  # noqa: BLE001 - a broken runner must not stop the others
            ok, message = False, f"{type(err).__name__}: {err}"
        wall = time.perf_counter() - start
        summary = None
        if ok:
            if not summary_path.exists() or summary_path.stat().st_mtime == before:
                ok, message = False, "finished without writing summary.json"
            else:
                try:
                    summary = json.loads(summary_path.read_text())
                except (OSError, ValueError) as err:
                    ok, message = False, f"unreadable summary.json: {err}"
        row = {"experiment": name, "preset": preset, "status": "ok" if ok else "FAILED", "message": message,
               "wall_seconds": wall, "n_runs": summary.get("n_runs") if summary else None,
               "headline": headline(name, summary) if summary else message, "out": str(out)}
        rows.append(row)
        print(f"   {row['status']} in {wall:.1f} s" + (f": {message}" if message else ""), file=stream, flush=True)
    return rows


def markdown(rows: list[dict], preset: str) -> str:
    cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
    lines = [f"# jaxmem reproduce, preset `{preset}`", "",
             "| experiment | status | wall (s) | n_runs | headline |", "|---|---|---:|---:|---|"]
    for r in rows:
        n_runs = "–" if r["n_runs"] is None else r["n_runs"]
        lines.append(f"| {cell(r['experiment'])} | {cell(r['status'])} | {r['wall_seconds']:.1f} | {n_runs} "
                     f"| {cell(r['headline'])} |")
    failed = [r["experiment"] for r in rows if r["status"] != "ok"]
    lines += ["", f"{len(rows) - len(failed)} of {len(rows)} ok" + (f"; failed: {', '.join(failed)}" if failed else ""),
              f"total wall time {sum(r['wall_seconds'] for r in rows):.1f} s"]
    return "\n".join(lines) + "\n"


def copy_figures(rows: list[dict], folder: Path) -> list[Path]:
    """Copy the headline figure of every experiment that finished into ``folder``."""
    copied = []
    for row in rows:
        source, name = FIGURES.get(row["experiment"], (None, None))
        if row["status"] == "ok" and source and (Path(row["out"]) / source).exists():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(row["out"]) / source, folder / name)
            copied.append(folder / name)
    return copied


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None, runner=None) -> int:
    from jaxmem import studies

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="just these experiments (default: all)")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--out", default="runs/all", help="ROOT: each experiment goes into ROOT/NAME")
    parser.add_argument("--seeds", type=int, default=None, help="passed to each `jaxmem reproduce`")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="passed to each `jaxmem reproduce`")
    group.add_argument("--overwrite", action="store_true", help="passed to each `jaxmem reproduce`")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per experiment (child processes only)")
    parser.add_argument("--figures", metavar="DIR", help="copy each experiment's headline figure here")
    parser.add_argument("--in-process", action="store_true", help="run in this process, not one child each")
    args = parser.parse_args(argv)

    names = list(args.only) if args.only else sorted(studies.REGISTRY)
    unknown = [n for n in names if n not in studies.REGISTRY]
    if unknown:
        parser.error(f"unknown experiment(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(studies.REGISTRY))}")
    extra = ((["--seeds", str(args.seeds)] if args.seeds is not None else []) + (["--resume"] if args.resume else [])
             + (["--overwrite"] if args.overwrite else []))
    if runner is None:
        runner = run_in_process if args.in_process else run_subprocess
    root = Path(args.out)
    rows = run_all(names, args.preset, root, runner, extra, args.timeout)
    text = markdown(rows, args.preset)
    _write_atomic(root / "RESULTS.md", text)
    _write_atomic(root / "RESULTS.json", json.dumps(rows, indent=2) + "\n")
    for path in copy_figures(rows, Path(args.figures)) if args.figures else []:
        print(f"figure -> {path}")
    print()
    print(text, end="")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
