"""Render the procedural synthetic benchmark into the real datasets' layouts.

``sa4depth synth --profile {driving,dynamic,indoor,all} [--out-dir DIR] [--scale tiny|smoke|small|full]
[--seed N] [--force] [key=value ...]``. Sizes come from ``cfg.synth`` of the scale preset; the
KITTI odometry sequences written are ``cfg.data.odom_train_sequences + odom_test_sequences``.
Default output: ``data/synthetic/<profile>``. See docs/DATA_LAYOUTS.md.
"""
from __future__ import annotations

import os
from pathlib import Path

from sa4depth.commands import add_option
from sa4depth.config import add_config_args, config_from_args

PROFILES = ("driving", "dynamic", "indoor")


def add_arguments(p) -> None:
    p.add_argument("--profile", default=None, choices=[*PROFILES, "all"],
                   help="which benchmark to render (default: cfg.synth.profile; 'all' = the three)")
    add_option(p, "--out-dir", deprecated=("--out",), dest="out", default=None, metavar="DIR",
               help="output directory (default data/synthetic/<profile>; with --profile all: the parent, "
                    "default data/synthetic)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: cfg.seed)")
    p.add_argument("--force", action="store_true", help="re-render even if a complete output exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="processes rendering sequences in parallel (default: CPU count, at most 8; same bytes)")
    add_config_args(p)


def run(args) -> int:
    from sa4depth.data.synth.writers import SynthSpec, write_profile

    cfg = config_from_args(args)
    profile = args.profile or cfg.synth.profile
    seed = cfg.seed if args.seed is None else args.seed
    if seed < 0:
        raise ValueError(f"--seed {seed}: must be >= 0")
    if args.workers < 1:
        raise ValueError(f"--workers {args.workers}: must be >= 1")
    spec = SynthSpec.from_config(cfg)
    names = list(PROFILES) if profile == "all" else [profile]
    for name in names:
        if profile == "all":
            out = Path(args.out or "data/synthetic") / name
        else:
            out = Path(args.out or f"data/synthetic/{name}")
        man = write_profile(name, out, spec, seed=seed, force=args.force, progress=not args.quiet,
                            workers=args.workers)
        state = "up to date (skipped)" if man.get("skipped") else f"written in {man['seconds']} s"
        print(f"synth {name}: {out} {state}: {man['files']} files, {man['frames']} frames, sha256 {man['sha256'][:16]}")
    return 0
