"""Training checkpoints: atomic writes, RNG capture, exact resume.

A checkpoint (``RUN_DIR/checkpoints/last.pt``) holds everything the next step depends on:
model / optimiser / scheduler / GradScaler state, the step and the position inside the epoch
(the data order itself is a function of (seed, epoch), see :mod:`sa4depth.train.data`), and
the python / numpy / torch (CPU and CUDA) RNG states. Files are written to ``path.tmp`` and
renamed (``os.replace``, :mod:`sa4depth.files`), so a SIGKILL during a write leaves the previous
checkpoint intact.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from sa4depth.files import sha256_file, torch_save_atomic, write_json_atomic  # noqa: F401
from sa4depth.safeio import torch_load

# sha256_file and write_json_atomic (sa4depth.files) stay importable from here for train/trainer.py
__all__ = ["CHECKPOINT_FORMAT", "capture_rng", "restore_rng", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_FORMAT = "sa4depth-train-checkpoint-v1"


def capture_rng() -> dict[str, Any]:
    """The RNG states of python, numpy and torch (CPU, and every CUDA device when available)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` (plus the format tag) atomically to ``path``."""
    # atomic against kills; no fsync (hundreds of MB: left to the OS)
    return torch_save_atomic(path, {"format": CHECKPOINT_FORMAT, **payload})


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ck = torch_load(path, map_location=map_location)  # weights_only: a file never runs code
    except Exception as e:  # truncated / foreign file
        raise ValueError(f"{path}: cannot read checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a sa4depth training checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    return ck

