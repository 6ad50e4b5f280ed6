"""Draw a paper figure from result files (and, for the qualitative and feature figures, from the
networks of finished runs).

  sa4depth figure scale-factors --json LABEL=DEPTH_EVAL.json ... --out PNG     (Fig. 1)
  sa4depth figure qualitative   --run LABEL=RUN_DIR ... [--split S] [--num N] --out PNG  (Figs. 3-5)
  sa4depth figure trajectories  --json LABEL=ODOMETRY_EVAL.json ... --out PNG  (Fig. 6, from the
                                trajectory files the evaluation wrote: one axes per sequence)
  sa4depth figure features      --run RUN_DIR --out PNG                          (Fig. 10)
  sa4depth figure montage       --panel LABEL=PNG ... --out PNG
  sa4depth figure monitor       --run LABEL=RUN_DIR ... --out PNG [--summary JSON] (scale-alignment monitor)
  sa4depth figure ledger        --ledger CLAIMS_JSON --out PNG  (the claims ledger's comparisons as a
                                forest plot; `sa4depth claims` writes it beside claims.json)

Every figure names its data, scale and seeds in a footer, read from the files / run directories it
is drawn from (``sa4depth.report.figures.source_caption``).

Library API (the same figures from Python, without argparse): ``sa4depth.report.figure_jobs``.
"""
from __future__ import annotations

import argparse
import sys

from sa4depth.commands import add_device_arg

__all__ = ["add_arguments", "run"]


def _pairs(items: list[str], what: str) -> list[tuple[str, str]]:
    out = []
    for it in items:
        if "=" not in it:
            raise ValueError(f"{what} {it!r}: expected LABEL=PATH")
        label, path = it.split("=", 1)
        out.append((label, path))
    if not out:
        raise ValueError(f"give at least one {what} LABEL=PATH")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    p = sub.add_parser("scale-factors", help="Fig. 1: per-image scale factors from depth-eval JSONs")
    p.add_argument("--json", action="append", default=[], metavar="LABEL=PATH",
                   help="a depth-evaluation JSON (sa4depth evaluate depth --out) and its legend label; repeatable")
    p.add_argument("--out", required=True, help="output PNG")
    p = sub.add_parser("trajectories", help="Fig. 6: trajectories (x-z top view) of odometry-eval JSONs, "
                                            "one axes per sequence, GT and every method overlaid")
    p.add_argument("--json", action="append", default=[], metavar="LABEL=PATH",
                   help="an odometry-eval JSON (`sa4depth evaluate odometry`); its trajectory files are read")
    p.add_argument("--out", required=True, help="output PNG")
    p = sub.add_parser("montage", help="place PNGs side by side")
    p.add_argument("--panel", action="append", default=[], metavar="LABEL=PNG",
                   help="a PNG and its panel title; repeatable, placed left to right")
    p.add_argument("--title", default="", help="figure title")
    p.add_argument("--caption", default=None, help="footer line, e.g. 'data: synthetic, scale: smoke, seeds: 0'")
    p.add_argument("--out", required=True, help="output PNG")
    p = sub.add_parser("qualitative", help="Figs. 3-5: input | predicted disparity per run | GT")
    p.add_argument("--run", action="append", default=[], metavar="LABEL=RUN_DIR",
                   help="a trained run directory (or model.pt) and its row label; repeatable")
    p.add_argument("--split", default=None, help="evaluation split (default: the first run's data.eval_split)")
    p.add_argument("--num", type=int, default=3, help="number of test images (evenly spaced)")
    add_device_arg(p)
    p.add_argument("--out", required=True, help="output PNG")
    p = sub.add_parser("features", help="Fig. 10: feature PCA and confidence maps of SA4Depth's feature net")
    p.add_argument("--run", required=True, help="run directory of an SA4Depth run (refine.enabled)")
    p.add_argument("--index", type=int, default=0, help="validation sample index")
    p.add_argument("--out", required=True, help="output PNG")
    p = sub.add_parser("monitor", help="scale-alignment monitor curves (log.csv of runs) against step")
    p.add_argument("--run", action="append", default=[], metavar="LABEL=RUN_DIR",
                   help="a run directory (or its log.csv); repeat a LABEL for its seeds")
    p.add_argument("--title", default="", help="figure title")
    p.add_argument("--summary", default=None, metavar="JSON",
                   help="also write each label's mean validation Abs Rel curve and its slope per window")
    p.add_argument("--window", type=int, default=200, help="steps per slope window of --summary (default 200)")
    p.add_argument("--out", required=True, help="output PNG")
    p = sub.add_parser("ledger", help="the claims ledger's comparisons (claims.json) as a forest plot")
    p.add_argument("--ledger", required=True, metavar="CLAIMS_JSON", help="a claims.json of `sa4depth claims`")
    p.add_argument("--out", required=True, help="output PNG")


def run(args) -> int:
    from sa4depth.report import figure_jobs as J
    from sa4depth.report.figures import montage

    if args.kind == "scale-factors":
        out = J.scale_factors_figure(_pairs(args.json, "--json"), args.out)
    elif args.kind == "trajectories":
        out = J.trajectories_figure(_pairs(args.json, "--json"), args.out)
    elif args.kind == "monitor":
        out = J.monitor_figure(_pairs(args.run, "--run"), args.out, args.title, summary=args.summary,
                               window=args.window)
    elif args.kind == "ledger":
        out = J.ledger_figure(args.ledger, args.out)
    elif args.kind == "montage":
        out = montage(_pairs(args.panel, "--panel"), args.out, title=args.title, caption=args.caption)
    elif args.kind == "qualitative":
        out = J.qualitative_figure(_pairs(args.run, "--run"), args.out, split=args.split, num=args.num,
                                   device=args.device)
    else:
        out = J.features_figure(args.run, args.out, index=args.index)
    print(f"wrote {out}", file=sys.stderr)
    return 0
