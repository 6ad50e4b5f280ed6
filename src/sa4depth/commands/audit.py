"""Write the ablation audit of a table (default table_vi): every row's exact config difference from
the reference row (row 6), whether it is exactly the switch the paper names, and each run's status,
seed, data hash, code commit and checkpoint hash. Works before anything has run."""
from __future__ import annotations

import sys
from pathlib import Path


def add_arguments(p) -> None:
    from sa4depth.report.cli_common import add_common

    add_common(p, table=False)
    p.add_argument("table", nargs="?", default="table_vi", help="table with a baseline_row (default table_vi)")
    p.add_argument("--out", default=None, metavar="MD", help="markdown report (default <results>/audit/<table>.md, <results> as for `sa4depth table`)")
    p.add_argument("--json", default=None, metavar="JSON",
                   help="the same audit as JSON, written beside --out (default <results>/audit/<table>.json)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 if a row differs in more/less than its switch, or resolves to the same config as "
                        "the baseline row (the workflow's audit job runs with it)")


def run(args) -> int:
    from sa4depth.report.audit import audit_markdown, audit_problems, audit_table, write_audit
    from sa4depth.report.cli_common import parse_weights, seeds_from
    from sa4depth.pipeline import load_table, output_root

    spec = load_table(args.table)
    a = audit_table(spec, args.data, args.scale, seeds_from(args.seeds), parse_weights(args.weights),
                    runs_root=args.runs, metrics_root=args.metrics)
    if args.out:
        out = args.out
        js = args.json or str(Path(out).with_suffix(".json"))
    else:
        root = output_root(args.data, args.scale, args.seeds) / "audit"
        out, js = str(root / f"{spec.name}.md"), args.json or str(root / f"{spec.name}.json")
    write_audit(a, out, js)
    print(audit_markdown(a))
    print(f"wrote {out}, {js}", file=sys.stderr)
    problems = audit_problems(a)
    for line in problems:
        print(f"sa4depth audit: {'error' if args.strict else 'warning'}: {line}", file=sys.stderr)
    if args.strict and problems:
        return 1
    return 0
