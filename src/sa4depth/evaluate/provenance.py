"""Provenance recorded beside every evaluation number, and atomic JSON output.

Every ``sa4depth evaluate ...`` writes one JSON holding the numbers together with the resolved
config, the git commit (and whether the work tree was dirty), a sha256 over the ground-truth /
split files used, the seed, the device, the protocol name and the command line
(see docs/DATA_LAYOUTS.md and the design's "Metrics" contract).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

__all__ = ["git_info", "hash_files", "provenance", "to_jsonable", "write_json_atomic"]


def git_info(cwd: str | os.PathLike | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` from ``git rev-parse HEAD`` / ``git status``.

    Never raises: outside a git checkout (or without git) both values are ``None``.
    """
    cwd = str(cwd or Path(__file__).resolve().parents[3])
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, timeout=30)
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
        return {"commit": commit.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def hash_files(paths: Iterable[str | os.PathLike]) -> str | None:
    """sha256 over the given files, in sorted path order; each file contributes its name and bytes.

    Returns None for an empty list. A missing file is an error naming it.
    """
    paths = sorted({str(p) for p in paths})
    if not paths:
        return None
    h = hashlib.sha256()
    for p in paths:
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{p}: data file to hash not found")
        h.update(os.path.basename(p).encode() + b"\0")
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


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


def write_json_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON to ``path`` via ``path.tmp`` + ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(to_jsonable(obj), f, indent=2, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)
    return path
