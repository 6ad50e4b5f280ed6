"""Command-line entry point: ``sa4depth <verb> ...``.

Each verb lives in ``sa4depth.commands.<verb>`` with two functions,
``add_arguments(parser)`` and ``run(args) -> int``. Command modules import heavy
dependencies (torch, evo) inside ``run`` so that ``sa4depth --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

VERBS: dict[str, str] = {
    "config": "print the resolved configuration for a data/scale/row/overrides choice",
    "synth": "render the procedural synthetic benchmark in real dataset layouts",
    "prepare": "check (and optionally download) a real dataset's layout",
    "stats": "print dataset counts per split",
    "train": "train a depth + pose model (Monodepth2 baseline or SA4Depth)",
    "evaluate": "evaluate depth / odometry / video depth and write one JSON",
    "bench": "benchmarks: synth, data, train, infer",
    "table": "assemble a paper table from result files",
    "figure": "draw a paper figure from result files",
    "audit": "write the ablation audit report",
    "claims": "answer the paper's claims from per-seed results (paired intervals, computed verdicts)",
}


def _module(verb: str):
    return importlib.import_module(f"sa4depth.commands.{verb}")


def build_parser() -> argparse.ArgumentParser:
    from sa4depth import __version__

    p = argparse.ArgumentParser(
        prog="sa4depth",
        description="SA4Depth reproduction: synthetic benchmark, training, evaluation, tables.")
    p.add_argument("--version", action="version", version=f"sa4depth {__version__}")
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    for verb, help_text in VERBS.items():
        try:
            mod = _module(verb)
        except ModuleNotFoundError as e:
            if e.name != f"sa4depth.commands.{verb}":
                raise
            continue  # verb not part of this build
        sp = sub.add_parser(verb, help=help_text, description=(mod.__doc__ or help_text).strip(),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(sp)
        sp.set_defaults(_run=mod.run)
    return p


def main(argv: list[str] | None = None) -> int:
    from sa4depth.config import ConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        from sa4depth.evaluate.provenance import check_git_env

        check_git_env()
        return int(args._run(args) or 0)
    except ConfigError as e:
        print(f"sa4depth {args.verb}: config error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as e:
        # loaders and evaluators raise these with the offending file/key in the message
        print(f"sa4depth {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # e.g. --out names a file's child, a directory, or an unwritable place
        where = f"{e.filename}: " if e.filename else ""
        print(f"sa4depth {args.verb}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
