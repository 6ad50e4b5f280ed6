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
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from sa4depth.files import hash_files

__all__ = ["ENV_COMMIT", "ENV_DIRTY", "check_git_env", "git_info", "provenance", "to_jsonable"]

#: The commit of a copy of the code that has no ``.git`` (a tree staged to a cluster's scratch
#: disk, an exported archive): 40 hex digits, as ``git rev-parse HEAD`` prints them. Read only where
#: git reads no commit, so a checkout's own commit wins wherever git can read it.
ENV_COMMIT = "SA4DEPTH_GIT_COMMIT"
#: Whether that copy differed from the commit: ``true``/``false`` (``1``/``0``); unset: unknown.
ENV_DIRTY = "SA4DEPTH_GIT_DIRTY"


def git_info(cwd: str | os.PathLike | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` from ``git rev-parse HEAD`` / ``git status``.

    ``dirty``: a tracked file outside ``results/`` differs from the commit. The committed results
    (tables, audit, figures, the claims ledger) are the pipeline's own outputs: a run rewrites them
    while later jobs still record provenance, and that does not make the code that ran differ from
    the commit. Where git reads no commit (no ``.git``; also git missing, or refusing a checkout
    owned by another user) the commit is :data:`ENV_COMMIT`'s, with ``"source":
    "SA4DEPTH_GIT_COMMIT"`` saying that the caller stated it, and ``dirty`` is :data:`ENV_DIRTY`'s;
    without them both values are ``None``. Raises ``ValueError`` (naming the variable and its value)
    only for a malformed environment variable.
    """
    cwd = str(cwd or Path(__file__).resolve().parents[3])
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return _git_from_env()
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=cwd, capture_output=True,
                             text=True, timeout=10).stdout.strip() or cwd
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                 ":(exclude)results"], cwd=top, capture_output=True, text=True, timeout=30)
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
        return {"commit": commit.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return _git_from_env()


def check_git_env() -> None:
    """Raises ``ValueError`` for a malformed :data:`ENV_COMMIT` / :data:`ENV_DIRTY` (the CLI calls it
    first, so that a bad value stops a command before its work rather than when it records it)."""
    _git_from_env()


_BOOL_WORDS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _git_from_env() -> dict[str, Any]:
    """:func:`git_info` of a tree without ``.git``: the commit the caller states in :data:`ENV_COMMIT`."""
    sha = os.environ.get(ENV_COMMIT, "").strip()
    word = os.environ.get(ENV_DIRTY, "").strip().lower()
    if word and word not in _BOOL_WORDS:
        raise ValueError(f"environment variable {ENV_DIRTY}={word!r}: expected true or false (1 or 0)")
    if not sha:
        return {"commit": None, "dirty": None}
    if not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise ValueError(f"environment variable {ENV_COMMIT}={sha!r}: expected the full 40-hex-digit "
                         "commit that `git rev-parse HEAD` prints in the checkout this tree was copied from")
    return {"commit": sha, "dirty": _BOOL_WORDS.get(word), "source": ENV_COMMIT}


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

