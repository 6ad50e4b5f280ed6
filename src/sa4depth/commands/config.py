"""Print the resolved configuration (base <- data <- scale <- row <- files <- overrides)."""
from __future__ import annotations

from sa4depth.config import add_config_args, config_from_args, save_config


def add_arguments(p) -> None:
    add_config_args(p)
    p.add_argument("--out", default=None, help="also write it to this YAML file")


def run(args) -> int:
    cfg = config_from_args(args)
    print(cfg.dump(), end="")
    if args.out:
        save_config(cfg, args.out)
    return 0
