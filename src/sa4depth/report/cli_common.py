"""Options shared by ``sa4depth table``, ``sa4depth audit`` and ``sa4depth figure``."""
from __future__ import annotations

from pathlib import Path

from sa4depth.config import ConfigError

WEIGHT_KINDS = ("mast3r", "pixloc", "superglue")


def add_common(p, *, table: bool = True) -> None:
    if table:
        p.add_argument("table", help="table name, e.g. table_vi (params/tables/<name>.yaml) or a path")
    p.add_argument("--data", default="synthetic", help="data preset the runs used (synthetic|real)")
    p.add_argument("--scale", default="smoke", help="scale preset the runs used (tiny|smoke|small|full)")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds: 0..N-1 (default 1)")
    p.add_argument("--weights", action="append", default=[], metavar="KIND=PATH",
                   help="user-provided weights (mast3r|pixloc|superglue); rows needing absent weights "
                        "show 'not run: weights not provided'")
    p.add_argument("--runs", default="runs", help="root of run directories (default runs/)")
    p.add_argument("--metrics", default="results/metrics", help="root of evaluation JSONs")


def parse_weights(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for it in items:
        if "=" not in it:
            raise ConfigError(f"--weights {it!r}: expected KIND=PATH with KIND in {list(WEIGHT_KINDS)}")
        k, v = it.split("=", 1)
        if k not in WEIGHT_KINDS:
            raise ConfigError(f"--weights {it!r}: unknown kind {k!r} (one of {list(WEIGHT_KINDS)})")
        if v and v.lower() not in ("none", "null"):
            if not Path(v).is_file():
                raise ConfigError(f"--weights {k}={v}: file not found")
            out[k] = v
    return out


def seeds_from(n: int) -> list[int]:
    if n < 1:
        raise ConfigError(f"--seeds {n}: must be >= 1")
    return list(range(n))
