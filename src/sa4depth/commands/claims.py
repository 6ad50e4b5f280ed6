"""Write the claims ledger: each claim of params/claims.yaml answered from per-seed result files.

For every comparison, the per-seed values of a and b (paired by seed), the mean difference a - b,
its paired-t 95 % interval and a Bonferroni-corrected interval over the claim's comparisons; the
verdict (reproduced | contradicted | inconclusive) is computed from those intervals
(src/sa4depth/report/claims.py). Writes OUT_DIR/claims.json, claims.md and fig_ledger.png (every
comparison as a forest plot), and copies every file it read under OUT_DIR/runs/ so the ledger is
committed with its inputs.

Examples:
  sa4depth claims                               # all claims, every result file must exist
  sa4depth claims --allow-missing               # claims not run yet are listed as pending
  sa4depth claims --only C2 --out-dir /tmp/c2
  sa4depth claims --readme README.md            # and the README's verdict table with it
  sa4depth claims --scale study --only C2 --seeds 3 --out-dir results/claims/headline   # make reproduce's
  # this machine's runs, then the committed per-seed copies (runs and metrics in one tree):
  sa4depth claims --runs runs results/claims/runs --metrics results/metrics results/claims/runs
"""
from __future__ import annotations

import datetime as _dt
import os
import sys


def add_arguments(p) -> None:
    p.add_argument("--claims", default="params/claims.yaml", help="claims file (default params/claims.yaml)")
    p.add_argument("--data", default="synthetic", help="data preset of the runs (synthetic | real)")
    p.add_argument("--scale", default=None, help="scale of the runs (default: the claims file's `scale`)")
    p.add_argument("--only", default=None, help="comma-separated claim ids (default: all)")
    p.add_argument("--seeds", type=int, default=None,
                   help="seeds 0..N-1 for every chosen claim instead of each claim's own count (N >= 3)")
    p.add_argument("--allow-missing", action="store_true",
                   help="list claims with missing result files as pending instead of failing")
    p.add_argument("--out-dir", default="results/claims", help="output folder (default results/claims)")
    p.add_argument("--runs", nargs="+", default=["runs"], metavar="DIR",
                   help="root(s) of the run folders (default runs); with several, each run is read from the "
                        "first root holding its folder, and its metric JSONs from the --metrics root in the "
                        "same position")
    p.add_argument("--metrics", nargs="+", default=None, metavar="DIR",
                   help="root(s) of the metric JSONs, one per --runs root (default results/metrics)")
    p.add_argument("--no-check-config", dest="check_config", action="store_false",
                   help="read result files whatever training config they record (default: a file made with "
                        "another config than the params give now counts as missing, named as such)")
    p.add_argument("--readme", default=None, metavar="FILE",
                   help="also rewrite the verdict table between the '<!-- ledger-table: OUT_DIR/claims.md -->' "
                        "and '<!-- /ledger-table -->' lines of FILE (e.g. README.md; the path relative to FILE)")


def run(args) -> int:
    from sa4depth.config import load_yaml
    from sa4depth.evaluate.provenance import git_info
    from sa4depth.report.claims import (build_ledger, check_readme, comparison_line, load_claims, update_readme,
                                        pending_text, with_seeds, write_ledger)

    exps = (load_yaml("params/experiments.yaml") or {}).get("rows", {})
    spec = load_claims(args.claims, experiments=exps)
    claims = spec["claims"]
    if args.only:
        want = [x.strip() for x in args.only.split(",") if x.strip()]
        unknown = [w for w in want if w not in {c.id for c in claims}]
        if unknown:
            raise ValueError(f"--only: unknown claim id(s) {unknown} in {args.claims} "
                             f"(known: {', '.join(c.id for c in claims)})")
        claims = [c for c in claims if c.id in want]
    claims = with_seeds(claims, args.seeds)
    scale = args.scale or spec["scale"]
    metrics = args.metrics
    if metrics is None:
        if len(args.runs) > 1:
            raise ValueError(f"--runs {' '.join(args.runs)}: several run roots need --metrics with one root each")
        metrics = ["results/metrics"]
    ledger = build_ledger(claims, args.data, scale, args.runs, metrics, allow_missing=args.allow_missing,
                          budget=spec["budget"], check_config=args.check_config)
    g = git_info()
    prov = {"git_commit": g.get("commit"), "git_dirty": g.get("dirty"), "claims_file": args.claims,
            "data": args.data, "scale": scale, "seeds_override": args.seeds,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)}
    md = os.path.join(args.out_dir, "claims.md")
    if args.readme:  # checked before anything is written
        check_readme(args.readme, md)
    files = write_ledger(ledger, args.out_dir, provenance=prov)
    if args.readme:
        changed = update_readme(args.readme, ledger, md)
        print(f"{args.readme}: verdict table {'rewritten' if changed else 'unchanged'}", file=sys.stderr)
    def details(c):  # a claim's comparisons and learning curves (a pending one's answered comparisons)
        for m in c.get("comparisons") or []:
            print(f"      {comparison_line(m)}")
        if c.get("budget"):
            print(f"      learning curves: {c['budget']['summary']}")
    for c in ledger["claims"]:
        print(f"{c['id']:5s} {c['verdict']:13s} {c['statement'][:90]}")
        details(c)
    for pnd in ledger["pending"]:
        print(f"{pnd['id']:5s} {pending_text(pnd)}")
        details(pnd)
    print(f"wrote {', '.join(str(f) for f in files)}", file=sys.stderr)
    return 0
