"""Provenance recorded beside every evaluation number.

Every ``sa4depth evaluate ...`` writes one JSON holding the numbers together with the resolved
config, the git commit (and whether the work tree was dirty), a sha256 over the ground-truth /
split files used, the seed, the device, the protocol name and the command line, and, when a
model was evaluated, what its run recorded in done.json (``trained``: the commit that trained it,
the model's sha256, the steps; ``sa4depth.evaluate.jobs.training_record``)
(see docs/DATA_LAYOUTS.md and the design's "Metrics" contract). A result JSON is written with
``sa4depth.files.write_json_atomic(path, to_jsonable(obj), allow_nan=False)``.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from sa4depth.files import hash_files

__all__ = ["git_info", "provenance", "to_jsonable"]


def git_info(cwd: str | os.PathLike | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` from ``git rev-parse HEAD`` / ``git status``.

    ``dirty``: a tracked file outside ``results/`` differs from the commit. The committed results
    (tables, audit, figures, the claims ledger) are the pipeline's own outputs: a run rewrites them
    while later jobs still record provenance, and that does not make the code that ran differ from
    the commit. Never raises: outside a git checkout (or without git) both values are ``None``.
    """
    cwd = str(cwd or Path(__file__).resolve().parents[3])
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=cwd, capture_output=True,
                             text=True, timeout=10).stdout.strip() or cwd
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                 ":(exclude)results"], cwd=top, capture_output=True, text=True, timeout=30)
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
        return {"commit": commit.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def to_jsonable(obj: Any) -> Any:
    """numpy scalars/arrays, Paths and tuples -> plain JSON types; NaN/inf -> None (strict JSON)."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def provenance(*, protocol: str, data_files: Iterable[str | os.PathLike] = (), cfg: Mapping | None = None,
               seed: int | None = None, device: str | None = None,
               argv: list[str] | None = None) -> dict[str, Any]:
    """The provenance block of a result JSON."""
    files = sorted({str(p) for p in data_files})
    return {
        "protocol": protocol,
        "git": git_info(),
        "data_hash": hash_files(files),
        "data_files": files,
        "seed": seed,
        "device": device,
        "command": " ".join(argv if argv is not None else sys.argv),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": dict(cfg.to_dict() if hasattr(cfg, "to_dict") else cfg) if cfg is not None else None,
    }

