"""Assemble a paper table (params/tables/<table>.yaml) from evaluation JSONs into csv/md/tex/json."""
from __future__ import annotations

import sys


def add_arguments(p) -> None:
    from sa4depth.report.cli_common import add_common

    add_common(p)
    p.add_argument("--out-dir", default=None,
                   help="where <table>.{csv,md,tex,json} go (default: results/tables for the committed setting, "
                        "workflow/config.yaml `committed`; else results/<data>-<scale>-seeds<N>/tables, as the DAG)")
    p.add_argument("--formats", nargs="+", default=["csv", "md", "tex", "json"],
                   choices=["csv", "md", "tex", "json", "html"],
                   help="output formats (default csv md tex json; html: a standalone page with the same cells)")
    p.add_argument("--allow-missing", action="store_true",
                   help="write the table even if some runs have no results (their status says so)")
    p.add_argument("--quiet", action="store_true", help="do not print the markdown table")


def run(args) -> int:
    from sa4depth.report.cli_common import parse_weights, seeds_from
    from sa4depth.pipeline import load_table, output_root
    from sa4depth.report.tables import MissingResults, build_table, to_markdown, write_table

    spec = load_table(args.table)
    try:
        res = build_table(spec, args.data, args.scale, seeds_from(args.seeds), parse_weights(args.weights),
                          runs_root=args.runs, metrics_root=args.metrics, allow_missing=args.allow_missing)
    except MissingResults as e:
        from pathlib import Path

        absent = "".join(f"\n(--{k} {d}: no such folder)" for k, d in (("metrics", args.metrics), ("runs", args.runs))
                         if not Path(d).is_dir())
        print(f"sa4depth table: {e}{absent}\n(run `snakemake {spec.name} --config data={args.data} "
              f"scale={args.scale}` or pass --allow-missing)", file=sys.stderr)
        return 2
    out_dir = args.out_dir or output_root(args.data, args.scale, args.seeds) / "tables"
    paths = write_table(res, out_dir, args.formats)
    if not args.quiet:
        print(to_markdown(res))
    print("wrote " + ", ".join(map(str, paths)), file=sys.stderr)
    return 0
